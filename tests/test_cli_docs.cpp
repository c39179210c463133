// The command line as documented: every command in the unknown-command list and the
// completion, --model in every --help, the README's exit codes and options against --help;
// option values are matched without regard to case.
#include <gtest/gtest.h>

#include <cctype>
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include "support/lora_support.h"

using lv::test::run_cli;

namespace fs = std::filesystem;

// A mistyped command lists every command; the completion offers the newer words; --model is in
// every command's --help and the top-level one.
TEST(CliDocs, EveryCommandIsListedAndCompletedAndModelIsDocumented) {
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

// The README's exit-code table lists the codes --help lists, and the options --help gives
// every command are documented in the README.
TEST(CliDocs, ReadmeExitCodesAndOptionsMatchTheHelp) {
  const std::string readme = lv::test::read_file(std::string(LV_SOURCE_DIR) + "/README.md");
  ASSERT_FALSE(readme.empty());
  const std::string help = run_cli({"--help"}).out;
  std::vector<std::string> from_readme, from_help;
  std::istringstream r(readme.substr(readme.find("### Exit codes")));
  for (std::string line; std::getline(r, line) && (line.empty() || line[0] != '#' || from_readme.empty());) {
    if (line.rfind("| ", 0) == 0 && line.size() > 2 && std::isdigit(static_cast<unsigned char>(line[2])))
      from_readme.push_back(line.substr(2, line.find(" |", 2) - 2));
    if (!from_readme.empty() && line.empty()) break;
  }
  std::istringstream h(help.substr(help.find("exit codes:")));
  for (std::string line; std::getline(h, line);)
    if (line.rfind("  ", 0) == 0 && line.size() > 2 && std::isdigit(static_cast<unsigned char>(line[2])))
      from_help.push_back(line.substr(2, line.find("  ", 2) - 2));
  EXPECT_EQ(from_readme, from_help);
  EXPECT_EQ(from_help, (std::vector<std::string>{"0", "1", "64", "65", "66", "70", "73", "74", "130, 143"}));
  for (const char* o : {"--quiet", "--verbose", "--progress", "cmake --install", "cpack -G DEB", "bash-completion"})
    EXPECT_NE(readme.find(o), std::string::npos) << o;
}

// Dialects, dtypes, loaders, styles, layouts and model names are taken in any case.
TEST(CliOptionValues, ValuesAreMatchedWithoutRegardToCase) {
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

