// The FLUX.1 module tables: counts, shapes, fused row ranges, the swap, and name recovery.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <set>

#include "flux/layout.h"

using namespace lv::flux;

TEST(FluxLayout, Dev314TargetsAnd504DiffusersModules) {
  Layout l = Layout::flux1_dev();
  EXPECT_EQ(bfl_targets(l).size(), 314u);
  EXPECT_EQ(diffusers_map(l).size(), 504u);
}

TEST(FluxLayout, SchnellHasNoGuidanceEmbedder) {
  Layout l = Layout::flux1_dev();
  l.guidance = false;
  EXPECT_EQ(bfl_targets(l).size(), 312u);
  EXPECT_EQ(diffusers_map(l).size(), 502u);
  EXPECT_FALSE(find_diffusers(l, "time_text_embed.guidance_embedder.linear_1"));
}

TEST(FluxLayout, EveryDiffusersModuleMapsToRowsThatTileItsTarget) {
  Layout l = Layout::flux1_dev();
  std::map<std::string, std::vector<PartMap>> by_target;
  for (const auto& pm : diffusers_map(l)) {
    auto found = find_diffusers(l, pm.diffusers);
    ASSERT_TRUE(found) << pm.diffusers;
    EXPECT_EQ(found->target, pm.target);
    EXPECT_EQ(found->row_begin, pm.row_begin);
    EXPECT_EQ(found->row_end, pm.row_end);
    by_target[pm.target].push_back(pm);
  }
  EXPECT_EQ(by_target.size(), 314u);
  for (const auto& t : bfl_targets(l)) {
    auto& parts = by_target[t.name];
    ASSERT_FALSE(parts.empty()) << t.name;
    int64_t next = 0;
    for (const auto& pm : parts) {
      EXPECT_EQ(pm.row_begin, next) << pm.diffusers;
      next = pm.row_end;
    }
    EXPECT_EQ(next, t.rows) << t.name;
    // The inverse: the target lists exactly these parts.
    auto inv = parts_of_target(l, t.name);
    ASSERT_EQ(inv.size(), parts.size());
    for (size_t i = 0; i < inv.size(); ++i) EXPECT_EQ(inv[i].diffusers, parts[i].diffusers);
  }
}

TEST(FluxLayout, FusedRowRangesAndShapesMatchTheFacts) {
  Layout l = Layout::flux1_dev();
  auto q = find_diffusers(l, "single_transformer_blocks.37.attn.to_q");
  auto mlp = find_diffusers(l, "single_transformer_blocks.37.proj_mlp");
  ASSERT_TRUE(q && mlp);
  EXPECT_EQ(q->target, "single_blocks.37.linear1");
  EXPECT_EQ(q->row_begin, 0);
  EXPECT_EQ(q->row_end, 3072);
  EXPECT_EQ(mlp->row_begin, 9216);
  EXPECT_EQ(mlp->row_end, 21504);
  auto v = find_diffusers(l, "transformer_blocks.18.attn.add_v_proj");
  ASSERT_TRUE(v);
  EXPECT_EQ(v->target, "double_blocks.18.txt_attn.qkv");
  EXPECT_EQ(v->row_begin, 6144);
  EXPECT_EQ(v->row_end, 9216);
  auto t = find_target(l, "single_blocks.0.linear2");
  ASSERT_TRUE(t);
  EXPECT_EQ(t->rows, 3072);
  EXPECT_EQ(t->cols, 15360);
  auto mod = find_target(l, "double_blocks.0.img_mod.lin");
  ASSERT_TRUE(mod);
  EXPECT_EQ(mod->rows, 18432);
}

TEST(FluxLayout, OnlyNormOutIsSwapped) {
  Layout l = Layout::flux1_dev();
  int swapped = 0;
  for (const auto& pm : diffusers_map(l))
    if (pm.swap_halves) {
      ++swapped;
      EXPECT_EQ(pm.diffusers, "norm_out.linear");
      EXPECT_EQ(pm.target, "final_layer.adaLN_modulation.1");
      EXPECT_EQ(pm.row_end, 6144);
    }
  EXPECT_EQ(swapped, 1);
}

TEST(FluxLayout, GuidanceLinear1AndLinear2AreTwoTargets) {
  Layout l = Layout::flux1_dev();
  auto a = find_diffusers(l, "time_text_embed.guidance_embedder.linear_1");
  auto b = find_diffusers(l, "time_text_embed.guidance_embedder.linear_2");
  ASSERT_TRUE(a && b);
  EXPECT_EQ(a->target, "guidance_in.in_layer");
  EXPECT_EQ(b->target, "guidance_in.out_layer");
}

TEST(FluxLayout, BlockIndicesOutsideTheLayoutAreNotModules) {
  Layout l = Layout::flux1_dev();
  EXPECT_FALSE(find_target(l, "double_blocks.19.img_attn.qkv"));
  EXPECT_FALSE(find_diffusers(l, "single_transformer_blocks.38.proj_mlp"));
  EXPECT_FALSE(find_target(l, "double_blocks.01.img_attn.qkv"));
  EXPECT_FALSE(find_target(l, "double_blocks..img_attn.qkv"));
  EXPECT_FALSE(find_target(l, "double_blocks.99999999999999999999.img_attn.qkv"));
  l.double_blocks = 20;
  EXPECT_TRUE(find_target(l, "double_blocks.19.img_attn.qkv"));
}

TEST(FluxLayout, UnderscoreNamesRecoverEveryModule) {
  Layout l = Layout::flux1_dev();
  auto under = [](std::string s) {
    std::replace(s.begin(), s.end(), '.', '_');
    return s;
  };
  for (const auto& t : bfl_targets(l)) EXPECT_EQ(bfl_from_underscore(under(t.name)).value_or(""), t.name);
  for (const auto& pm : diffusers_map(l))
    EXPECT_EQ(diffusers_from_underscore(under(pm.diffusers)).value_or(""), pm.diffusers);
  EXPECT_FALSE(bfl_from_underscore("double_blocks_0_img_attn_qkvx"));
  EXPECT_FALSE(diffusers_from_underscore("transformer_blocks_x_attn_to_q"));
}

TEST(FluxLayout, TinyLayoutKeepsTheStructure) {
  Layout l = Layout::tiny();
  EXPECT_EQ(bfl_targets(l).size(), 10u + 10u * 2 + 3u * 2);
  auto lin1 = find_target(l, "single_blocks.1.linear1");
  ASSERT_TRUE(lin1);
  EXPECT_EQ(lin1->rows, 3 * 8 + 16);
}
