// DoRA: magnitudes are carried where that is exact (per-row magnitudes concatenate and
// split with their rows, a per-column scale only 1:1), refused with the magnitude named
// otherwise, never dropped; and the equivalence engine compares them.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "lora/converter.h"
#include "lora/reread.h"
#include "matrix/loader_cells.h"
#include "report/pipeline.h"
#include "safetensors/writer.h"
#include "support/lora_support.h"
#include "verify/equivalence.h"

namespace lv {
namespace {

using test::load_or_die;
const flux::Layout kTiny = flux::Layout::tiny();
const uint64_t H = static_cast<uint64_t>(kTiny.hidden);
const std::string kAttn = "transformer.transformer_blocks.0.attn.";

// A PEFT DoRA part: rank-2 factors and a magnitude vector of `rows` values.
void peft_dora(std::vector<test::Tensor>& ts, const std::string& module, uint64_t rows, uint64_t cols, uint64_t seed) {
  ts.push_back({module + ".lora_A.weight", {2, cols}, test::random_values(2 * cols, seed)});
  ts.push_back({module + ".lora_B.weight", {rows, 2}, test::random_values(2 * rows, seed + 1)});
  std::vector<double> m = test::random_values(rows, seed + 2);
  for (double& x : m) x = 1.0 + std::abs(x);  // magnitudes are norms: positive
  ts.push_back({module + ".lora_magnitude_vector", {rows}, m});
}

// The values as the F32 file holds them.
std::vector<double> f32(std::vector<double> v) {
  for (double& x : v) x = static_cast<double>(static_cast<float>(x));
  return v;
}

std::vector<test::Tensor> qkv_dora(bool with_k = true) {
  std::vector<test::Tensor> ts;
  peft_dora(ts, kAttn + "to_q", H, H, 10);
  if (with_k) peft_dora(ts, kAttn + "to_k", H, H, 20);
  peft_dora(ts, kAttn + "to_v", H, H, 30);
  return ts;
}

LoraModel model_of(const std::vector<test::Tensor>& ts) { return load_or_die(test::file_from_bytes(test::build_file(ts)), kTiny); }

struct Converted {
  Conversion conv;
  std::shared_ptr<const st::SafetensorsFile> file;
  LoraModel model;
};

Converted reload(Conversion conv) {
  auto back = lv::reread(conv, kTiny, false, "converted.safetensors");
  EXPECT_TRUE(back.ok()) << (back.ok() ? "" : back.error().message);
  if (!back.ok()) return {};
  return {std::move(conv), back->file, std::move(back->model)};
}

Converted convert_or_die(const LoraModel& in, OutputLayout to, Style style) {
  ConvertOptions o;
  o.to = to;
  o.style = style;
  auto c = convert(in, o);
  EXPECT_TRUE(c.ok()) << (c.ok() ? "" : c.error().message);
  return reload(std::move(c).value());
}

verify::CompareResult compare_or_die(const LoraModel& a, const LoraModel& b) {
  auto r = verify::compare(a, b);
  EXPECT_TRUE(r.ok());
  return std::move(r).value();
}

const verify::ModuleResult& module(const verify::CompareResult& r, const std::string& target) {
  auto it = std::find_if(r.modules.begin(), r.modules.end(), [&](const auto& m) { return m.target == target; });
  EXPECT_NE(it, r.modules.end()) << target;
  return *it;
}

std::vector<double> values_of(const st::SafetensorsFile& f, const std::string& name) {
  const st::TensorView* t = f.find(name);
  EXPECT_NE(t, nullptr) << name;
  if (!t) return {};
  std::vector<double> v(static_cast<size_t>(t->numel));
  st::decode_to_double(t->dtype, t->data, v.size(), v.data());
  return v;
}

TEST(Dora, PeftMagnitudesConcatenateIntoTheFusedModuleAndSplitBack) {
  const auto ts = qkv_dora();
  auto in = model_of(ts);
  auto bfl = convert_or_die(in, OutputLayout::kBfl, Style::kBfl);
  const auto fused = values_of(*bfl.file, "double_blocks.0.img_attn.qkv.lora_magnitude_vector");
  ASSERT_EQ(fused.size(), 3 * H);
  // Rows q, k, v in order, bit for bit.
  for (size_t i = 0; i < 3; ++i)
    for (size_t r = 0; r < H; ++r) EXPECT_EQ(fused[i * H + r], f32(ts[3 * i + 2].values)[r]) << i << " " << r;
  auto r = compare_or_die(in, bfl.model);
  EXPECT_TRUE(r.all_equivalent);
  const auto& m = module(r, "double_blocks.0.img_attn.qkv");
  EXPECT_TRUE(m.dora);
  EXPECT_EQ(m.magnitude_error, 0.0);

  auto back = convert_or_die(bfl.model, OutputLayout::kDiffusers, Style::kDiffusers);
  EXPECT_EQ(values_of(*back.file, kAttn + "to_k.lora_magnitude_vector"), f32(ts[5].values));
  EXPECT_TRUE(compare_or_die(in, back.model).all_equivalent);
}

TEST(Dora, KohyaAndComfyStylesWriteAPerRowDoraScale) {
  auto in = model_of(qkv_dora());
  for (Style style : {Style::kKohya, Style::kComfy}) {
    SCOPED_TRACE(std::string(style_name(style)));
    auto out = convert_or_die(in, OutputLayout::kBfl, style);
    const std::string name = style == Style::kKohya ? "lora_unet_double_blocks_0_img_attn_qkv.dora_scale"
                                                    : "diffusion_model.double_blocks.0.img_attn.qkv.dora_scale";
    const st::TensorView* t = out.file->find(name);
    ASSERT_NE(t, nullptr);
    EXPECT_EQ(t->shape, (std::vector<uint64_t>{3 * H, 1}));
    EXPECT_TRUE(compare_or_die(in, out.model).all_equivalent);
  }
}

TEST(Dora, NormOutMagnitudeHalvesAreSwappedLikeItsRows) {
  std::vector<test::Tensor> ts;
  peft_dora(ts, "transformer.norm_out.linear", 2 * H, H, 40);
  auto in = model_of(ts);
  auto out = convert_or_die(in, OutputLayout::kBfl, Style::kBfl);
  const auto m = values_of(*out.file, "final_layer.adaLN_modulation.1.lora_magnitude_vector");
  ASSERT_EQ(m.size(), 2 * H);
  for (size_t r = 0; r < H; ++r) {
    EXPECT_EQ(m[r], f32(ts[2].values)[r + H]);
    EXPECT_EQ(m[r + H], f32(ts[2].values)[r]);
  }
  EXPECT_TRUE(compare_or_die(in, out.model).all_equivalent);
}

TEST(Dora, AMissingPartIsRefusedNamingTheMagnitudeAndTheRow) {
  auto in = model_of(qkv_dora(/*with_k=*/false));
  auto c = convert(in, ConvertOptions{});
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().code, ErrorCode::kBadInput);
  EXPECT_NE(c.error().message.find("lora_magnitude_vector"), std::string::npos) << c.error().message;
  EXPECT_NE(c.error().message.find("row " + std::to_string(H)), std::string::npos) << c.error().message;
  EXPECT_NE(c.error().message.find("base weights"), std::string::npos) << c.error().message;
}

TEST(Dora, APlainPartFusedWithADoraPartIsRefused) {
  auto ts = qkv_dora();
  ts.erase(std::remove_if(ts.begin(), ts.end(), [](const auto& t) { return t.name == kAttn + "to_k.lora_magnitude_vector"; }),
           ts.end());
  auto c = convert(model_of(ts), ConvertOptions{});
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.error().message.find("which has no DoRA magnitude"), std::string::npos) << c.error().message;
}

TEST(Dora, PerColumnScaleIsCarriedOneToOneAndRefusedWhenFused) {
  const uint64_t out_ch = static_cast<uint64_t>(kTiny.out_channels);
  std::vector<test::Tensor> one = {
      {"lora_transformer_proj_out.lora_down.weight", {2, H}, test::random_values(2 * H, 1)},
      {"lora_transformer_proj_out.lora_up.weight", {out_ch, 2}, test::random_values(2 * out_ch, 2)},
      {"lora_transformer_proj_out.alpha", {}, {1.0}},
      {"lora_transformer_proj_out.dora_scale", {1, H}, test::random_values(H, 3)},
  };
  auto in = model_of(one);
  ASSERT_EQ(in.parts.size(), 1u);
  EXPECT_FALSE(in.parts[0].magnitude_per_row);
  for (Style style : {Style::kKohya, Style::kBfl}) {
    auto out = convert_or_die(in, OutputLayout::kBfl, style);
    const std::string name = style == Style::kKohya ? "lora_unet_final_layer_linear.dora_scale" : "final_layer.linear.dora_scale";
    EXPECT_EQ(values_of(*out.file, name), values_of(*in.file, "lora_transformer_proj_out.dora_scale"));
    EXPECT_TRUE(compare_or_die(in, out.model).all_equivalent);
  }
  std::vector<test::Tensor> fused = {
      {"lora_transformer_transformer_blocks_0_attn_to_q.lora_down.weight", {2, H}, test::random_values(2 * H, 1)},
      {"lora_transformer_transformer_blocks_0_attn_to_q.lora_up.weight", {H, 2}, test::random_values(2 * H, 2)},
      {"lora_transformer_transformer_blocks_0_attn_to_q.dora_scale", {1, H}, test::random_values(H, 3)},
  };
  auto c = convert(model_of(fused), ConvertOptions{});
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.error().message.find("lora_transformer_transformer_blocks_0_attn_to_q.dora_scale"), std::string::npos)
      << c.error().message;
  EXPECT_NE(c.error().message.find("per-column"), std::string::npos) << c.error().message;
}

TEST(Dora, MagnitudeOfTheWrongShapeIsReportedNotUsed) {
  auto ts = qkv_dora();
  ts[2].shape = {1, H};  // a lora_magnitude_vector is per row: [H] or [H, 1]
  auto in = model_of(ts);
  bool reported = false;
  for (const auto& f : in.findings) reported |= f.id == "lora.shape.mismatch" && f.message.find("DoRA magnitude") != std::string::npos;
  EXPECT_TRUE(reported);
}

// compare: a conversion that drops the magnitude, or moves it to other rows, is caught.
TEST(Dora, CompareCatchesADroppedOrMisplacedMagnitude) {
  auto in = model_of(qkv_dora());
  ConvertOptions o;
  o.style = Style::kBfl;
  auto good = convert(in, o);
  ASSERT_TRUE(good.ok());
  const std::string name = "double_blocks.0.img_attn.qkv.lora_magnitude_vector";

  Conversion dropped = *good;
  ASSERT_EQ(std::erase_if(dropped.tensors, [&](const OutTensor& t) { return t.name == name; }), 1u);
  auto d = reload(std::move(dropped));
  auto rd = compare_or_die(in, d.model);
  EXPECT_FALSE(rd.all_equivalent);
  const auto& md = module(rd, "double_blocks.0.img_attn.qkv");
  EXPECT_EQ(md.status, verify::ModuleStatus::kDifferent);
  EXPECT_NE(md.message.find("only on the source side"), std::string::npos) << md.message;

  Conversion moved = *good;
  for (OutTensor& t : moved.tensors) {
    if (t.name != name) continue;
    std::vector<uint8_t> bytes(t.data().begin(), t.data().end());
    const size_t block = H * 4;  // F32: swap q's and k's magnitudes
    std::swap_ranges(bytes.begin(), bytes.begin() + static_cast<long>(block), bytes.begin() + static_cast<long>(block));
    t.view = {};
    t.owned = std::move(bytes);
  }
  auto m = reload(std::move(moved));
  auto rm = compare_or_die(in, m.model);
  EXPECT_FALSE(rm.all_equivalent);
  EXPECT_GT(module(rm, "double_blocks.0.img_attn.qkv").magnitude_error, 1e-3);
}

TEST(Dora, VerifyReportsAnEquivalentDoraConversionWithItsMagnitudeError) {
  auto file = test::file_from_bytes(test::build_file(qkv_dora()), "dora.safetensors");
  report::PipelineOptions opt;
  opt.layout = kTiny;
  auto r = report::run_verify(file, opt);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_TRUE(r->pass) << r->verdict;
  bool found = false;
  for (const auto& m : r->modules)
    if (m.target == "double_blocks.0.img_attn.qkv") {
      found = true;
      ASSERT_TRUE(m.magnitude_error.has_value());
      EXPECT_EQ(*m.magnitude_error, 0.0);
    }
  EXPECT_TRUE(found);
}

}  // namespace
}  // namespace lv

// The real DoRA key sets (OneTrainer per-column dora_scale on q, k, v): `lora-verify FILE`
// gives the whole report in the layout that keeps the magnitudes (the BFL layout would have
// to fuse them), with the loaders section and what to run; no app is advised that refuses
// them, no magnitude is dropped, and none is reported as a zero loss.
TEST(Dora, RealKeySetsGetTheWholeReportAndNoMagnitudeIsEverDropped) {
  if (!lv::test::fixtures_present()) GTEST_SKIP() << "no ../shared/fixtures (" << lv::test::fixtures_dir() << ")";
  const std::string dir = lv::test::temp_dir();
  for (const char* name : {"flux_lora_diffusers_dora_format", "flux_dora_onetrainer_format"}) {
    const std::string in = dir + "/" + name + ".safetensors";
    {
      auto b = lv::test::fixture_file(name, 3, lv::st::DType::kBF16, 4, 4);
      std::ofstream(in, std::ios::binary).write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
    }
    auto r = lv::test::run_cli({in, "--all"});
    EXPECT_EQ(r.exit_code, 0) << name << r.err;
    EXPECT_EQ(r.out.rfind("PASS: equivalent", 0), 0u) << r.out;
    EXPECT_NE(r.out.find("conversion:   to diffusers layout"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("keeps every DoRA magnitude"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("DoRA magnitude error"), std::string::npos) << "the magnitudes are verified";
    EXPECT_NE(r.out.find("\nloaders (input -> output):"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("\nto load it:"), std::string::npos) << r.out;
    EXPECT_EQ(r.out.find("loses 0 of"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("never drops one"), std::string::npos) << r.out;
    // Leaving the magnitudes out is refused, with or without --drop-unsupported.
    const std::string out = dir + "/out.safetensors";
    for (const char* loader : {"diffusers", "invokeai-5.1", "sdcpp"}) {
      auto c = lv::test::run_cli({"convert", in, "-o", out, "--for", loader, "--drop-unsupported"});
      EXPECT_EQ(c.exit_code, 65) << loader << c.out;
      EXPECT_NE(c.err.find("never drops one"), std::string::npos) << c.err;
      EXPECT_FALSE(std::filesystem::exists(out));
    }
    // The default convert writes the layout that keeps them, and says so.
    auto c = lv::test::run_cli({"convert", in, "-o", out});
    EXPECT_EQ(c.exit_code, 0) << c.err;
    EXPECT_NE(c.out.find("keeps every DoRA magnitude"), std::string::npos) << c.out;
    std::filesystem::remove(out);
  }
  std::filesystem::remove_all(dir);
}

// The matrix's `convert --for` cell says what convert --for does: a form it writes ("loads")
// is written and loads; one it refuses (a DoRA magnitude the loader cannot take) is 🚫, never ✅.
TEST(Dora, MatrixConvertForCellsAgreeWithConvertFor) {
  if (!lv::test::fixtures_present()) GTEST_SKIP() << "no ../shared/fixtures (" << lv::test::fixtures_dir() << ")";
  const std::string dir = lv::test::temp_dir();
  size_t refused = 0, written = 0;
  // Two DoRA key sets, and a plain one whose forms are written.
  for (const char* name : {"flux_lora_diffusers_dora_format", "flux_dora_onetrainer_format", "flux_lora_kohya_format"}) {
    const std::string in = dir + "/" + name + ".safetensors";
    {
      auto b = lv::test::fixture_file(name, 3, lv::st::DType::kBF16, 4, 4);
      std::ofstream(in, std::ios::binary).write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
    }
    auto file = lv::st::SafetensorsFile::open(in);
    ASSERT_TRUE(file.ok());
    const auto cells = lv::matrix::matrix_loader_cells(std::make_shared<const lv::st::SafetensorsFile>(std::move(file).value()));
    ASSERT_FALSE(cells.empty());
    for (const auto& c : cells) {
      if (c.form == "-") continue;
      const std::string out = dir + "/out.safetensors";
      auto r = lv::test::run_cli({"convert", in, "-o", out, "--for", c.loader, "--json", "-", "--quiet"});
      if (c.form_outcome == "refused") {
        ++refused;
        EXPECT_EQ(r.exit_code, 65) << name << " " << c.loader << ": " << r.err;
        EXPECT_FALSE(std::filesystem::exists(out));
      } else if (c.form_outcome == "loads") {
        ++written;
        EXPECT_EQ(r.exit_code, 0) << name << " " << c.loader << ": " << r.err;
        EXPECT_NE(r.out.find("\"loader\": \"" + c.loader + "\""), std::string::npos);
      }
      std::filesystem::remove(out);
    }
  }
  EXPECT_GT(refused, 0u) << "some loader cannot take DoRA magnitudes";
  EXPECT_GT(written, 0u) << "the plain key set's forms are written";
  std::filesystem::remove_all(dir);
}
