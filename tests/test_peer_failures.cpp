// The peer-tool failure cases of docs/formats.md#flux1-peer-failures, each as a case lora-verify handles.
#include <gtest/gtest.h>

#include "lora/converter.h"
#include "report/pipeline.h"
#include "support/lora_support.h"

using namespace lv;
using test::Tensor;

namespace {

const flux::Layout kTiny = flux::Layout::tiny();
const uint64_t H = static_cast<uint64_t>(kTiny.hidden);
const uint64_t M = static_cast<uint64_t>(kTiny.mlp);

// A low-rank module's two tensors (names completed by the caller's suffixes).
void add_module(std::vector<Tensor>& ts, const std::string& down, const std::string& up, uint64_t rows, uint64_t cols,
                uint64_t rank, uint64_t seed) {
  ts.push_back({down, {rank, cols}, test::random_values(rank * cols, seed)});
  ts.push_back({up, {rows, rank}, test::random_values(rows * rank, seed + 1000)});
}

void add_peft(std::vector<Tensor>& ts, const std::string& module, uint64_t rows, uint64_t cols, uint64_t rank, uint64_t seed) {
  add_module(ts, module + ".lora_A.weight", module + ".lora_B.weight", rows, cols, rank, seed);
}

report::Report verify_tiny(const std::vector<Tensor>& ts, std::map<std::string, std::string> meta = {}) {
  report::PipelineOptions o;
  o.layout = kTiny;
  auto r = report::run_verify(test::file_from_bytes(test::build_file(ts, meta)), o);
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message);
  return r.ok() ? std::move(r).value() : report::Report{};
}

bool has_finding(const report::Report& r, const std::string& id) {
  for (const auto& f : r.findings)
    if (f.id == id) return true;
  return false;
}

}  // namespace

TEST(PeerFailures, SingleBlockWithoutProjMlpConverts) {
  std::vector<Tensor> ts;
  for (const char* p : {"attn.to_q", "attn.to_k", "attn.to_v"}) add_peft(ts, std::string("transformer.single_transformer_blocks.0.") + p, H, H, 2, 1);
  auto r = verify_tiny(ts);
  EXPECT_TRUE(r.pass) << r.verdict;
  EXPECT_EQ(r.summary.zero_filled, 1);
}

TEST(PeerFailures, DoubleBlockWithQAndVButNoKConverts) {
  std::vector<Tensor> ts;
  add_peft(ts, "transformer.transformer_blocks.0.attn.to_q", H, H, 2, 1);
  add_peft(ts, "transformer.transformer_blocks.0.attn.to_v", H, H, 3, 2);
  auto r = verify_tiny(ts);
  EXPECT_TRUE(r.pass) << r.verdict;
  ASSERT_EQ(r.modules.size(), 1u);
  EXPECT_EQ(r.modules[0].ranks_in, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(r.modules[0].zero_filled, 1);
}

TEST(PeerFailures, NormOutIsSwappedOnBOnly) {
  std::vector<Tensor> ts;
  add_peft(ts, "transformer.norm_out.linear", 2 * H, H, 2, 1);
  auto r = verify_tiny(ts);
  EXPECT_TRUE(r.pass) << r.verdict;
  EXPECT_EQ(r.modules.at(0).target, "final_layer.adaLN_modulation.1");
}

TEST(PeerFailures, GuidanceLinear1AndLinear2StayTwoModules) {
  std::vector<Tensor> ts;
  add_peft(ts, "transformer.time_text_embed.guidance_embedder.linear_1", H, static_cast<uint64_t>(kTiny.time), 2, 1);
  add_peft(ts, "transformer.time_text_embed.guidance_embedder.linear_2", H, H, 2, 2);
  auto r = verify_tiny(ts);
  EXPECT_TRUE(r.pass) << r.verdict;
  ASSERT_EQ(r.modules.size(), 2u);
  EXPECT_EQ(r.modules[0].target, "guidance_in.in_layer");
  EXPECT_EQ(r.modules[1].target, "guidance_in.out_layer");
}

TEST(PeerFailures, AlphaAndBiasInAPeftFileAreRead) {
  std::vector<Tensor> ts;
  add_peft(ts, "transformer.transformer_blocks.0.attn.to_out.0", H, H, 2, 1);
  ts.push_back({"transformer.transformer_blocks.0.attn.to_out.0.alpha", {}, {4.0}});
  ts.push_back({"transformer.transformer_blocks.0.attn.to_out.0.lora_B.bias", {H}, test::random_values(H, 9)});
  auto file = test::file_from_bytes(test::build_file(ts));
  auto m = test::load_or_die(file, kTiny);
  ASSERT_EQ(m.parts.size(), 1u);
  EXPECT_EQ(m.dialect, "diffusers");
  EXPECT_DOUBLE_EQ(m.parts[0].scale, 2.0);
  EXPECT_DOUBLE_EQ(m.parts[0].bias_scale, 2.0);
  EXPECT_TRUE(verify_tiny(ts).pass);
}

TEST(PeerFailures, TextEncoderKeysBesideTransformerKeys) {
  std::vector<Tensor> ts;
  add_peft(ts, "transformer.proj_out", static_cast<uint64_t>(kTiny.out_channels), H, 2, 1);
  add_peft(ts, "text_encoder.text_model.encoder.layers.0.self_attn.q_proj", 4, 4, 2, 3);
  auto r = verify_tiny(ts);
  EXPECT_TRUE(r.pass) << r.verdict;
  EXPECT_EQ(r.summary.passthrough, 2);
  EXPECT_EQ(r.summary.unused, 0);
}

TEST(PeerFailures, BlockIndexBeyondTheLayoutIsReportedAndConverted) {
  std::vector<Tensor> ts;
  add_peft(ts, "transformer.transformer_blocks.19.attn.to_q", 3072, 3072, 1, 1);
  auto r = report::run_verify(test::file_from_bytes(test::build_file(ts)), {});
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_TRUE(has_finding(*r, "flux.blocks.beyond_layout"));
  EXPECT_TRUE(r->pass) << r->verdict;
}

TEST(PeerFailures, MixedPeftAndOldSuffixesInOneFile) {
  std::vector<Tensor> ts;
  add_peft(ts, "transformer.transformer_blocks.0.attn.to_q", H, H, 2, 1);
  add_module(ts, "transformer.transformer_blocks.0.attn.to_k.lora.down.weight", "transformer.transformer_blocks.0.attn.to_k.lora.up.weight", H, H, 2, 2);
  auto r = verify_tiny(ts);
  EXPECT_TRUE(r.pass) << r.verdict;
  EXPECT_TRUE(has_finding(r, "lora.dialect.mixed"));
}

TEST(PeerFailures, OneTrainerBflSplitIndicesPlaceRowsEvenWhenSomeAreAbsent) {
  std::vector<Tensor> ts;
  // Only index 2 (v) of img_attn.qkv and index 3 (mlp) of linear1.
  add_module(ts, "transformer.double_blocks.0.img_attn.qkv.2.lora_down.weight", "transformer.double_blocks.0.img_attn.qkv.2.lora_up.weight", H, H, 2, 1);
  add_module(ts, "transformer.single_blocks.0.linear1.3.lora_down.weight", "transformer.single_blocks.0.linear1.3.lora_up.weight", M, H, 2, 2);
  auto m = test::load_or_die(test::file_from_bytes(test::build_file(ts)), kTiny);
  ASSERT_EQ(m.parts.size(), 2u);
  for (const auto& p : m.parts) {
    if (p.target == "double_blocks.0.img_attn.qkv") {
      EXPECT_EQ(p.row_begin, static_cast<int64_t>(2 * H));
      EXPECT_EQ(p.row_end, static_cast<int64_t>(3 * H));
    } else {
      EXPECT_EQ(p.row_begin, static_cast<int64_t>(3 * H));
      EXPECT_EQ(p.row_end, static_cast<int64_t>(3 * H + M));
    }
  }
  EXPECT_TRUE(verify_tiny(ts).pass);
}

TEST(PeerFailures, KohyaFinalLayerKeysKeepTheirAlpha) {
  std::vector<Tensor> ts;
  add_module(ts, "lora_unet_final_layer_linear.lora_down.weight", "lora_unet_final_layer_linear.lora_up.weight",
             static_cast<uint64_t>(kTiny.out_channels), H, 2, 1);
  ts.push_back({"lora_unet_final_layer_linear.alpha", {}, {1.0}});
  add_module(ts, "lora_unet_final_layer_adaLN_modulation_1.lora_down.weight", "lora_unet_final_layer_adaLN_modulation_1.lora_up.weight", 2 * H, H, 2, 3);
  ts.push_back({"lora_unet_final_layer_adaLN_modulation_1.alpha", {}, {1.0}});
  auto m = test::load_or_die(test::file_from_bytes(test::build_file(ts)), kTiny);
  ASSERT_EQ(m.parts.size(), 2u);
  for (const auto& p : m.parts) EXPECT_DOUBLE_EQ(p.scale, 0.5);
  EXPECT_TRUE(verify_tiny(ts).pass);
}

TEST(PeerFailures, UpDownRankMismatchIsAnErrorFindingNotACrash) {
  std::vector<Tensor> ts;
  ts.push_back({"transformer.proj_out.lora_A.weight", {4, H}, test::random_values(4 * H, 1)});
  ts.push_back({"transformer.proj_out.lora_B.weight", {static_cast<uint64_t>(kTiny.out_channels), 2}, test::random_values(8, 2)});
  add_peft(ts, "transformer.x_embedder", H, static_cast<uint64_t>(kTiny.in_channels), 2, 3);
  auto r = verify_tiny(ts);
  EXPECT_FALSE(r.pass);
  EXPECT_TRUE(has_finding(r, "lora.rank.mismatch"));
}

TEST(PeerFailures, RightElementCountWrongShapeIsNeverReshaped) {
  std::vector<Tensor> ts;
  // 2 × 8 down reshaped would fit 4 × 4; it must not be.
  ts.push_back({"transformer.transformer_blocks.0.attn.to_q.lora_A.weight", {4, 4}, test::random_values(16, 1)});
  ts.push_back({"transformer.transformer_blocks.0.attn.to_q.lora_B.weight", {H, 4}, test::random_values(4 * H, 2)});
  add_peft(ts, "transformer.x_embedder", H, static_cast<uint64_t>(kTiny.in_channels), 2, 3);
  auto r = verify_tiny(ts);
  EXPECT_FALSE(r.pass);
  EXPECT_TRUE(has_finding(r, "lora.shape.mismatch"));
}

TEST(PeerFailures, DiffBBesideLoraDownIsKept) {
  std::vector<Tensor> ts;
  add_module(ts, "diffusion_model.double_blocks.0.img_attn.qkv.lora_down.weight", "diffusion_model.double_blocks.0.img_attn.qkv.lora_up.weight", 3 * H, H, 2, 1);
  ts.push_back({"diffusion_model.double_blocks.0.img_attn.qkv.diff_b", {3 * H}, test::random_values(3 * H, 5)});
  auto m = test::load_or_die(test::file_from_bytes(test::build_file(ts)), kTiny);
  ASSERT_EQ(m.parts.size(), 1u);
  ASSERT_TRUE(m.parts[0].bias);
  EXPECT_DOUBLE_EQ(m.parts[0].bias_scale, 1.0);
  // Split to diffusers: the bias splits by the same row ranges.
  auto r = verify_tiny(ts);
  EXPECT_TRUE(r.pass) << r.verdict;
  EXPECT_EQ(r.layout, "diffusers");
}

// Pinned by corpus/fuzz_keyset/regress-three-tensors-one-role (a null dereference once).
TEST(PeerFailures, ThreeSpellingsOfOneTensorAreReportedAsDuplicates) {
  std::vector<Tensor> ts;
  for (const char* suffix : {".lora_A.weight", ".lora_A.default.weight", ".lora.down.weight"})
    ts.push_back({std::string("transformer.proj_out") + suffix, {2, H}, test::random_values(2 * H, 1)});
  ts.push_back({"transformer.proj_out.lora_B.weight", {static_cast<uint64_t>(kTiny.out_channels), 2}, test::random_values(8, 2)});
  ts.push_back({"base_model.model.proj_out.lora_A.weight", {2, H}, test::random_values(2 * H, 3)});
  ts.push_back({"base_model.model.proj_out.lora_A.default.weight", {2, H}, test::random_values(2 * H, 4)});
  ts.push_back({"base_model.model.proj_out.lora_A.other.weight", {2, H}, test::random_values(2 * H, 5)});
  auto m = test::load_or_die(test::file_from_bytes(test::build_file(ts)), kTiny);
  int dups = 0;
  for (const auto& f : m.findings) dups += f.id == "lora.key.duplicate";
  EXPECT_EQ(dups, 3);  // one per extra spelling: two in transformer., one in base_model.model.
  EXPECT_TRUE(m.parts.empty());
}
