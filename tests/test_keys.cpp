// The key canonicaliser: every dialect's spelling reduces to (dialect, module, role).
#include <gtest/gtest.h>

#include "lora/keys.h"

using namespace lv;

struct KeyCase {
  const char* name;
  const char* dialect;
  const char* module;
  Role role;
  int split;
};

TEST(KeyParse, EveryDialectSpelling) {
  const KeyCase cases[] = {
      {"transformer.single_transformer_blocks.0.attn.to_q.lora_A.weight", "diffusers", "single_transformer_blocks.0.attn.to_q", Role::kDown, -1},
      {"transformer.single_transformer_blocks.0.attn.to_q.lora_B.default.weight", "diffusers", "single_transformer_blocks.0.attn.to_q", Role::kUp, -1},
      {"base_model.model.proj_out.lora_A.weight", "fal", "proj_out", Role::kDown, -1},
      {"single_transformer_blocks.3.proj_mlp.lora_B.weight", "diffusers", "single_transformer_blocks.3.proj_mlp", Role::kUp, -1},
      {"transformer.transformer_blocks.0.attn.to_k.lora.down.weight", "diffusers-old", "transformer_blocks.0.attn.to_k", Role::kDown, -1},
      {"transformer.transformer_blocks.0.attn.to_k_lora.up.weight", "diffusers-old", "transformer_blocks.0.attn.to_k", Role::kUp, -1},
      {"transformer.norm_out.linear.lora_B.bias", "diffusers", "norm_out.linear", Role::kBias, -1},
      {"lora_unet_double_blocks_0_img_attn_qkv.lora_down.weight", "kohya", "double_blocks.0.img_attn.qkv", Role::kDown, -1},
      {"lora_unet_final_layer_adaLN_modulation_1.alpha", "kohya", "final_layer.adaLN_modulation.1", Role::kAlpha, -1},
      {"lora_unet_single_blocks_7_linear1.diff_b", "kohya", "single_blocks.7.linear1", Role::kDiffB, -1},
      {"diffusion_model.double_blocks.0.img_attn.qkv.lora_up.weight", "comfy", "double_blocks.0.img_attn.qkv", Role::kUp, -1},
      {"diffusion_model.double_blocks.0.img_attn.qkv.lora_A.weight", "ai-toolkit", "double_blocks.0.img_attn.qkv", Role::kDown, -1},
      {"double_blocks.0.img_attn.proj.lora_B.bias", "bfl", "double_blocks.0.img_attn.proj", Role::kBias, -1},
      {"base_model.model.double_blocks.0.img_attn.qkv.lora_A.weight", "fal-kontext", "double_blocks.0.img_attn.qkv", Role::kDown, -1},
      {"lora_transformer_single_transformer_blocks_0_attn_to_k.dora_scale", "onetrainer", "single_transformer_blocks.0.attn.to_k", Role::kDoraScale, -1},
      {"transformer.double_blocks.0.img_attn.qkv.2.lora_down.weight", "onetrainer-bfl", "double_blocks.0.img_attn.qkv", Role::kDown, 2},
      {"transformer.single_blocks.1.linear1.3.alpha", "onetrainer-bfl", "single_blocks.1.linear1", Role::kAlpha, 3},
      {"double_blocks.0.processor.qkv_lora1.down.weight", "xlabs", "double_blocks.0.processor.qkv_lora1", Role::kDown, -1},
      {"single_blocks.2.processor.qkv_lora.up.weight", "xlabs", "single_blocks.2.processor.qkv_lora", Role::kUp, -1},
      {"diffusion_model.double_blocks.0.img_attn.proj.lokr_w1", "comfy+lycoris", "double_blocks.0.img_attn.proj", Role::kLokrW1, -1},
      {"lycoris_single_transformer_blocks_0_attn_to_q.hada_w1_a", "lycoris", "single_transformer_blocks.0.attn.to_q", Role::kHadaW1A, -1},
  };
  for (const auto& c : cases) {
    auto k = parse_key(c.name);
    ASSERT_TRUE(k) << c.name;
    EXPECT_EQ(k->dialect, c.dialect) << c.name;
    EXPECT_EQ(k->module, c.module) << c.name;
    EXPECT_EQ(k->role, c.role) << c.name;
    EXPECT_EQ(k->split_index, c.split) << c.name;
  }
}

TEST(KeyParse, TheDefaultAdapterIsTheUnnamedOne) {
  auto a = parse_key("transformer.proj_out.lora_A.weight");
  auto b = parse_key("transformer.proj_out.lora_A.default.weight");
  auto c = parse_key("transformer.proj_out.lora_A.style2.weight");
  ASSERT_TRUE(a && b && c);
  EXPECT_EQ(a->group, b->group);
  EXPECT_NE(a->group, c->group);
  EXPECT_EQ(c->adapter, "style2");
}

TEST(KeyParse, ImgMlpZeroIsAModuleNotASplitIndex) {
  auto k = parse_key("diffusion_model.double_blocks.0.img_mlp.0.lora_A.weight");
  ASSERT_TRUE(k);
  EXPECT_EQ(k->module, "double_blocks.0.img_mlp.0");
  EXPECT_EQ(k->split_index, -1);
}

TEST(KeyParse, UnknownSpellingsAreNotGuessed) {
  for (const char* n : {"", ".", "lora_A.weight", "transformer.", "foo.bar", "lora_unet_blocks_0_attn_wq.lora_down.weight",
                        "double_blocks.0.img_attn.qkv.down.weight" /* .down outside XLabs processors */,
                        "diffusion_model.transformer_blocks.0.attn.to_q.lora_A.weight"}) {
    EXPECT_FALSE(parse_key(n)) << n;
  }
}

TEST(KeyParse, TextEncodersArePassedThrough) {
  EXPECT_EQ(text_encoder_label("lora_te1_text_model_encoder_layers_0_mlp_fc1.alpha").value_or(""), "CLIP-L");
  EXPECT_EQ(text_encoder_label("lora_te3_encoder_block_0_layer_0_SelfAttention_q.lora_up.weight").value_or(""), "T5-XXL");
  EXPECT_TRUE(text_encoder_label("text_encoder.text_model.encoder.layers.0.self_attn.q_proj.lora_A.weight"));
  EXPECT_FALSE(text_encoder_label("transformer.proj_out.lora_A.weight"));
}

TEST(KeyParse, BflNamedDialectsGoToDiffusersByDefault) {
  for (const char* d : {"kohya", "comfy", "comfy-bare", "ai-toolkit", "bfl", "fal-kontext", "onetrainer-bfl", "xlabs"})
    EXPECT_TRUE(dialect_is_bfl_named(dialect_from_name(d).value())) << d;
  for (const char* d : {"diffusers", "diffusers-old", "fal", "onetrainer", "lycoris", "none"})
    EXPECT_FALSE(dialect_is_bfl_named(dialect_from_name(d).value())) << d;
}
