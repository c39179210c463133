// `lora-verify corpus DIR`: every matching built-in variant as a file, a manifest that lists
// exactly those files with their targets, parts and loader verdicts, and identical bytes
// between runs.
#include <gtest/gtest.h>

#include <filesystem>
#include <set>

#include <nlohmann/json.hpp>

#include "matrix/variants.h"
#include "support/lora_support.h"

namespace {

std::set<std::string> files_in(const std::string& dir) {
  std::set<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(dir)) out.insert(e.path().filename().string());
  return out;
}

}  // namespace

TEST(Corpus, WritesEveryVariantWithAManifestAndIdenticalBytesBetweenRuns) {
  const std::string dir = lv::test::temp_dir();
  const std::string filter = "no-proj-mlp / BF16";
  auto a = lv::test::run_cli({"corpus", dir + "/a", "--filter", filter});
  ASSERT_EQ(a.exit_code, 0) << a.out << a.err;
  auto b = lv::test::run_cli({"corpus", "--filter", filter, dir + "/b"});
  ASSERT_EQ(b.exit_code, 0) << b.out << b.err;
  const auto names = files_in(dir + "/a");
  ASSERT_EQ(names, files_in(dir + "/b"));
  for (const auto& n : names)
    EXPECT_TRUE(lv::test::read_file(dir + "/a/" + n) == lv::test::read_file(dir + "/b/" + n)) << n << " differs between runs";

  const auto variants = lv::matrix::builtin_variants_matching(filter);
  ASSERT_EQ(variants.size(), 5u);  // diffusers, diffusers-old, fal, onetrainer, onetrainer-bfl
  auto manifest = nlohmann::json::parse(lv::test::read_file(dir + "/a/manifest.json"));
  EXPECT_EQ(manifest["schema"], "lora-verify.corpus/1");
  ASSERT_EQ(manifest["files"].size(), variants.size());
  std::set<std::string> listed = {"manifest.json"};
  for (size_t i = 0; i < variants.size(); ++i) {
    const auto& f = manifest["files"][i];
    SCOPED_TRACE(variants[i].name);
    EXPECT_EQ(f["variant"], variants[i].name);
    EXPECT_EQ(f["file"], variants[i].file);
    EXPECT_EQ(f["structure"], "no-proj-mlp");
    EXPECT_EQ(f["dtype"], "BF16");
    EXPECT_EQ(f["expected"]["outcome"], "equivalent");
    listed.insert(f["file"].get<std::string>());
    // The file is the variant: it verifies, and its dialect is the one named.
    auto v = lv::test::run_cli({"inspect", dir + "/a/" + f["file"].get<std::string>(), "--json"});
    EXPECT_EQ(v.exit_code, 0) << v.err;
    EXPECT_FALSE(f["detected_dialect"].get<std::string>().empty());  // fal files read as diffusers
    // Each single block's linear1 lacks the mlp rows [3H, 7H): present false, zero-filled.
    bool seen = false;
    for (const auto& t : f["targets"]) {
      if (t["target"] != "single_blocks.0.linear1") continue;
      seen = true;
      EXPECT_EQ(t["rows"], 21504);
      EXPECT_EQ(t["zero_filled"], 1);
      ASSERT_EQ(t["parts"].size(), 4u);
      EXPECT_EQ(t["parts"][3]["row_begin"], 9216);
      EXPECT_EQ(t["parts"][3]["row_end"], 21504);
      EXPECT_EQ(t["parts"][3]["present"], false);
      EXPECT_EQ(t["parts"][0]["present"], true);
    }
    EXPECT_TRUE(seen);
    // One verdict per profiled loader; InvokeAI 5.1.1 rejects a partial single block.
    ASSERT_EQ(f["loaders"].size(), 7u);
    for (const auto& l : f["loaders"]) {
      if (l["loader"] == "invokeai-5.1" && f["dialect"] == "diffusers") {
        EXPECT_EQ(l["input"], "rejects");
      }
    }
  }
  EXPECT_EQ(listed, names) << "the manifest lists every file, and only those";
  std::filesystem::remove_all(dir);
}

TEST(Corpus, UsageAndEmptyFilter) {
  const std::string dir = lv::test::temp_dir();
  EXPECT_EQ(lv::test::run_cli({"corpus"}).exit_code, 64);
  EXPECT_EQ(lv::test::run_cli({"corpus", dir, "--bogus"}).exit_code, 64);
  EXPECT_EQ(lv::test::run_cli({"corpus", dir, dir + "/2"}).exit_code, 64);
  EXPECT_EQ(lv::test::run_cli({"corpus", "--filter"}).exit_code, 64);
  auto none = lv::test::run_cli({"corpus", dir + "/x", "--filter", "no such variant"});
  EXPECT_EQ(none.exit_code, 1);
  EXPECT_FALSE(std::filesystem::exists(dir + "/x"));
  auto help = lv::test::run_cli({"corpus", "--help"});
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_NE(help.out.find("manifest.json"), std::string::npos);
  std::filesystem::remove_all(dir);
}
