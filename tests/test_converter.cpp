// The reference converter: every fusion strategy, partial key sets, scales, the norm_out
// swap, biases, styles, round trips — each verified by the equivalence engine.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "lora/converter.h"
#include "lora/reread.h"
#include "report/pipeline.h"
#include "safetensors/writer.h"
#include "support/lora_support.h"
#include "verify/equivalence.h"

using namespace lv;
using lv::test::generated;
using lv::test::load_or_die;

namespace {

const flux::Layout kTiny = flux::Layout::tiny();

GenSpec tiny_spec(const std::string& dialect = "diffusers") {
  GenSpec s;
  s.layout = kTiny;
  s.dialect = dialect;
  s.rank = 4;
  s.dtype = st::DType::kF32;
  s.seed = 11;
  return s;
}

struct Converted {
  Conversion conv;
  std::shared_ptr<const st::SafetensorsFile> file;
  LoraModel model;
};

Converted convert_and_reload(const LoraModel& in, OutputLayout to, Style style, std::optional<st::DType> dtype = {}) {
  ConvertOptions o;
  o.to = to;
  o.style = style;
  o.dtype = dtype;
  auto c = lv::convert_and_reread(in, o, "converted.safetensors");
  EXPECT_TRUE(c.ok()) << (c.ok() ? "" : c.error().message);
  if (!c.ok()) return {};
  return {std::move(c->conversion), c->out.file, std::move(c->out.model)};
}

verify::CompareResult compare_or_die(const LoraModel& a, const LoraModel& b) {
  auto r = verify::compare(a, b);
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message);
  return std::move(r).value();
}

void expect_equivalent(const LoraModel& a, const LoraModel& b, double max_error = 1e-6) {
  auto r = compare_or_die(a, b);
  EXPECT_TRUE(r.all_equivalent);
  for (const auto& m : r.modules) {
    EXPECT_EQ(m.status, verify::ModuleStatus::kEquivalent) << m.target << " " << m.message;
    EXPECT_LE(m.relative_error, max_error) << m.target;
  }
}

const OutTensor* find_out(const Conversion& c, const std::string& name) {
  for (const auto& t : c.tensors)
    if (t.name == name) return &t;
  return nullptr;
}

std::vector<double> decode(const st::TensorView& t) {
  std::vector<double> v(t.numel);
  st::decode_to_double(t.dtype, t.data, t.numel, v.data());
  return v;
}

}  // namespace

TEST(Convert, CompleteDiffusersToEveryBflStyleIsEquivalent) {
  auto in = load_or_die(generated(tiny_spec()), kTiny);
  ASSERT_EQ(in.dialect, "diffusers");
  for (Style s : {Style::kKohya, Style::kComfy, Style::kPeft, Style::kBfl}) {
    SCOPED_TRACE(std::string(style_name(s)));
    auto out = convert_and_reload(in, OutputLayout::kBfl, s);
    EXPECT_EQ(out.model.parts.size(), flux::bfl_targets(kTiny).size());
    expect_equivalent(in, out.model);
  }
}

TEST(Convert, SharedScaleUsesAlphaRewriteAndKeepsWeightsBitExact) {
  auto in = load_or_die(generated(tiny_spec()), kTiny);
  auto out = convert_and_reload(in, OutputLayout::kBfl, Style::kKohya);
  bool saw_fused = false;
  for (const auto& m : out.conv.modules)
    if (m.target == "single_blocks.0.linear1") {
      EXPECT_EQ(m.strategy, Strategy::kAlphaRewrite);
      EXPECT_EQ(m.rank, 16);
      saw_fused = true;
    }
  ASSERT_TRUE(saw_fused);
  // alpha = s · Σr = 1 · 16 and the stacked down holds the parts' downs byte for byte.
  const OutTensor* alpha = find_out(out.conv, "lora_unet_single_blocks_0_linear1.alpha");
  ASSERT_TRUE(alpha);
  float a = 0;
  std::memcpy(&a, alpha->data().data(), 4);
  EXPECT_EQ(a, 16.0f);
  const OutTensor* down = find_out(out.conv, "lora_unet_single_blocks_0_linear1.lora_down.weight");
  const st::TensorView* q = in.file->find("transformer.single_transformer_blocks.0.attn.to_q.lora_A.weight");
  ASSERT_TRUE(down && q);
  EXPECT_EQ(std::memcmp(down->data().data(), q->data, q->nbytes), 0);
}

TEST(Convert, MissingProjMlpGivesExactlyZeroRows) {
  GenSpec spec = tiny_spec();
  spec.proj_mlp = false;
  auto in = load_or_die(generated(spec), kTiny);
  auto out = convert_and_reload(in, OutputLayout::kBfl, Style::kKohya);
  expect_equivalent(in, out.model);
  const st::TensorView* up = out.file->find("lora_unet_single_blocks_1_linear1.lora_up.weight");
  ASSERT_TRUE(up);
  ASSERT_EQ(up->shape[0], static_cast<uint64_t>(3 * kTiny.hidden + kTiny.mlp));
  auto v = decode(*up);
  const uint64_t r = up->shape[1];
  for (uint64_t row = 3 * kTiny.hidden; row < up->shape[0]; ++row)
    for (uint64_t c = 0; c < r; ++c) ASSERT_EQ(v[row * r + c], 0.0) << "row " << row;
  int zero_filled = 0;
  for (const auto& m : out.conv.modules) zero_filled += m.zero_filled;
  EXPECT_EQ(zero_filled, static_cast<int>(kTiny.single_blocks));
}

TEST(Convert, PartialKeySetsConvert) {
  const std::vector<std::vector<std::string>> skips = {
      {"attn.to_q", "attn.to_k", "attn.to_v"},  // only proj_mlp in single blocks
      {"attn.to_q", "attn.to_k", "proj_mlp"},   // only to_v
      {"attn.to_k", "proj_mlp"},                // to_q + to_v
      {"attn.add_k_proj"},                      // double block text stream without k
  };
  for (const auto& skip : skips) {
    GenSpec spec = tiny_spec();
    spec.skip = skip;
    auto in = load_or_die(generated(spec), kTiny);
    for (Style s : {Style::kKohya, Style::kPeft}) {
      auto out = convert_and_reload(in, OutputLayout::kBfl, s);
      expect_equivalent(in, out.model);
    }
  }
}

TEST(Convert, MixedRanksAndPerPartAlphaFoldScales) {
  GenSpec spec = tiny_spec();
  spec.mixed_ranks = true;
  spec.alpha = 3;
  spec.per_part_alpha = true;
  auto in = load_or_die(generated(spec), kTiny);
  auto out = convert_and_reload(in, OutputLayout::kBfl, Style::kKohya);
  expect_equivalent(in, out.model);
  bool folded = false;
  for (const auto& m : out.conv.modules) folded |= m.strategy == Strategy::kFolded;
  EXPECT_TRUE(folded);
  // BF16 output of an F32 source still passes at BF16's tolerance.
  auto bf = convert_and_reload(in, OutputLayout::kBfl, Style::kComfy, st::DType::kBF16);
  expect_equivalent(in, bf.model, 0.05);
}

TEST(Convert, ScaleFromMetadataAndRsLora) {
  GenSpec spec = tiny_spec();
  spec.metadata_alpha = true;
  auto in = load_or_die(generated(spec), kTiny);
  ASSERT_FALSE(in.parts.empty());
  EXPECT_DOUBLE_EQ(in.parts[0].scale, 2.0);  // lora_alpha 2r over r
  spec.rslora = true;
  auto rs = load_or_die(generated(spec), kTiny);
  EXPECT_DOUBLE_EQ(rs.parts[0].scale, 8.0 / 2.0);  // 2r / sqrt(r) at r = 4
  for (const auto* m : {&in, &rs}) {
    auto out = convert_and_reload(*m, OutputLayout::kBfl, Style::kPeft);
    expect_equivalent(*m, out.model);
    EXPECT_EQ(out.conv.metadata.count("lora_adapter_metadata"), 0u);
  }
}

TEST(Convert, NormOutSwapsTheHalvesOfBOnlyAndBiasToo) {
  GenSpec spec = tiny_spec();
  spec.bias = true;
  auto in = load_or_die(generated(spec), kTiny);
  auto out = convert_and_reload(in, OutputLayout::kBfl, Style::kBfl);
  expect_equivalent(in, out.model);
  const st::TensorView* b_in = in.file->find("transformer.norm_out.linear.lora_B.weight");
  const st::TensorView* a_in = in.file->find("transformer.norm_out.linear.lora_A.weight");
  const st::TensorView* b_out = out.file->find("final_layer.adaLN_modulation.1.lora_B.weight");
  const st::TensorView* a_out = out.file->find("final_layer.adaLN_modulation.1.lora_A.weight");
  const st::TensorView* bias_in = in.file->find("transformer.norm_out.linear.lora_B.bias");
  const st::TensorView* bias_out = out.file->find("final_layer.adaLN_modulation.1.lora_B.bias");
  ASSERT_TRUE(b_in && a_in && b_out && a_out && bias_in && bias_out);
  EXPECT_EQ(std::memcmp(a_in->data, a_out->data, a_in->nbytes), 0) << "A must be untouched";
  const uint64_t rows = b_in->shape[0], r = b_in->shape[1], half = rows / 2;
  auto bi = decode(*b_in), bo = decode(*b_out), ci = decode(*bias_in), co = decode(*bias_out);
  for (uint64_t i = 0; i < rows; ++i) {
    for (uint64_t c = 0; c < r; ++c) ASSERT_EQ(bo[i * r + c], bi[((i + half) % rows) * r + c]);
    ASSERT_EQ(co[i], ci[(i + half) % rows]);
  }
}

TEST(Convert, BiasDeltasBecomeDiffBInKohyaStyle) {
  GenSpec spec = tiny_spec();
  spec.bias = true;
  spec.alpha = 2;  // PEFT bias is scaled by alpha/r; diff_b carries the scaled value
  auto in = load_or_die(generated(spec), kTiny);
  auto out = convert_and_reload(in, OutputLayout::kBfl, Style::kKohya);
  expect_equivalent(in, out.model);
  EXPECT_TRUE(out.file->find("lora_unet_double_blocks_0_img_attn_qkv.diff_b"));
}

TEST(Convert, RoundTripDiffusersBflDiffusersIsExact) {
  GenSpec spec = tiny_spec();
  spec.mixed_ranks = true;
  spec.proj_mlp = false;
  auto in = load_or_die(generated(spec), kTiny);
  auto bfl = convert_and_reload(in, OutputLayout::kBfl, Style::kKohya);
  auto back = convert_and_reload(bfl.model, OutputLayout::kDiffusers, Style::kDiffusers);
  expect_equivalent(in, back.model, 1e-14);
  // Block-diagonal ups split into their own columns: every part gets its own rank back.
  for (const auto& p : back.model.parts) {
    const std::string down = p.source_module + ".lora_A.weight";
    const st::TensorView* orig = in.file->find(down);
    ASSERT_TRUE(orig) << down;
    EXPECT_EQ(p.rank(), static_cast<int64_t>(orig->shape[0])) << p.source_module;
  }
}

TEST(Convert, RoundTripKohyaDiffusersKohyaIsExact) {
  GenSpec spec = tiny_spec("kohya");
  spec.alpha = 2;
  auto in = load_or_die(generated(spec), kTiny);
  ASSERT_EQ(in.dialect, "kohya");
  auto diff = convert_and_reload(in, OutputLayout::kDiffusers, Style::kDiffusers);
  expect_equivalent(in, diff.model, 1e-14);
  auto back = convert_and_reload(diff.model, OutputLayout::kBfl, Style::kKohya);
  expect_equivalent(in, back.model, 1e-14);
}

TEST(Convert, DenseCrossCheckOnSmallShapes) {
  GenSpec spec = tiny_spec();
  spec.mixed_ranks = true;
  spec.alpha = 5;
  spec.per_part_alpha = true;
  spec.bias = true;
  auto in = load_or_die(generated(spec), kTiny);
  auto out = convert_and_reload(in, OutputLayout::kBfl, Style::kComfy);
  for (const auto& t : flux::bfl_targets(kTiny)) {
    std::vector<const Part*> a, b;
    for (const auto& p : in.parts)
      if (p.target == t.name) a.push_back(&p);
    for (const auto& p : out.model.parts)
      if (p.target == t.name) b.push_back(&p);
    Eigen::MatrixXd da = verify::dense_delta(a, t.rows, t.cols), db = verify::dense_delta(b, t.rows, t.cols);
    ASSERT_GT(da.norm(), 0) << t.name;
    EXPECT_LE((da - db).norm() / da.norm(), 1e-6) << t.name;
  }
}

TEST(Convert, NamedAdaptersAndMixedSuffixesInOneFile) {
  const int64_t H = kTiny.hidden;
  std::vector<test::Tensor> ts = {
      {"transformer.transformer_blocks.0.attn.to_q.lora_A.default.weight", {2, (uint64_t)H}, test::random_values(2 * H, 1)},
      {"transformer.transformer_blocks.0.attn.to_q.lora_B.default.weight", {(uint64_t)H, 2}, test::random_values(2 * H, 2)},
      {"transformer.transformer_blocks.0.attn.to_k.lora.down.weight", {2, (uint64_t)H}, test::random_values(2 * H, 3)},
      {"transformer.transformer_blocks.0.attn.to_k.lora.up.weight", {(uint64_t)H, 2}, test::random_values(2 * H, 4)},
  };
  auto in = load_or_die(test::file_from_bytes(test::build_file(ts)), kTiny);
  ASSERT_EQ(in.parts.size(), 2u);
  auto out = convert_and_reload(in, OutputLayout::kBfl, Style::kKohya);
  expect_equivalent(in, out.model);
}

TEST(Convert, TextEncoderTensorsPassThroughUnchanged) {
  GenSpec spec = tiny_spec();
  spec.text_encoder = true;
  auto in = load_or_die(generated(spec), kTiny);
  ASSERT_EQ(in.passthrough.size(), 4u);  // two CLIP modules, down and up each
  auto out = convert_and_reload(in, OutputLayout::kBfl, Style::kKohya);
  for (const auto& p : in.passthrough) {
    const st::TensorView* a = in.file->find(p.tensor);
    const st::TensorView* b = out.file->find(p.tensor);
    ASSERT_TRUE(a && b) << p.tensor;
    EXPECT_EQ(std::memcmp(a->data, b->data, a->nbytes), 0);
  }
  EXPECT_EQ(out.conv.passthrough, 4);
}

TEST(Convert, DoraIsRefusedNamingTheModule) {
  const int64_t H = kTiny.hidden;
  std::vector<test::Tensor> ts = {
      {"lora_transformer_transformer_blocks_0_attn_to_q.lora_down.weight", {2, (uint64_t)H}, test::random_values(2 * H, 1)},
      {"lora_transformer_transformer_blocks_0_attn_to_q.lora_up.weight", {(uint64_t)H, 2}, test::random_values(2 * H, 2)},
      {"lora_transformer_transformer_blocks_0_attn_to_q.dora_scale", {1, (uint64_t)H}, test::random_values(H, 3)},
  };
  auto in = load_or_die(test::file_from_bytes(test::build_file(ts)), kTiny);
  ConvertOptions o;
  auto c = convert(in, o);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().code, ErrorCode::kBadInput);
  EXPECT_NE(c.error().message.find("transformer_blocks_0_attn_to_q.dora_scale"), std::string::npos) << c.error().message;
  EXPECT_NE(c.error().message.find("DoRA"), std::string::npos);
}

TEST(Convert, StyleMustMatchLayout) {
  auto in = load_or_die(generated(tiny_spec()), kTiny);
  ConvertOptions o;
  o.to = OutputLayout::kBfl;
  o.style = Style::kDiffusers;
  auto c = convert(in, o);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().code, ErrorCode::kUsage);
}

TEST(Convert, OutputMetadataRecordsTheConversion) {
  auto in = load_or_die(generated(tiny_spec()), kTiny);
  auto out = convert_and_reload(in, OutputLayout::kBfl, Style::kComfy);
  EXPECT_EQ(out.file->metadata().at("lora_verify.source_dialect"), "diffusers");
  EXPECT_EQ(out.file->metadata().at("lora_verify.style"), "comfy");
  EXPECT_EQ(out.file->metadata().at("lora_verify.version"), LV_VERSION);
}

TEST(Convert, NeverWritesOverItsInput) {
  std::string dir = test::temp_dir();
  std::string path = dir + "/in.safetensors";
  auto bytes = generate_lora(tiny_spec());
  ASSERT_TRUE(bytes.ok());
  {
    std::ofstream f(path, std::ios::binary);
    f.write(reinterpret_cast<const char*>(bytes->data()), static_cast<std::streamsize>(bytes->size()));
  }
  auto file = st::SafetensorsFile::open(path);
  ASSERT_TRUE(file.ok());
  report::PipelineOptions o;
  o.layout = kTiny;
  auto r = report::run_convert(std::make_shared<const st::SafetensorsFile>(std::move(file).value()), dir + "/./in.safetensors", o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kCannotCreate);
  auto again = st::SafetensorsFile::open(path);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->file_bytes(), bytes->size());
  std::filesystem::remove_all(dir);
}

// Pinned by corpus/fuzz_pipeline/regress-te-name-with-a-qwen-pattern.safetensors: a
// text-encoder tensor whose name holds a Qwen-Image key pattern ("txt_norm") is passed
// through; the verify pipeline's last group holds only it, and its re-read was refused as
// "looks like Qwen-Image" (exit 70). Passed-through tensors are no evidence of another model.
TEST(Convert, PassedThroughTensorsAreNoEvidenceOfAnotherArchitecture) {
  const uint64_t H = static_cast<uint64_t>(kTiny.hidden);
  const std::string te = "lora_te1_textxt_normencoder_layers_0_mlp_fc1.lora_down.weight";
  std::vector<test::Tensor> ts = {
      {"transformer.proj_out.lora_A.weight", {1, H}, test::random_values(H, 1), st::DType::kBF16},
      {"transformer.proj_out.lora_B.weight", {static_cast<uint64_t>(kTiny.out_channels), 1}, test::random_values(4, 2), st::DType::kBF16},
      {te, {2, 4}, test::random_values(8, 3), st::DType::kBF16},
  };
  report::PipelineOptions opt;
  opt.layout = kTiny;
  auto r = report::run_verify(test::file_from_bytes(test::build_file(ts)), opt);
  ASSERT_TRUE(r.ok()) << r.error().message;
  // Alone, it is a file of text-encoder tensors, not a Qwen-Image LoRA.
  auto only_te = load_lora(test::file_from_bytes(test::build_file({ts[2]})));
  ASSERT_FALSE(only_te.ok());
  EXPECT_EQ(only_te.error().message.find("Qwen"), std::string::npos) << only_te.error().message;
  EXPECT_NE(only_te.error().message.find("text-encoder"), std::string::npos) << only_te.error().message;
}

// Pinned by corpus/fuzz_keyset/regress-folded-bias-overflows-f16: a finite F16 input whose
// folded scale overflows F16 must be refused, not written as infinities.
TEST(Convert, FoldedScaleThatOverflowsTheDtypeIsRefused) {
  const uint64_t H = static_cast<uint64_t>(kTiny.hidden);
  std::vector<test::Tensor> ts = {
      {"transformer.proj_out.lora_A.weight", {1, H}, test::random_values(H, 1), st::DType::kF16},
      {"transformer.proj_out.lora_B.weight", {static_cast<uint64_t>(kTiny.out_channels), 1}, test::random_values(4, 2), st::DType::kF16},
      {"transformer.proj_out.lora_B.bias", {static_cast<uint64_t>(kTiny.out_channels)}, {1, 2, 3, 4}, st::DType::kF16},
      {"transformer.proj_out.alpha", {}, {1e30}, st::DType::kF32},
  };
  auto in = load_or_die(test::file_from_bytes(test::build_file(ts)), kTiny);
  ConvertOptions o;
  auto c = convert(in, o);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().code, ErrorCode::kBadInput);
  EXPECT_NE(c.error().message.find("overflows"), std::string::npos) << c.error().message;
  o.dtype = st::DType::kF64;  // wide enough: converts and verifies
  auto wide = convert(in, o);
  ASSERT_TRUE(wide.ok()) << wide.error().message;
}

// Pinned by corpus/fuzz_pipeline/regress-folded-scale-overflows-double: q and k have
// different alphas, so the scales are folded; q's scale is so large that value × scale
// overflows double itself. That must be refused too, not written as infinities.
TEST(Convert, FoldedScaleThatOverflowsDoubleIsRefused) {
  const uint64_t H = static_cast<uint64_t>(kTiny.hidden);
  const std::string m = "transformer.transformer_blocks.0.attn.";
  std::vector<test::Tensor> ts = {
      {m + "to_q.lora_A.weight", {2, H}, test::random_values(2 * H, 1, 100.0), st::DType::kBF16},
      {m + "to_q.lora_B.weight", {H, 2}, test::random_values(2 * H, 2), st::DType::kBF16},
      {m + "to_q.alpha", {}, {1e308}, st::DType::kF64},
      {m + "to_k.alpha", {}, {1.0}, st::DType::kF64},
      {m + "to_k.lora_A.weight", {2, H}, test::random_values(2 * H, 3), st::DType::kBF16},
      {m + "to_k.lora_B.weight", {H, 2}, test::random_values(2 * H, 4), st::DType::kBF16},
  };
  auto in = load_or_die(test::file_from_bytes(test::build_file(ts)), kTiny);
  ConvertOptions o;
  o.dtype = st::DType::kF64;
  auto c = convert(in, o);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().code, ErrorCode::kBadInput);
  EXPECT_NE(c.error().message.find("overflows"), std::string::npos) << c.error().message;
}

// Pinned by corpus/fuzz_pipeline/regress-folded-scale-underflows-f16: alphas of 1e-40 give
// scales far below F16's range; folded into the downs (the two parts' scales differ)
// every value rounds to zero or to a few subnormal bits. The module would silently lose its delta, so it is refused; F64
// holds the folded values and converts equivalently.
TEST(Convert, FoldedScaleThatUnderflowsTheDtypeIsRefused) {
  const uint64_t H = static_cast<uint64_t>(kTiny.hidden);
  const std::string m = "transformer.transformer_blocks.0.attn.";
  std::vector<test::Tensor> ts = {
      {m + "to_q.lora_A.weight", {2, H}, test::random_values(2 * H, 1), st::DType::kF16},
      {m + "to_q.lora_B.weight", {H, 2}, test::random_values(2 * H, 2), st::DType::kF16},
      {m + "to_q.alpha", {}, {1e-40}, st::DType::kF32},
      {m + "to_v.lora_A.weight", {2, H}, test::random_values(2 * H, 3), st::DType::kF16},
      {m + "to_v.lora_B.weight", {H, 2}, test::random_values(2 * H, 4), st::DType::kF16},
      {m + "to_v.alpha", {}, {3e-40}, st::DType::kF32},
  };
  auto in = load_or_die(test::file_from_bytes(test::build_file(ts)), kTiny);
  for (Style style : {Style::kBfl, Style::kPeft, Style::kComfy}) {
    SCOPED_TRACE(std::string(style_name(style)));
    ConvertOptions o;
    o.style = style;
    auto c = convert(in, o);
    ASSERT_FALSE(c.ok());
    EXPECT_EQ(c.error().code, ErrorCode::kBadInput);
    EXPECT_NE(c.error().message.find("below the normal range"), std::string::npos) << c.error().message;
    EXPECT_NE(c.error().message.find("double_blocks.0.img_attn.qkv"), std::string::npos) << c.error().message;
    auto wide = convert_and_reload(in, OutputLayout::kBfl, style, st::DType::kF64);
    expect_equivalent(in, wide.model);
  }
}

// Ordinary rounding is not a loss of precision: F32 factors written as BF16 convert (and
// verify within the BF16 tolerance), also with folded per-part scales.
TEST(Convert, NormalRoundingToANarrowerDtypeIsAccepted) {
  const uint64_t H = static_cast<uint64_t>(kTiny.hidden);
  const std::string m = "transformer.transformer_blocks.0.attn.";
  std::vector<test::Tensor> ts = {
      {m + "to_q.lora_A.weight", {2, H}, test::random_values(2 * H, 1), st::DType::kF32},
      {m + "to_q.lora_B.weight", {H, 2}, test::random_values(2 * H, 2), st::DType::kF32},
      {m + "to_q.alpha", {}, {1e-3}, st::DType::kF32},
      {m + "to_k.lora_A.weight", {2, H}, test::random_values(2 * H, 3), st::DType::kF32},
      {m + "to_k.lora_B.weight", {H, 2}, test::random_values(2 * H, 4), st::DType::kF32},
  };
  auto in = load_or_die(test::file_from_bytes(test::build_file(ts)), kTiny);
  auto out = convert_and_reload(in, OutputLayout::kBfl, Style::kBfl, st::DType::kBF16);
  expect_equivalent(in, out.model, 1e-2);
}

TEST(Converter, TheThreadCountDoesNotChangeTheBytes) {
  // Targets are converted in contiguous runs on several threads and joined in order: the
  // same bytes for every thread count, in both directions and with folded scales.
  for (const std::string dialect : {"diffusers", "kohya"}) {
    GenSpec spec = tiny_spec(dialect);
    spec.dtype = st::DType::kBF16;
    spec.alpha = 3;
    spec.per_part_alpha = true;
    const LoraModel in = load_or_die(generated(spec), kTiny);
    std::vector<uint8_t> first;
    for (int threads : {1, 2, 3, 8}) {
      ConvertOptions o;
      o.to = dialect == "kohya" ? OutputLayout::kDiffusers : OutputLayout::kBfl;
      o.style = dialect == "kohya" ? Style::kDiffusers : Style::kKohya;
      o.threads = threads;
      auto c = convert(in, o);
      ASSERT_TRUE(c.ok()) << c.error().message;
      auto bytes = st::serialize(tensors_to_write(*c), c->metadata);
      ASSERT_TRUE(bytes.ok());
      if (first.empty()) first = *bytes;
      EXPECT_EQ(*bytes, first) << dialect << " with " << threads << " threads";
    }
  }
}

namespace {
// FNV-1a (64-bit) of a file's bytes.
uint64_t fnv1a(const std::string& bytes) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : bytes) h = (h ^ c) * 0x100000001b3ull;
  return h;
}
}  // namespace

TEST(Converter, OutputBytesMatchTheirGoldenHashes) {
  // `convert` of generated samples, byte for byte as lora-verify has written them since
  // issue 24 began (the hashes were taken with the build before its speed-ups): folded
  // scales rounded to BF16, F16 and F32, a change of dtype, stacked and block-diagonal
  // factors, biases, and one full FLUX.1 file each way. The input's hash comes first, so a
  // change of `sample` is told apart from a change of `convert`.
  struct Case {
    const char* name;
    std::vector<std::string> sample, convert;
    uint64_t in, out;
  };
  const std::vector<Case> cases = {
      {"kohya BF16 full", {"--dialect", "kohya", "--rank", "2", "--alpha", "3", "--dtype", "BF16"}, {"--to", "diffusers"},
       0x6000b88a26ea6d67ull, 0xd9ee787903470df0ull},
      {"diffusers BF16 full", {"--dialect", "diffusers", "--rank", "2", "--alpha", "3", "--dtype", "BF16"},
       {"--style", "kohya"}, 0x0d5b90632ba7f319ull, 0x8d2c313ae529a017ull},
      {"kohya F16", {"--tiny", "--dialect", "kohya", "--rank", "8", "--alpha", "3", "--dtype", "F16"}, {"--to", "diffusers"},
       0x40114a64a2a9a09dull, 0xcf9116ad91991eeeull},
      {"kohya F32", {"--tiny", "--dialect", "kohya", "--rank", "8", "--alpha", "3", "--dtype", "F32"}, {"--to", "diffusers"},
       0x3f9a2ba8c920541aull, 0xf6a1558fbf9c500full},
      {"kohya BF16 to F16", {"--tiny", "--dialect", "kohya", "--rank", "8", "--alpha", "3", "--dtype", "BF16"},
       {"--to", "diffusers", "--dtype", "F16"}, 0x937a7eb0fed81dc3ull, 0x11ce3f0ab1bec6f0ull},
      {"diffusers BF16 with biases", {"--tiny", "--dialect", "diffusers", "--rank", "8", "--alpha", "5", "--bias", "--dtype", "BF16"},
       {"--style", "kohya"}, 0x2b3c90723d1e42c8ull, 0x6abf61a99cc30f2bull},
      {"diffusers F16 to peft BF16", {"--tiny", "--dialect", "diffusers", "--rank", "8", "--alpha", "3", "--dtype", "F16"},
       {"--style", "peft", "--dtype", "BF16"}, 0xfabc44630dc1721bull, 0x19adcfb7bdd0adbcull},
      {"kohya BF16 scale 1/2", {"--tiny", "--dialect", "kohya", "--rank", "16", "--alpha", "8", "--dtype", "BF16"},
       {"--to", "diffusers"}, 0x4b9a3bab805cefc4ull, 0xc79036a30af6aaf4ull},
      {"ai-toolkit BF16 to comfy", {"--tiny", "--dialect", "ai-toolkit", "--rank", "16", "--alpha", "8", "--dtype", "BF16"},
       {"--style", "comfy"}, 0x6ad7c95122f3fcbdull, 0x8cce28c57a595358ull},
  };
  const std::string dir = test::temp_dir();
  for (const Case& c : cases) {
    const std::string in = dir + "/in.safetensors", out = dir + "/out.safetensors";
    std::vector<std::string> sample = {"sample", in, "--quiet"}, convert = {"convert", in, "-o", out, "--quiet"};
    sample.insert(sample.end(), c.sample.begin(), c.sample.end());
    convert.insert(convert.end(), c.convert.begin(), c.convert.end());
    ASSERT_EQ(test::run_cli(sample).exit_code, 0) << c.name;
    ASSERT_EQ(fnv1a(test::read_file(in)), c.in) << c.name << ": the sample itself changed";
    const auto r = test::run_cli(convert);
    ASSERT_EQ(r.exit_code, 0) << c.name << ": " << r.err;
    EXPECT_EQ(fnv1a(test::read_file(out)), c.out) << c.name << ": the converted bytes changed";
  }
}
