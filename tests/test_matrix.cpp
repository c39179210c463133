// The compatibility matrix: determinism, baselines, shards and merges, inputs, and the
// committed reports/ being up to date.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "report/matrix.h"
#include "support/lora_support.h"

using namespace lv::report;

namespace {

std::string slurp(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

Matrix run(MatrixOptions o) {
  auto m = run_matrix(o);
  EXPECT_TRUE(m.ok()) << (m.ok() ? "" : m.error().message);
  return m.ok() ? std::move(m).value() : Matrix{};
}

MatrixOptions small() {
  MatrixOptions o;
  o.filter = "/ F16";  // one dtype of every dialect and structure
  o.jobs = 2;
  return o;
}

}  // namespace

TEST(Matrix, IsByteIdenticalBetweenRuns) {
  Matrix a = run(small()), b = run(small());
  ASSERT_GT(a.rows.size(), 50u);
  EXPECT_EQ(render_matrix_json(a), render_matrix_json(b));
  EXPECT_EQ(render_matrix_markdown(a), render_matrix_markdown(b));
  EXPECT_EQ(render_matrix_html(a), render_matrix_html(b));
  EXPECT_EQ(a.equivalent_rows(), static_cast<int64_t>(a.rows.size())) << render_matrix_markdown(a);
}

TEST(Matrix, JsonReadsBackAndBaselineMarksARegression) {
  MatrixOptions o = small();
  o.filter = "kohya / complete";
  Matrix now = run(o);
  auto back = read_matrix_json(render_matrix_json(now), "now.json");
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_TRUE(diff_matrices(*back, now).empty());
  // A baseline where a cell was "refused": now equivalent → a fix, not a regression.
  Matrix was = *back;
  was.rows[0].cells[0].outcome = "refused";
  auto fixes = diff_matrices(was, now);
  ASSERT_EQ(fixes.size(), 1u);
  EXPECT_FALSE(fixes[0].regression);
  // Now worse than the baseline: a regression, marked in the rendered cell.
  Matrix worse = now;
  worse.rows[0].cells[2].outcome = "not equivalent";
  auto regs = diff_matrices(now, worse);
  ASSERT_EQ(regs.size(), 1u);
  EXPECT_TRUE(regs[0].regression);
  mark_changes(worse, regs);
  EXPECT_NE(render_matrix_markdown(worse).find("REGRESSION, was: equivalent"), std::string::npos);
  EXPECT_NE(render_matrix_html(worse).find("changed"), std::string::npos);
}

TEST(Matrix, ShardsAreDisjointAndMergeToTheFullRun) {
  MatrixOptions o = small();
  o.filter = "/ BF16";
  Matrix full = run(o);
  std::vector<Matrix> shards;
  size_t total = 0;
  for (int i = 0; i < 3; ++i) {
    MatrixOptions s = o;
    s.shard_index = i;
    s.shard_count = 3;
    auto m = run(s);
    total += m.rows.size();
    auto back = read_matrix_json(render_matrix_json(m), "shard.json");
    ASSERT_TRUE(back.ok());
    shards.push_back(std::move(back).value());
  }
  EXPECT_EQ(total, full.rows.size());
  auto merged = merge_matrices(shards);
  ASSERT_TRUE(merged.ok()) << merged.error().message;
  EXPECT_EQ(render_matrix_json(*merged), render_matrix_json(full));
  shards.push_back(shards[0]);
  EXPECT_FALSE(merge_matrices(shards).ok()) << "a variant in two shards must be refused";
}

TEST(Matrix, InputFilesAddRows) {
  std::string dir = lv::test::temp_dir();
  lv::GenSpec spec;
  spec.layout = lv::flux::Layout::tiny();
  spec.dialect = "kohya";
  auto bytes = lv::generate_lora(spec);
  ASSERT_TRUE(bytes.ok());
  std::ofstream(dir + "/mine.safetensors", std::ios::binary).write(reinterpret_cast<const char*>(bytes->data()), bytes->size());
  std::ofstream(dir + "/broken.safetensors", std::ios::binary) << "not a safetensors file";
  MatrixOptions o;
  o.builtin = false;
  o.inputs = {dir};
  Matrix m = run(o);
  ASSERT_EQ(m.rows.size(), 2u);
  EXPECT_EQ(m.rows[0].variant, dir + "/broken.safetensors");
  EXPECT_EQ(m.rows[0].cells[0].outcome, "refused");
  EXPECT_TRUE(m.rows[1].equivalent()) << render_matrix_markdown(m);
  EXPECT_EQ(m.rows[1].dialect, "kohya");
  std::filesystem::remove_all(dir);
}

TEST(Matrix, MalformedBaselineIsAnErrorNotACrash) {
  for (const char* text : {"", "{", "[]", "{\"schema\":\"x\"}", "{\"schema\":\"lora-verify.matrix/1\",\"rows\":[1],\"columns\":[]}",
                           "{\"schema\":\"lora-verify.matrix/1\",\"rows\":[{\"variant\":1}],\"columns\":[]}"}) {
    auto m = read_matrix_json(text, "old.json");
    ASSERT_FALSE(m.ok()) << text;
    EXPECT_NE(m.error().message.find("old.json"), std::string::npos);
  }
}

TEST(Matrix, CommittedReportsAreUpToDate) {
  MatrixOptions o;
  o.jobs = 2;
  Matrix m = run(o);
  const std::string dir = std::string(LV_SOURCE_DIR) + "/reports/";
  EXPECT_EQ(slurp(dir + "compatibility.json"), render_matrix_json(m)) << "stale: run scripts/update-matrix.sh";
  EXPECT_EQ(slurp(dir + "compatibility.md"), render_matrix_markdown(m)) << "stale: run scripts/update-matrix.sh";
  EXPECT_EQ(slurp(dir + "compatibility.html"), render_matrix_html(m)) << "stale: run scripts/update-matrix.sh";
}

TEST(Matrix, CliExitsNonZeroOnARegressionAgainstABaseline) {
  std::string dir = lv::test::temp_dir();
  Matrix base = run([] {
    MatrixOptions o;
    o.filter = "bfl / complete / F32";
    return o;
  }());
  ASSERT_EQ(base.rows.size(), 2u);  // "bfl" and "onetrainer-bfl"
  // A baseline claiming a variant that no longer exists: its cells regress to "missing".
  base.rows[0].variant = "retired / variant / F32";
  std::ofstream(dir + "/old.json") << render_matrix_json(base);
  auto r = lv::test::run_cli({"matrix", "--filter", "bfl / complete / F32", "--baseline", dir + "/old.json", "--out", dir});
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_NE(r.out.find("REGRESSION"), std::string::npos) << r.out;
  auto ok = lv::test::run_cli({"matrix", "--filter", "bfl / complete / F32", "--out", dir});
  EXPECT_EQ(ok.exit_code, 0) << ok.out << ok.err;
  EXPECT_TRUE(std::filesystem::exists(dir + "/compatibility.html"));
  std::filesystem::remove_all(dir);
}
