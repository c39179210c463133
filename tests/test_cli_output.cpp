// What the lora-verify binary tells its user: the reports' findings and messages
// (nothing checked, one finding per module, untrained LoRAs, inspect's modules, no "none"
// dialect), how much it says (--progress, --verbose, --quiet), and the matrix command's
// summary line and converter logs.
#include <gtest/gtest.h>

#include <cctype>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "support/lora_support.h"

using lv::test::run_cli;

namespace fs = std::filesystem;

namespace {

// A temporary directory per test, and files written into it.
class CliFiles : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = lv::test::temp_dir(); }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string write(const std::string& name, const std::vector<uint8_t>& bytes) {
    const std::string path = dir_ + "/" + name;
    FILE* f = std::fopen(path.c_str(), "wb");
    EXPECT_TRUE(f);
    if (f) {
      std::fwrite(bytes.data(), 1, bytes.size(), f);
      std::fclose(f);
    }
    return path;
  }
  std::string dir_;
};

// What verify and inspect report about a file.
class CliReports : public CliFiles {};
// --progress, --verbose and --quiet.
class CliVerbosity : public CliFiles {};

int lines_with(const std::string& text, const std::string& needle) {
  int n = 0;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) n += line.find(needle) != std::string::npos;
  return n;
}

// Six kohya modules of FLUX.1 width whose ups (7 rows) fit no target: 18 tensors, none usable.
std::vector<uint8_t> all_shapes_wrong() {
  std::vector<lv::test::Tensor> t;
  for (const char* m : {"img_attn_qkv", "img_attn_proj", "txt_attn_qkv", "txt_attn_proj", "img_mlp_0", "txt_mlp_0"}) {
    const std::string base = std::string("lora_unet_double_blocks_0_") + m;
    t.push_back({base + ".lora_down.weight", {2, 3072}, lv::test::random_values(2 * 3072, 1)});
    t.push_back({base + ".lora_up.weight", {7, 2}, lv::test::random_values(14, 2)});
    t.push_back({base + ".alpha", {}, {2.0}});
  }
  return lv::test::build_file(t);
}

}  // namespace

// Nothing checked is said as such, and a module's tensors share one finding.
TEST_F(CliReports, NothingCheckedSaysWhyAndFindingsAreOnePerModule) {
  const std::string in = write("bad.safetensors", all_shapes_wrong());
  auto r = run_cli({in});
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_EQ(r.out.rfind("FAIL: nothing converted: 18 tensors unusable — shape mismatch, see findings\n", 0), 0u) << r.out;
  EXPECT_EQ(r.out.find("all 0 modules"), std::string::npos) << r.out;
  // Six findings of one kind: one line with their count; --all lists each.
  EXPECT_EQ(lines_with(r.out, "lora.shape.mismatch ×6: "), 1) << r.out;
  auto all = run_cli({in, "--all"});
  EXPECT_EQ(lines_with(all.out, "lora.shape.mismatch"), 6) << all.out;
  EXPECT_EQ(lines_with(all.out, "lora_unet_double_blocks_0_img_attn_qkv.lora_down.weight, lora_unet_double_blocks_0_img_attn_qkv.lora_up.weight, "
                         "lora_unet_double_blocks_0_img_attn_qkv.alpha: not used"),
            1)
      << all.out;
  auto j = run_cli({in, "--json", "-"});
  EXPECT_EQ(j.exit_code, 1);
  const auto doc = nlohmann::json::parse(j.out);
  EXPECT_EQ(doc["verdict"], "fail");
  ASSERT_EQ(doc["findings"].size(), 6u) << j.out;
  for (const auto& f : doc["findings"]) {
    EXPECT_EQ(f["id"], "lora.shape.mismatch");
    ASSERT_EQ(f["tensors"].size(), 3u);
    EXPECT_EQ(f["tensor"], f["tensors"][0]);
  }
}

namespace {

// Two kohya modules of FLUX.1-dev's double block 0 (rank 2); `zero_ups` leaves their ups
// zero as an untrained LoRA has them; `nan` puts a NaN into the first down.
std::vector<uint8_t> two_modules(bool zero_ups, bool nan = false) {
  std::vector<lv::test::Tensor> t;
  const std::pair<const char*, uint64_t> modules[] = {{"img_attn_qkv", 9216}, {"img_attn_proj", 3072}};
  double alpha = 2;
  for (const auto& [m, rows] : modules) {
    const std::string base = std::string("lora_unet_double_blocks_0_") + m;
    auto down = lv::test::random_values(2 * 3072, 3);
    if (nan && alpha == 2) down[5] = std::nan("");
    t.push_back({base + ".lora_down.weight", {2, 3072}, down});
    t.push_back({base + ".lora_up.weight", {rows, 2}, zero_ups ? std::vector<double>(rows * 2, 0.0) : lv::test::random_values(rows * 2, 4)});
    t.push_back({base + ".alpha", {}, {alpha}});
    alpha *= 2;
  }
  return lv::test::build_file(t);
}

}  // namespace

// Every up zero: one file-level warning that the LoRA has no effect, not one per module.
// (Two double-block attention modules at width 3072 fit FLUX.1 and FLUX.2 [klein] 4B alike:
// the model is named, as a user of such a file must.)
TEST_F(CliReports, AnUntrainedLoraIsOneWarningForTheFile) {
  const std::string in = write("untrained.safetensors", two_modules(true));
  auto r = run_cli({in, "--model", "flux1"});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_EQ(lines_with(r.out, "warning lora.delta.untrained: every up factor of its 2 modules is zero: this LoRA has no effect"), 1)
      << r.out;
  EXPECT_EQ(lines_with(r.out, "lora.delta.zero"), 0) << r.out;
  auto j = nlohmann::json::parse(run_cli({in, "--json", "-", "--model", "flux1"}).out);
  int untrained = 0;
  for (const auto& f : j["findings"]) untrained += f["id"] == "lora.delta.untrained" && f["tensor"] == "";
  EXPECT_EQ(untrained, 1) << j["findings"].dump();
  // A trained file is not flagged.
  auto trained = run_cli({write("trained.safetensors", two_modules(false)), "--model", "flux1"});
  EXPECT_EQ(trained.exit_code, 0) << trained.out;
  EXPECT_EQ(trained.out.find("untrained"), std::string::npos) << trained.out;
  // inspect says it too.
  EXPECT_EQ(lines_with(run_cli({"inspect", in, "--model", "flux1"}).out, "lora.delta.untrained"), 1);
}

// inspect shows the modules, ranks and alphas, and flags NaN/Inf, in text and JSON.
TEST_F(CliReports, InspectShowsModulesRanksAlphasAndNonFiniteValues) {
  const std::string in = write("nan.safetensors", two_modules(false, true));
  auto r = run_cli({"inspect", in, "--model", "flux1"});
  EXPECT_EQ(r.exit_code, 0) << r.err;  // a valid container
  EXPECT_EQ(lines_with(r.out, "modules: 2 (on 2 BFL targets); ranks 2..2; alphas 2, 4"), 1) << r.out;
  EXPECT_EQ(lines_with(r.out, "non-finite values: 1 tensors"), 1) << r.out;
  EXPECT_EQ(lines_with(r.out, "error lora.value.nonfinite lora_unet_double_blocks_0_img_attn_qkv.lora_down.weight: 1 of 6144 values"), 1)
      << r.out;
  auto jr = run_cli({"inspect", in, "--json", "--model", "flux1"});
  ASSERT_EQ(jr.exit_code, 0) << jr.err;
  const auto j = nlohmann::json::parse(jr.out);
  EXPECT_EQ(j["modules"], 2);
  EXPECT_EQ(j["targets"], 2);
  EXPECT_EQ(j["ranks"]["min"], 2);
  EXPECT_EQ(j["ranks"]["max"], 2);
  EXPECT_EQ(j["alphas"], nlohmann::json::array({2.0, 4.0}));
  EXPECT_EQ(j["nonfinite_tensors"], nlohmann::json::array({"lora_unet_double_blocks_0_img_attn_qkv.lora_down.weight"}));
  ASSERT_FALSE(j["findings"].empty());
  EXPECT_EQ(j["findings"][0]["id"], "lora.value.nonfinite");
}

// A LoKr file (no key dialect of its own) is never reported as "none files".
TEST_F(CliReports, ALokrReportNamesNoNoneDialect) {
  if (!lv::test::fixtures_present()) GTEST_SKIP() << "no ../shared/fixtures (" << lv::test::fixtures_dir() << ")";
  const std::string in = dir_ + "/lokr.safetensors";
  {
    auto b = lv::test::fixture_file("flux_lokr_bfl_format", 1, lv::st::DType::kBF16, 4, 4);
    std::ofstream(in, std::ios::binary).write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
  }
  for (const auto& args : std::vector<std::vector<std::string>>{{in, "--model", "flux1"}, {"inspect", in}}) {
    auto r = run_cli(args);
    EXPECT_EQ(r.out.find("none files"), std::string::npos) << r.out;
  }
}

// --progress: progress lines on stderr even when it is no terminal; --verbose: each phase's
// time; --quiet: nothing but errors, the exit code tells (report files still written).
TEST_F(CliVerbosity, ProgressVerboseAndQuiet) {
  const std::string in = dir_ + "/in.safetensors";
  ASSERT_EQ(run_cli({"sample", in, "--tiny", "--rank", "2"}).exit_code, 0);
  auto p = run_cli({in, "--progress"});
  EXPECT_EQ(p.exit_code, 0) << p.err;
  for (const char* phase : {"reading", "converting", "serializing", "re-reading", "verifying", "loaders"})
    EXPECT_EQ(lines_with(p.err, std::string("% ") + phase), 1) << phase << "\n" << p.err;
  EXPECT_EQ(lines_with(p.err, "lora-verify:   0% reading"), 1) << p.err;
  EXPECT_EQ(p.out.rfind("PASS: ", 0), 0u);
  EXPECT_EQ(run_cli({in}).err, "");  // stderr is no terminal here: no progress unless asked
  auto c = run_cli({"convert", in, "-o", dir_ + "/out.safetensors", "--progress"});
  EXPECT_EQ(c.exit_code, 0) << c.err;
  EXPECT_EQ(lines_with(c.err, "% writing"), 1) << c.err;
  auto s = run_cli({"sample", dir_ + "/s.safetensors", "--tiny", "--progress"});
  EXPECT_EQ(lines_with(s.err, "% generating"), 1) << s.err;
  auto i = run_cli({"inspect", in, "--progress"});
  EXPECT_EQ(lines_with(i.err, "% checking values"), 1) << i.err;

  auto v = run_cli({"compare", in, dir_ + "/out.safetensors", "--verbose"});
  EXPECT_EQ(v.exit_code, 0) << v.err;
  EXPECT_EQ(lines_with(v.err, "lora-verify: verifying took "), 1) << v.err;
  EXPECT_EQ(lines_with(v.err, " s in all"), 1) << v.err;

  // --quiet: nothing on stdout or stderr for a pass, a failure or a written sample...
  for (const auto& args : std::vector<std::vector<std::string>>{{in, "--quiet"},
                                                                {"convert", in, "-o", dir_ + "/q.safetensors", "--quiet"},
                                                                {"inspect", in, "--quiet"},
                                                                {"sample", dir_ + "/q2.safetensors", "--tiny", "--quiet"}}) {
    auto q = run_cli(args);
    EXPECT_EQ(q.exit_code, 0) << args[0] << q.err;
    EXPECT_EQ(q.out, "") << args[0];
    EXPECT_EQ(q.err, "") << args[0];
  }
  const std::string bad = write("bad.safetensors", all_shapes_wrong());
  auto qf = run_cli({bad, "--quiet", "--json", dir_ + "/r.json"});
  EXPECT_EQ(qf.exit_code, 1);
  EXPECT_EQ(qf.out + qf.err, "");
  EXPECT_TRUE(std::filesystem::exists(dir_ + "/r.json"));  // report files are still written
  // ...a report asked for on stdout is printed, and errors are one line.
  auto qj = run_cli({in, "--quiet", "--json", "-"});
  EXPECT_EQ(qj.exit_code, 0);
  EXPECT_EQ(nlohmann::json::parse(qj.out)["verdict"], "pass");
  auto qe = run_cli({dir_ + "/missing.safetensors", "--quiet"});
  EXPECT_EQ(qe.exit_code, 66);
  EXPECT_EQ(qe.out, "");
  EXPECT_EQ(lines_with(qe.err, "error: "), 1);
  EXPECT_EQ(qe.err.rfind("error: ", 0), 0u);
  // Every command takes them; --quiet with --verbose or --progress is a usage error.
  EXPECT_EQ(run_cli({in, "--quiet", "--progress"}).exit_code, 64);
  EXPECT_EQ(run_cli({"compare", in, in, "--quiet", "--verbose"}).exit_code, 64);
  for (const char* cmd : {"verify", "convert", "compare", "inspect", "sample"}) {
    auto h = run_cli({cmd, "--help"});
    for (const char* o : {"--quiet", "--verbose", "--progress"}) EXPECT_NE(h.out.find(o), std::string::npos) << cmd << " " << o;
  }
}

// matrix takes --quiet and --verbose too.
TEST_F(CliVerbosity, MatrixQuietAndVerbose) {
  const std::string in = dir_ + "/in.safetensors";
  ASSERT_EQ(run_cli({"sample", in, "--tiny", "--rank", "2"}).exit_code, 0);
  auto q = run_cli({"matrix", "--no-builtin", "--out", dir_ + "/q", "--quiet", in});
  EXPECT_EQ(q.exit_code, 0) << q.err;
  EXPECT_EQ(q.out + q.err, "");
  EXPECT_TRUE(std::filesystem::exists(dir_ + "/q/compatibility.json"));
  auto v = run_cli({"matrix", "--no-builtin", "--out", dir_ + "/v", "--verbose", in});
  EXPECT_EQ(v.exit_code, 0) << v.err;
  EXPECT_EQ(lines_with(v.err, "in.safetensors: equivalent ("), 1) << v.err;
  EXPECT_EQ(lines_with(v.out, "variants equivalent"), 1) << v.out;
  EXPECT_EQ(run_cli({"matrix", "--quiet", "--verbose"}).exit_code, 64);
}

// The matrix's summary line names the columns that ran, and a converter's log holds what it
// printed, uncut, with the real path of {in}.
TEST(CliMatrixSummary, SummaryLineAndConverterLogsSayWhatHappened) {
  const std::string dir = lv::test::temp_dir();
  auto ok = run_cli({"matrix", "--styles", "none", "--converter", "copy=cp {in} {out}", "--filter", "kohya / complete",
                     "--out", dir + "/a"});
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
  EXPECT_NE(ok.out.find("3 of 3 variants equivalent in every column (copy)"), std::string::npos) << ok.out;
  auto bad = run_cli({"matrix", "--styles", "none", "--converter", "bad=sh -c 'echo 0123456789 >&2; exit 3' {in} {out}", "--filter",
                      "kohya / complete / BF16", "--out", dir + "/b"});
  EXPECT_EQ(bad.exit_code, 1) << bad.err;
  EXPECT_NE(bad.out.find("a converter's cell is not equivalent"), std::string::npos) << bad.out;
  std::string log;
  for (const auto& e : fs::recursive_directory_iterator(dir + "/b/logs"))
    if (e.path().extension() == ".log") log = lv::test::read_file(e.path().string());
  EXPECT_NE(log.find("0123456789"), std::string::npos) << log;
  EXPECT_EQ(log.find("(last "), std::string::npos) << "nothing was cut:\n" << log;
  EXPECT_NE(log.find("{in} is /"), std::string::npos) << "the real path of {in}:\n" << log;
  fs::remove_all(dir);
}

