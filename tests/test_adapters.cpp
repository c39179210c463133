// LoKr, LoHa and dense-diff deltas: exact ΔW, renamed when 1:1, dense when fused, refused
// when dense output is forbidden, reported (never reshaped) when shapes do not fit.
#include <gtest/gtest.h>

#include "lora/converter.h"
#include "report/pipeline.h"
#include "support/lora_support.h"

using namespace lv;
using test::Tensor;

namespace {

const flux::Layout kTiny = flux::Layout::tiny();
const uint64_t H = static_cast<uint64_t>(kTiny.hidden);

report::PipelineOptions tiny_opts() {
  report::PipelineOptions o;
  o.layout = kTiny;
  return o;
}

std::vector<Tensor> lokr(const std::string& module, uint64_t r1, uint64_t c1, uint64_t r2, uint64_t c2, uint64_t seed) {
  return {{module + ".lokr_w1", {r1, c1}, test::random_values(r1 * c1, seed)},
          {module + ".lokr_w2", {r2, c2}, test::random_values(r2 * c2, seed + 1)},
          {module + ".alpha", {}, {4.0}}};
}

std::vector<Tensor> loha(const std::string& module, uint64_t rows, uint64_t cols, uint64_t r, uint64_t seed) {
  return {{module + ".hada_w1_a", {rows, r}, test::random_values(rows * r, seed)},
          {module + ".hada_w1_b", {r, cols}, test::random_values(r * cols, seed + 1)},
          {module + ".hada_w2_a", {rows, r}, test::random_values(rows * r, seed + 2)},
          {module + ".hada_w2_b", {r, cols}, test::random_values(r * cols, seed + 3)},
          {module + ".alpha", {}, {1.0}}};
}

bool has_finding(const report::Report& r, const std::string& id) {
  for (const auto& f : r.findings)
    if (f.id == id) return true;
  return false;
}

}  // namespace

TEST(Adapters, LokrOnAOneToOneTargetIsRenamedAndVerified) {
  auto ts = lokr("diffusion_model.double_blocks.0.img_attn.proj", 2, 2, H / 2, H / 2, 1);
  auto r = report::run_verify(test::file_from_bytes(test::build_file(ts)), tiny_opts());
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_TRUE(r->pass) << report::render_text(*r, true);
  ASSERT_EQ(r->modules.size(), 1u);
  EXPECT_EQ(r->modules[0].strategy, "adapter-rename");
}

TEST(Adapters, LokrOnAFusedPartBecomesDenseAndVerifies) {
  auto ts = lokr("lycoris_transformer_blocks_0_attn_to_q", 2, 2, H / 2, H / 2, 1);
  auto more = loha("lycoris_single_transformer_blocks_0_attn_to_k", H, H, 2, 7);
  ts.insert(ts.end(), more.begin(), more.end());
  auto file = test::file_from_bytes(test::build_file(ts));
  auto r = report::run_verify(file, tiny_opts());
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_TRUE(r->pass) << report::render_text(*r, true);
  for (const auto& m : r->modules) EXPECT_EQ(m.strategy, "dense") << m.target;
  EXPECT_TRUE(has_finding(*r, "convert.dense"));
  auto refused_opts = tiny_opts();
  refused_opts.allow_dense = false;
  auto refused = report::run_verify(file, refused_opts);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, ErrorCode::kBadInput);
  EXPECT_NE(refused.error().message.find("dense output is not allowed"), std::string::npos) << refused.error().message;
}

TEST(Adapters, LokrShapeThatDoesNotFitIsReportedNotReshaped) {
  // kron(2×2, 2×4) is 4×8; the target needs 8×8. It must be reported, never reshaped.
  auto ts = lokr("diffusion_model.double_blocks.0.img_attn.proj", 2, 2, 2, 4, 1);
  auto r = report::run_verify(test::file_from_bytes(test::build_file(ts)), tiny_opts());
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_FALSE(r->pass);
  EXPECT_TRUE(has_finding(*r, "lora.shape.mismatch"));
}

TEST(Adapters, DenseDiffWithLowRankPartsFusesDensely) {
  std::vector<Tensor> ts = {
      {"transformer.single_transformer_blocks.1.proj_mlp.diff", {static_cast<uint64_t>(kTiny.mlp), H},
       test::random_values(static_cast<size_t>(kTiny.mlp) * H, 3)},
      {"transformer.single_transformer_blocks.1.attn.to_q.lora_A.weight", {2, H}, test::random_values(2 * H, 4)},
      {"transformer.single_transformer_blocks.1.attn.to_q.lora_B.weight", {H, 2}, test::random_values(2 * H, 5)},
  };
  auto r = report::run_verify(test::file_from_bytes(test::build_file(ts)), tiny_opts());
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_TRUE(r->pass) << report::render_text(*r, true);
}
