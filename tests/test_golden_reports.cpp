// Golden reports: the text, JSON and Markdown that `lora-verify` and `lora-verify compare`
// print for small generated inputs, against files committed in tests/golden/. The
// Markdown and text are compared byte for byte (their numbers have 3 significant digits);
// the JSON structurally, with numbers equal to 1e-9 relative, so a last-bit difference of a
// floating-point library cannot break it while any change of content does. The temporary
// directory is written as DIR.
//
// After an intended change of the report format: LV_UPDATE_GOLDEN=1 ctest -R Golden, then
// review the diff of tests/golden/.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "support/lora_support.h"

namespace {

using lv::test::run_cli;
const std::string kGolden = std::string(LV_SOURCE_DIR) + "/tests/golden/";

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  for (size_t p = 0; (p = s.find(from, p)) != std::string::npos; p += to.size()) s.replace(p, from.size(), to);
  return s;
}

bool updating() {
  const char* v = std::getenv("LV_UPDATE_GOLDEN");
  return v && std::string(v) == "1";
}

// Same JSON, numbers to 1e-9 relative; `path` names the first difference.
bool same_json(const nlohmann::json& a, const nlohmann::json& b, const std::string& path, std::string& diff) {
  if (a.is_number() && b.is_number()) {
    const double x = a.get<double>(), y = b.get<double>();
    if (x == y || std::fabs(x - y) <= 1e-9 * std::max(std::fabs(x), std::fabs(y))) return true;
    diff = path + ": " + a.dump() + " vs " + b.dump();
    return false;
  }
  if (a.type() != b.type() || a.size() != b.size()) {
    diff = path + ": " + a.dump().substr(0, 200) + " vs " + b.dump().substr(0, 200);
    return false;
  }
  if (a.is_object()) {
    for (auto it = a.begin(); it != a.end(); ++it) {
      if (!b.contains(it.key())) {
        diff = path + "." + it.key() + ": missing";
        return false;
      }
      if (!same_json(it.value(), b[it.key()], path + "." + it.key(), diff)) return false;
    }
    // Key order is part of the schema's stability.
    auto ia = a.begin();
    auto ib = b.begin();
    for (; ia != a.end(); ++ia, ++ib)
      if (ia.key() != ib.key()) {
        diff = path + ": key order " + ia.key() + " vs " + ib.key();
        return false;
      }
    return true;
  }
  if (a.is_array()) {
    for (size_t i = 0; i < a.size(); ++i)
      if (!same_json(a[i], b[i], path + "[" + std::to_string(i) + "]", diff)) return false;
    return true;
  }
  if (a != b) {
    diff = path + ": " + a.dump() + " vs " + b.dump();
    return false;
  }
  return true;
}

class GoldenReports : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = lv::test::temp_dir();
    sample_ = dir_ + "/sample.safetensors";
    ASSERT_EQ(run_cli({"sample", sample_, "--tiny", "--rank", "3", "--no-proj-mlp", "--bias"}).exit_code, 0);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string normalised(const std::string& text) const { return replace_all(text, dir_, "DIR"); }

  // Compares (or, when updating, writes) one golden file.
  void check(const std::string& name, const std::string& actual_raw, bool json) {
    const std::string actual = normalised(actual_raw);
    const std::string path = kGolden + name;
    if (updating()) {
      std::filesystem::create_directories(kGolden);
      std::ofstream(path, std::ios::binary) << actual;
      return;
    }
    const std::string expected = lv::test::read_file(path);
    ASSERT_FALSE(expected.empty()) << path << " is missing; run LV_UPDATE_GOLDEN=1 ctest -R Golden";
    if (!json) {
      EXPECT_EQ(actual, expected) << name;
      return;
    }
    std::string diff;
    EXPECT_TRUE(same_json(nlohmann::ordered_json::parse(expected), nlohmann::ordered_json::parse(actual), name, diff))
        << diff;
  }

  std::string dir_, sample_;
};

TEST_F(GoldenReports, VerifyOfASampleThatPasses) {
  auto r = run_cli({sample_, "--json", dir_ + "/verify.json", "--markdown", dir_ + "/verify.md"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  check("verify-pass.txt", r.out, false);
  check("verify-pass.json", lv::test::read_file(dir_ + "/verify.json"), true);
  check("verify-pass.md", lv::test::read_file(dir_ + "/verify.md"), false);
}

TEST_F(GoldenReports, CompareWithAnUnrelatedFileFails) {
  const std::string other = dir_ + "/other.safetensors";
  ASSERT_EQ(run_cli({"sample", other, "--tiny", "--rank", "2", "--seed", "99", "--dialect", "kohya"}).exit_code, 0);
  auto r = run_cli({"compare", sample_, other, "--json", dir_ + "/compare.json", "--markdown", dir_ + "/compare.md"});
  ASSERT_EQ(r.exit_code, 1) << r.err;
  check("compare-fail.txt", r.out, false);
  check("compare-fail.json", lv::test::read_file(dir_ + "/compare.json"), true);
  check("compare-fail.md", lv::test::read_file(dir_ + "/compare.md"), false);
}

TEST_F(GoldenReports, ConvertToDiffusersOfAKohyaFile) {
  const std::string kohya = dir_ + "/kohya.safetensors", out = dir_ + "/out.safetensors";
  ASSERT_EQ(run_cli({"sample", kohya, "--tiny", "--rank", "2", "--seed", "5", "--dialect", "kohya"}).exit_code, 0);
  auto r = run_cli({"convert", kohya, "-o", out, "--json", dir_ + "/convert.json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  check("convert-kohya.txt", r.out, false);
  check("convert-kohya.json", lv::test::read_file(dir_ + "/convert.json"), true);
}

// FLUX.2 (its tiny test layout): the model line with its evidence, the fused qkv, the 1:1
// linear1, and the loaders' FLUX.2 facts.
TEST_F(GoldenReports, VerifyOfAFlux2AiToolkitFile) {
  const std::string f2 = dir_ + "/flux2.safetensors";
  ASSERT_EQ(run_cli({"sample", f2, "--model", "flux2-tiny", "--rank", "2", "--seed", "3", "--dialect", "ai-toolkit"}).exit_code, 0);
  auto r = run_cli({f2, "--to", "diffusers", "--json", dir_ + "/flux2.json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  check("verify-flux2.txt", r.out, false);
  check("verify-flux2.json", lv::test::read_file(dir_ + "/flux2.json"), true);
}

}  // namespace
