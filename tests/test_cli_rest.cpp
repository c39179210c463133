// The lora-verify binary, continued (issue 15): messages when nothing could be checked,
// one finding per module, untrained LoRAs, inspect's modules, --quiet/--verbose/--progress.
#include <gtest/gtest.h>

#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "support/lora_support.h"

using lv::test::run_cli;

namespace {

class CliRest : public ::testing::Test {
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
TEST_F(CliRest, NothingCheckedSaysWhyAndFindingsAreOnePerModule) {
  const std::string in = write("bad.safetensors", all_shapes_wrong());
  auto r = run_cli({in});
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_EQ(r.out.rfind("FAIL: nothing converted: 18 tensors unusable — shape mismatch, see findings\n", 0), 0u) << r.out;
  EXPECT_EQ(r.out.find("all 0 modules"), std::string::npos) << r.out;
  EXPECT_EQ(lines_with(r.out, "lora.shape.mismatch"), 6) << r.out;
  EXPECT_EQ(lines_with(r.out, "lora_unet_double_blocks_0_img_attn_qkv.lora_down.weight, lora_unet_double_blocks_0_img_attn_qkv.lora_up.weight, "
                         "lora_unet_double_blocks_0_img_attn_qkv.alpha: not used"),
            1)
      << r.out;
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
