// The compatibility matrix (`lora-verify matrix`): determinism, baselines, shards and
// merges, inputs, malformed JSON, exit codes, and the committed reports/ being up to date.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "matrix/combine.h"
#include "matrix/io.h"
#include "matrix/render.h"
#include "matrix/run.h"
#include "matrix/variants.h"
#include "support/lora_support.h"

using namespace lv::matrix;

namespace {

std::string slurp(const std::string& p) { return lv::test::read_file(p); }

void spit(const std::string& p, const std::string& text) { std::ofstream(p, std::ios::binary) << text; }

MatrixResult run(const MatrixOptions& o) {
  auto m = run_matrix(o);
  EXPECT_TRUE(m.ok()) << (m.ok() ? "" : m.error().message);
  return m.ok() ? std::move(m).value() : MatrixResult{};
}

MatrixOptions only(const std::string& filter, int jobs = 2) {
  MatrixOptions o;
  o.filter = filter;
  o.jobs = jobs;
  return o;
}

MatrixResult read_back(const MatrixResult& m, const std::string& name = "m.json") {
  auto r = read_matrix_json(render_matrix_json(m), name);
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message);
  return r.ok() ? std::move(r).value() : MatrixResult{};
}

// A kohya LoRA on the tiny layout, written to `path`.
void write_lora(const std::string& path, uint64_t seed = 1) {
  lv::GenSpec spec;
  spec.layout = lv::flux::Layout::tiny();
  spec.dialect = "kohya";
  spec.seed = seed;
  auto bytes = lv::generate_lora(spec);
  ASSERT_TRUE(bytes.ok());
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(bytes->data()), static_cast<std::streamsize>(bytes->size()));
}

}  // namespace

TEST(Matrix, GridCoversEveryApplicableDialectStructureAndDtype) {
  const auto names = builtin_variant_names();
  const std::set<std::string> unique(names.begin(), names.end());
  EXPECT_EQ(unique.size(), names.size()) << "variant names must be unique";
  size_t applicable = 0;
  for (const auto& a : builtin_applicability()) {
    size_t rows = std::count_if(names.begin(), names.end(), [&](const std::string& n) {
      return n.rfind(a.dialect + " / " + a.structure + " / ", 0) == 0;
    });
    EXPECT_EQ(rows, a.applies ? 3u : 0u) << a.dialect << " / " << a.structure;
    if (a.applies) ++applicable;
    else EXPECT_FALSE(a.why_not.empty()) << "every n/a cell says why";
  }
  // The other families' rows ("flux2-dev: kohya, complete, BF16"), one dtype each.
  const size_t family_rows = std::count_if(names.begin(), names.end(), [](const std::string& n) { return n.find(": ") != std::string::npos; });
  EXPECT_GT(family_rows, 150u);
  for (const char* f : {"chroma: ", "flux2-dev: ", "flux2-klein-9b: ", "flux2-klein-4b: "})
    EXPECT_TRUE(std::any_of(names.begin(), names.end(), [&](const std::string& n) { return n.rfind(f, 0) == 0; })) << f;
  EXPECT_EQ(names.size(), 3 * applicable + family_rows);
  EXPECT_EQ(builtin_applicability().size(), builtin_dialects().size() * builtin_structures().size());
}

TEST(Matrix, IsByteIdenticalBetweenRunsAndJobCounts) {
  MatrixResult a = run(only("complete / BF16", 1)), b = run(only("complete / BF16", 3));
  ASSERT_EQ(a.rows.size(), 10u);  // one per dialect
  EXPECT_EQ(render_matrix_json(a), render_matrix_json(b));
  EXPECT_EQ(render_matrix_markdown(a), render_matrix_markdown(b));
  EXPECT_EQ(render_matrix_html(a), render_matrix_html(b));
  EXPECT_EQ(a.equivalent_rows(), 10) << render_matrix_markdown(a);
  EXPECT_FALSE(a.builtin_failed());
  // No times unless asked.
  EXPECT_EQ(render_matrix_json(a).find("seconds"), std::string::npos);
  EXPECT_NE(render_matrix_json(a, true).find("seconds"), std::string::npos);
}

TEST(Matrix, MarkdownIsAGithubTableWithTheSummaryOnTop) {
  MatrixResult m = run(only("kohya / complete"));
  m.rows[0].cells[1] = MatrixCell{};
  m.rows[0].cells[1].column = "comfy";
  m.rows[0].cells[1].outcome = Outcome::kRefused;
  m.rows[0].cells[1].reason = "a | pipe\nand a newline";
  const std::string md = render_matrix_markdown(m);
  std::istringstream in(md);
  std::string line, header;
  std::getline(in, line);
  EXPECT_EQ(line.rfind("# ", 0), 0u);
  std::getline(in, line);
  std::getline(in, line);
  EXPECT_EQ(line, "**2 of 3 variants equivalent in every output style and the round trip.**");
  auto pipes = [](const std::string& s) {
    size_t n = 0;
    for (size_t i = 0; i < s.size(); ++i) n += s[i] == '|' && (i == 0 || s[i - 1] != '\\');
    return n;
  };
  size_t table_lines = 0;
  while (std::getline(in, line)) {
    if (line.rfind("| variant |", 0) == 0) header = line;
    if (header.empty() || line.empty() || line[0] != '|') {
      if (!header.empty() && table_lines) break;
      continue;
    }
    ++table_lines;
    EXPECT_EQ(pipes(line), pipes(header)) << line;
  }
  EXPECT_EQ(table_lines, 2u + 3u);  // header, rule, three rows
  EXPECT_NE(md.find("a \\| pipe and a newline"), std::string::npos);
}

TEST(Matrix, HtmlIsSelfContained) {
  const std::string html = render_matrix_html(run(only("xlabs / complete / F32")));
  for (const char* external : {"http://", "https://", "<script", "<link", "src=", "@import", "url("})
    EXPECT_EQ(html.find(external), std::string::npos) << external;
  EXPECT_NE(html.find("class=\"c eq\""), std::string::npos);
}

TEST(Matrix, BaselineMarksARegressionAndAFix) {
  MatrixResult now = run(only("comfy / mixed-ranks"));
  ASSERT_EQ(now.rows.size(), 3u);
  MatrixResult base = read_back(now);
  EXPECT_TRUE(diff_against_baseline(base, now).empty());
  // The baseline had a refused cell that now passes (a fix), and an equivalent cell that now
  // fails (a regression).
  base.rows[0].cells[0].outcome = Outcome::kRefused;
  now.rows[1].cells[2].outcome = Outcome::kNotEquivalent;
  auto changes = diff_against_baseline(base, now);
  ASSERT_EQ(changes.size(), 2u);
  EXPECT_TRUE(changes[0].fix);
  EXPECT_FALSE(changes[0].regression);
  EXPECT_TRUE(changes[1].regression);
  EXPECT_EQ(changes[1].column, "peft");
  mark_changes(now, changes);
  EXPECT_EQ(now.regressions, 1);
  EXPECT_EQ(now.fixes, 1);
  EXPECT_EQ(now.rows[1].cells[2].was, Outcome::kEquivalent);
  const std::string md = render_matrix_markdown(now);
  EXPECT_NE(md.find("1 regression, 1 fix"), std::string::npos) << md;
  EXPECT_NE(md.find("❌⚠️"), std::string::npos);
  EXPECT_NE(render_matrix_html(now).find(" reg\""), std::string::npos);
  EXPECT_NE(render_matrix_json(now).find("\"regression\": true"), std::string::npos);
}

TEST(Matrix, BaselineRowsNotRunAreMissingOnlyInAFullRun) {
  MatrixResult now = run(only("bfl / norm-out / F32"));  // bfl and onetrainer-bfl
  ASSERT_EQ(now.rows.size(), 2u);
  MatrixResult base = read_back(now);
  base.rows[0].variant = "retired / variant / F32";
  auto full = diff_against_baseline(base, now, /*partial=*/false);
  ASSERT_EQ(full.size(), 2u);  // the retired row is gone, the renamed one is new
  EXPECT_TRUE(full[0].regression);
  EXPECT_EQ(full[1].after, "new");
  EXPECT_FALSE(full[1].regression);
  auto partial = diff_against_baseline(base, now, /*partial=*/true);
  ASSERT_EQ(partial.size(), 1u);
  EXPECT_FALSE(partial[0].regression);
}

TEST(Matrix, ShardsSplitRowsDisjointlyAndMergeToTheUnshardedRun) {
  const std::string dir = lv::test::temp_dir();
  write_lora(dir + "/a.safetensors");
  MatrixOptions o = only("mixed-ranks / F16");
  o.inputs = {dir};
  MatrixResult full = run(o);
  ASSERT_EQ(full.rows.size(), 11u);
  std::vector<MatrixResult> shards;
  std::set<std::string> seen;
  for (int i = 0; i < 3; ++i) {
    MatrixOptions s = o;
    s.shard_index = i;
    s.shard_count = 3;
    MatrixResult m = run(s);
    for (const auto& r : m.rows) EXPECT_TRUE(seen.insert(r.variant).second) << r.variant << " is in two shards";
    shards.push_back(read_back(m, "shard" + std::to_string(i) + ".json"));
  }
  EXPECT_EQ(seen.size(), full.rows.size());
  // Merged in any order, the shards give the unsharded bytes.
  std::vector<MatrixResult> shuffled = {shards[2], shards[0], shards[1]};
  auto merged = merge_matrices(shuffled);
  ASSERT_TRUE(merged.ok()) << merged.error().message;
  EXPECT_EQ(render_matrix_json(*merged), render_matrix_json(full));
  EXPECT_EQ(render_matrix_markdown(*merged), render_matrix_markdown(full));
  // A shard given twice, or one left out, is refused.
  EXPECT_FALSE(merge_matrices({shards[0], shards[1], shards[1]}).ok());
  auto incomplete = merge_matrices({shards[0], shards[2]});
  ASSERT_FALSE(incomplete.ok());
  EXPECT_NE(incomplete.error().message.find("shard 1/3 is missing"), std::string::npos) << incomplete.error().message;
  std::filesystem::remove_all(dir);
}

TEST(Matrix, InputFilesAndDirectoriesAddRows) {
  const std::string dir = lv::test::temp_dir();
  std::filesystem::create_directories(dir + "/sub");
  write_lora(dir + "/sub/mine.safetensors");
  spit(dir + "/broken.safetensors", "not a safetensors file");
  spit(dir + "/notes.txt", "ignored: not .safetensors");
  MatrixOptions o;
  o.builtin = false;
  o.inputs = {dir};
  MatrixResult m = run(o);
  ASSERT_EQ(m.rows.size(), 2u);
  EXPECT_EQ(m.rows[0].variant, dir + "/broken.safetensors");
  EXPECT_EQ(m.rows[0].cells[0].outcome, Outcome::kRefused);
  EXPECT_FALSE(m.rows[0].cells[0].reason.empty());
  EXPECT_FALSE(m.rows[0].builtin);
  EXPECT_TRUE(m.rows[1].equivalent()) << render_matrix_markdown(m);
  EXPECT_EQ(m.rows[1].dialect, "kohya");
  EXPECT_FALSE(m.builtin_failed()) << "input rows do not fail the run";
  // A file given directly adds its row after the built-in ones.
  MatrixOptions one = only("xlabs / complete / F16");
  one.inputs = {dir + "/sub/mine.safetensors"};
  MatrixResult both = run(one);
  ASSERT_EQ(both.rows.size(), 2u);
  EXPECT_TRUE(both.rows[0].builtin);
  EXPECT_EQ(both.rows[1].variant, dir + "/sub/mine.safetensors");
  // An input that does not exist is an error, not a row.
  MatrixOptions gone;
  gone.builtin = false;
  gone.inputs = {dir + "/nope.safetensors"};
  auto r = run_matrix(gone);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, lv::ErrorCode::kCannotOpen);
  std::filesystem::remove_all(dir);
}

TEST(Matrix, MalformedBaselineIsAnErrorNotACrash) {
  const char* cases[] = {
      "",
      "{",
      "[]",
      "null",
      "{\"schema\":\"x\"}",
      "{\"schema\":\"lora-verify.matrix/1\"}",
      "{\"schema\":\"lora-verify.matrix/1\",\"rows\":{},\"columns\":[]}",
      "{\"schema\":\"lora-verify.matrix/1\",\"rows\":[1],\"columns\":[]}",
      "{\"schema\":\"lora-verify.matrix/1\",\"rows\":[],\"columns\":[3]}",
      "{\"schema\":\"lora-verify.matrix/1\",\"rows\":[{\"variant\":1,\"cells\":[]}],\"columns\":[]}",
      "{\"schema\":\"lora-verify.matrix/1\",\"rows\":[{\"variant\":\"v\",\"cells\":[7]}],\"columns\":[]}",
      "{\"schema\":\"lora-verify.matrix/1\",\"rows\":[{\"variant\":\"v\",\"cells\":[{\"column\":\"kohya\"}]}],\"columns\":[]}",
      "{\"schema\":\"lora-verify.matrix/1\",\"rows\":[{\"variant\":\"v\",\"cells\":[{\"column\":\"kohya\",\"outcome\":\"fine\"}]}],\"columns\":[]}",
      "{\"schema\":\"lora-verify.matrix/1\",\"rows\":[],\"columns\":[],\"shard\":{\"index\":3,\"count\":2,\"total_rows\":1}}",
      "{\"schema\":\"lora-verify.matrix/1\",\"rows\":[],\"columns\":[],\"shard\":{\"index\":-1,\"count\":1e300,\"total_rows\":1}}",
  };
  for (const char* text : cases) {
    auto m = read_matrix_json(text, "old.json");
    ASSERT_FALSE(m.ok()) << text;
    EXPECT_EQ(m.error().code, lv::ErrorCode::kBadInput);
    EXPECT_NE(m.error().message.find("old.json"), std::string::npos) << m.error().message;
  }
  // Odd but harmless values read fine: huge numbers, unknown fields.
  auto ok = read_matrix_json(
      "{\"schema\":\"lora-verify.matrix/1\",\"extra\":1,\"columns\":[\"kohya\"],\"rows\":[{\"variant\":\"v\",\"zero_filled\":1e300,"
      "\"worst_error\":\"x\",\"cells\":[{\"column\":\"kohya\",\"outcome\":\"equivalent\"}]}]}",
      "odd.json");
  ASSERT_TRUE(ok.ok()) << ok.error().message;
  EXPECT_TRUE(ok->rows[0].equivalent());
}

// Every outcome of the outcome table is written under its name and read back as itself; a
// name the table does not know is refused with that name.
TEST(Matrix, EveryOutcomeReadsBackAsItselfAndUnknownOnesAreRefused) {
  MatrixResult m;
  m.columns = {"c"};
  for (const OutcomeInfo& i : outcome_table()) {
    MatrixRow r;
    r.variant = std::string(i.name);
    MatrixCell c;
    c.column = "c";
    c.outcome = i.outcome;
    r.cells.push_back(c);
    m.rows.push_back(r);
  }
  const MatrixResult back = read_back(m);
  ASSERT_EQ(back.rows.size(), outcome_table().size());
  for (size_t k = 0; k < back.rows.size(); ++k) {
    EXPECT_EQ(back.rows[k].cells.at(0).outcome, outcome_table()[k].outcome);
    EXPECT_EQ(outcome_named(outcome_table()[k].name), outcome_table()[k].outcome);
  }
  std::string json = render_matrix_json(m);
  const std::string from = "\"outcome\": \"timed out\"";
  ASSERT_NE(json.find(from), std::string::npos) << json;
  json.replace(json.find(from), from.size(), "\"outcome\": \"timed-out\"");
  auto bad = read_matrix_json(json, "new.json");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("unknown outcome 'timed-out'"), std::string::npos) << bad.error().message;
}

TEST(MatrixCli, RegressionAgainstABaselineExitsOne) {
  const std::string dir = lv::test::temp_dir();
  write_lora(dir + "/good.safetensors");
  spit(dir + "/bad.safetensors", "garbage");
  // Run once for a baseline, then claim the broken file used to convert fine.
  auto first = lv::test::run_cli({"matrix", "--no-builtin", "--out", dir + "/base", dir + "/good.safetensors", dir + "/bad.safetensors"});
  ASSERT_EQ(first.exit_code, 0) << first.out << first.err << " (a broken input is a row, not a failure)";
  auto base = read_matrix_json(slurp(dir + "/base/compatibility.json"), "base");
  ASSERT_TRUE(base.ok()) << base.error().message;
  ASSERT_EQ(base->rows.size(), 2u);
  for (auto& c : base->rows[0].cells) c.outcome = Outcome::kEquivalent;  // bad.safetensors sorts first
  spit(dir + "/old.json", render_matrix_json(*base));
  auto r = lv::test::run_cli({"matrix", "--no-builtin", "--baseline", dir + "/old.json", "--out", dir + "/now", dir});
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_NE(r.out.find("regression: " + dir + "/bad.safetensors, kohya: equivalent → refused"), std::string::npos) << r.out;
  const std::string md = slurp(dir + "/now/compatibility.md");
  EXPECT_NE(md.find("6 regressions, 0 fixes"), std::string::npos) << md;
  // Against itself: no change, exit 0.
  auto same = lv::test::run_cli({"matrix", "--no-builtin", "--baseline", dir + "/base/compatibility.json", "--out", dir + "/base", dir});
  EXPECT_EQ(same.exit_code, 0) << same.out << same.err;
  std::filesystem::remove_all(dir);
}

TEST(MatrixCli, ExitCodesForUsageInputsAndOutputs) {
  const std::string dir = lv::test::temp_dir();
  spit(dir + "/bad.json", "{\"schema\":");
  spit(dir + "/file", "x");
  const std::string filt = "xlabs / complete / F32";
  EXPECT_EQ(lv::test::run_cli({"matrix", "--shard", "3/3"}).exit_code, 64);
  EXPECT_EQ(lv::test::run_cli({"matrix", "--jobs", "0"}).exit_code, 64);
  EXPECT_EQ(lv::test::run_cli({"matrix", "--bogus"}).exit_code, 64);
  EXPECT_EQ(lv::test::run_cli({"matrix", "--merge"}).exit_code, 64);
  EXPECT_EQ(lv::test::run_cli({"matrix", "--merge", "--shard", "0/2", dir + "/bad.json"}).exit_code, 64);
  auto help = lv::test::run_cli({"matrix", "--help"});
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_NE(help.out.find("--baseline"), std::string::npos);
  auto bad = lv::test::run_cli({"matrix", "--filter", filt, "--baseline", dir + "/bad.json", "--out", dir});
  EXPECT_EQ(bad.exit_code, 65) << bad.err;
  EXPECT_NE(bad.err.find("bad.json"), std::string::npos) << bad.err;
  EXPECT_EQ(lv::test::run_cli({"matrix", "--filter", filt, "--baseline", dir + "/none.json", "--out", dir}).exit_code, 66);
  EXPECT_EQ(lv::test::run_cli({"matrix", "--merge", dir + "/bad.json", "--out", dir}).exit_code, 65);
  EXPECT_EQ(lv::test::run_cli({"matrix", "--no-builtin", dir + "/missing.safetensors", "--out", dir}).exit_code, 66);
  auto unwritable = lv::test::run_cli({"matrix", "--filter", filt, "--out", dir + "/file/sub"});
  EXPECT_EQ(unwritable.exit_code, 73) << unwritable.err;
  std::filesystem::remove_all(dir);
}

TEST(MatrixCli, ShardsMergeFromTheCommandLine) {
  const std::string dir = lv::test::temp_dir();
  const std::string filt = "embedders-only / BF16";
  ASSERT_EQ(lv::test::run_cli({"matrix", "--filter", filt, "--out", dir + "/full"}).exit_code, 0);
  for (const char* s : {"0/2", "1/2"}) {
    auto r = lv::test::run_cli({"matrix", "--filter", filt, "--shard", s, "--out", dir + "/s" + std::string(1, s[0])});
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  }
  auto merged = lv::test::run_cli({"matrix", "--merge", dir + "/s1/compatibility.json", dir + "/s0/compatibility.json", "--out", dir + "/merged"});
  ASSERT_EQ(merged.exit_code, 0) << merged.out << merged.err;
  for (const char* f : {"compatibility.md", "compatibility.json", "compatibility.html"})
    EXPECT_EQ(slurp(dir + "/merged/" + f), slurp(dir + "/full/" + f)) << f;
  std::filesystem::remove_all(dir);
}

// The committed matrix must be what this build produces: regenerate it exactly as
// scripts/update-matrix.sh does and compare the bytes.
TEST(Matrix, CommittedReportsAreUpToDate) {
  const std::string dir = lv::test::temp_dir();
  auto r = lv::test::run_cli({"matrix", "--out", dir, "--jobs", "2"});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  const std::string committed = std::string(LV_SOURCE_DIR) + "/reports/";
  for (const char* f : {"compatibility.md", "compatibility.json", "compatibility.html"})
    EXPECT_TRUE(slurp(committed + f) == slurp(dir + "/" + f))
        << "reports/" << f << " is stale: run scripts/update-matrix.sh and commit reports/";
  std::filesystem::remove_all(dir);
}
