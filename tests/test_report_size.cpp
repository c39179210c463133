// Reports a person reads: the default text report of every real key set fits a screen
// (at most 80 lines), the model line is one short line (its evidence under --verbose), and
// --all shows everything that was collapsed.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "support/lora_support.h"

namespace {

namespace fs = std::filesystem;

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

}  // namespace

TEST(ReportSize, EveryRealKeySetsReportFitsAScreen) {
  if (!lv::test::fixtures_present()) GTEST_SKIP() << "no ../shared/fixtures (" << lv::test::fixtures_dir() << ")";
  const std::string dir = lv::test::temp_dir();
  int reports = 0;
  for (const auto& e : fs::directory_iterator(lv::test::fixtures_dir())) {
    if (e.path().extension() != ".json") continue;
    const std::string name = e.path().stem().string();
    const std::string in = dir + "/" + name + ".safetensors";
    {
      auto b = lv::test::fixture_file(name, 5, lv::st::DType::kBF16, 4, 4);
      std::ofstream(in, std::ios::binary).write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
    }
    const std::vector<std::vector<std::string>> runs = {{in},
                                                        {in, "--to", "diffusers"},
                                                        {in, "--to", "bfl"},
                                                        {in, "--model", "flux1"},
                                                        {"convert", in, "-o", dir + "/out.safetensors"},
                                                        {"inspect", in}};
    for (const auto& args : runs) {
      auto r = lv::test::run_cli(args);
      const auto ls = lines(r.out);
      ++reports;
      EXPECT_LE(ls.size(), 80u) << name << " " << args[1] << ": " << ls.size() << " lines\n" << r.out;
      for (const auto& l : ls)
        if (l.rfind("model:", 0) == 0) EXPECT_LE(l.size(), 80u) << name << ": " << l;
    }
    // --all: every finding of the JSON report is a line of the text report.
    auto all = lv::test::run_cli({in, "--all", "--model", "flux1"});
    auto json = lv::test::run_cli({in, "--json", "-", "--model", "flux1"});
    if (json.exit_code <= 1) {
      const auto j = nlohmann::json::parse(json.out);
      size_t finding_lines = 0;
      for (const auto& l : lines(all.out))
        for (const auto& f : j["findings"])
          if (l.rfind("  " + f["severity"].get<std::string>() + " " + f["id"].get<std::string>(), 0) == 0 &&
              l.find(f["message"].get<std::string>()) != std::string::npos && l.find(" more like it") == std::string::npos) {
            ++finding_lines;
            break;
          }
      EXPECT_EQ(finding_lines, j["findings"].size()) << name;
      EXPECT_NE(all.out.find(j["model"]["evidence"][0].get<std::string>()), std::string::npos) << name;
    }
    fs::remove(in);
  }
  EXPECT_GT(reports, 0);
  fs::remove_all(dir);
}

// The model's evidence is printed under --verbose, and not otherwise.
TEST(ReportSize, TheModelEvidenceIsShownUnderVerbose) {
  const std::string dir = lv::test::temp_dir();
  const std::string in = dir + "/s.safetensors";
  ASSERT_EQ(lv::test::run_cli({"sample", in, "--tiny", "--rank", "2"}).exit_code, 0);
  auto plain = lv::test::run_cli({in});
  auto verbose = lv::test::run_cli({in, "--verbose"});
  EXPECT_NE(plain.out.find("model:        FLUX.1 (tiny test layout) (flux1-tiny)\n"), std::string::npos) << plain.out;
  EXPECT_EQ(plain.out.find("widths:"), std::string::npos) << plain.out;
  EXPECT_NE(verbose.out.find("widths:"), std::string::npos) << verbose.out;
  fs::remove_all(dir);
}
