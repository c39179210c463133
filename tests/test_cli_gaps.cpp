// Command-line details a person trips over: values in any case, every command in the
// unknown-command list and the completion, --model in every --help, a matrix summary and
// converter logs that say what happened, and no "none files" in a report.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "support/lora_support.h"

using lv::test::run_cli;

namespace fs = std::filesystem;

TEST(CliGaps, ValuesAreMatchedWithoutRegardToCase) {
  const std::string dir = lv::test::temp_dir();
  const std::string in = dir + "/s.safetensors";
  ASSERT_EQ(run_cli({"sample", in, "--tiny", "--rank", "2", "--dtype", "bf16", "--dialect", "KOHYA"}).exit_code, 0);
  for (const auto& args : std::vector<std::vector<std::string>>{{in, "--dtype", "bf16"},
                                                                {in, "--for", "ComfyUI"},
                                                                {in, "--style", "Comfy"},
                                                                {in, "--to", "Diffusers"},
                                                                {in, "--model", "FLUX1-Tiny"},
                                                                {"convert", in, "-o", dir + "/o.safetensors", "--dtype", "f16"}}) {
    auto r = run_cli(args);
    EXPECT_EQ(r.exit_code, 0) << args[1] << " " << args[2] << ": " << r.err;
  }
  fs::remove_all(dir);
}

TEST(CliGaps, EveryCommandIsListedAndCompletedAndModelIsDocumented) {
  auto u = run_cli({"convrt"});
  EXPECT_EQ(u.exit_code, 64);
  EXPECT_NE(u.err.find("corpus"), std::string::npos) << u.err;
  const std::string completion = lv::test::read_file(std::string(LV_BINARY_DIR) + "/lora-verify.bash-completion");
  for (const char* word : {"corpus", "--converter", "--styles", "--model"})
    EXPECT_NE(completion.find(word), std::string::npos) << word;
  for (const char* cmd : {"verify", "convert", "compare", "inspect", "sample"}) {
    auto h = run_cli({cmd, "--help"});
    EXPECT_EQ(h.exit_code, 0);
    EXPECT_NE(h.out.find("--model FAMILY"), std::string::npos) << cmd;
  }
  auto top = run_cli({"--help"});
  EXPECT_NE(top.out.find("--model FAMILY"), std::string::npos);
  EXPECT_NE(top.out.find("FLUX.2"), std::string::npos) << "the help names FLUX.1 only";
}

TEST(CliGaps, MatrixSummaryAndConverterLogsSayWhatHappened) {
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

TEST(CliGaps, ALokrReportNamesNoNoneDialect) {
  if (!lv::test::fixtures_present()) GTEST_SKIP() << "no ../shared/fixtures (" << lv::test::fixtures_dir() << ")";
  const std::string dir = lv::test::temp_dir();
  const std::string in = dir + "/lokr.safetensors";
  {
    auto b = lv::test::fixture_file("flux_lokr_bfl_format", 1, lv::st::DType::kBF16, 4, 4);
    std::ofstream(in, std::ios::binary).write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
  }
  for (const auto& args : std::vector<std::vector<std::string>>{{in, "--model", "flux1"}, {"inspect", in}}) {
    auto r = run_cli(args);
    EXPECT_EQ(r.out.find("none files"), std::string::npos) << r.out;
  }
  fs::remove_all(dir);
}
