// LoRA generator: walks the layout tables and writes seeded random factors in a dialect.
#include "lora/generate.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <random>

#include "safetensors/writer.h"

namespace lv {
namespace {

std::string underscored(std::string s) {
  std::replace(s.begin(), s.end(), '.', '_');
  return s;
}

bool ends_with(const std::string& s, const std::string& p) {
  return s.size() >= p.size() && s.compare(s.size() - p.size(), p.size(), p) == 0;
}

struct Emitter {
  const GenSpec& spec;
  std::mt19937_64 rng;
  std::vector<std::vector<uint8_t>> buffers;
  std::vector<st::TensorToWrite> tensors;
  int64_t module_index = 0;

  void add(std::string name, std::vector<uint64_t> shape, const std::vector<double>& values, st::DType dtype) {
    std::vector<uint8_t> bytes(values.size() * st::dtype_bits(dtype) / 8);
    st::encode_from_double(dtype, values.data(), values.size(), bytes.data());
    buffers.push_back(std::move(bytes));
    tensors.push_back({std::move(name), dtype, std::move(shape), {}});
  }

  std::vector<double> random(size_t n, double amplitude) {
    std::uniform_real_distribution<double> u(-amplitude, amplitude);
    std::vector<double> v(n);
    for (auto& x : v) x = u(rng);
    return v;
  }

  int64_t rank_for() const {
    if (!spec.mixed_ranks) return spec.rank;
    int64_t r[] = {spec.rank, std::max<int64_t>(1, spec.rank / 2), spec.rank * 2};
    return r[module_index % 3];
  }

  // One low-rank module: `down`/`up`/`alpha`/`bias` names are complete tensor names.
  void module(const std::string& down, const std::string& up, const std::string& alpha, const std::string& bias,
              int64_t rows, int64_t cols) {
    const int64_t r = rank_for();
    add(down, {static_cast<uint64_t>(r), static_cast<uint64_t>(cols)},
        random(static_cast<size_t>(r * cols), 1.0 / std::sqrt(static_cast<double>(cols))), spec.dtype);
    add(up, {static_cast<uint64_t>(rows), static_cast<uint64_t>(r)},
        random(static_cast<size_t>(rows * r), 1.0 / std::sqrt(static_cast<double>(r))), spec.dtype);
    if (!alpha.empty() && spec.alpha > 0) {
      double a = spec.per_part_alpha ? spec.alpha * static_cast<double>(1 + module_index % 3) : spec.alpha;
      add(alpha, {}, {a}, st::DType::kF32);
    }
    if (!bias.empty() && spec.bias) add(bias, {static_cast<uint64_t>(rows)}, random(static_cast<size_t>(rows), 0.01), spec.dtype);
    ++module_index;
  }
};

bool skipped(const GenSpec& spec, const std::string& module) {
  for (const auto& s : spec.skip)
    if (ends_with(module, s)) return true;
  return false;
}

bool block_wanted(const GenSpec& spec, const std::string& name) {
  bool single = false;
  int64_t i = flux::block_index(name, single);
  if (i < 0) return spec.embedders;
  if (!spec.blocks) return false;
  int64_t limit = single ? spec.max_single : spec.max_double;
  return limit < 0 || i < limit;
}

}  // namespace

Result<std::vector<uint8_t>> generate_lora(const GenSpec& spec) {
  if (spec.rank < 1 || spec.rank > 4096) return make_error(ErrorCode::kUsage, "rank must be 1..4096, got " + std::to_string(spec.rank));
  if (!st::dtype_is_encodable(spec.dtype)) return make_error(ErrorCode::kUsage, "dtype must be F32, F64, F16 or BF16");
  const std::string& d = spec.dialect;
  // Dialects whose FLUX.2 spelling no source establishes are not invented
  // (docs/formats.md#dialects-in-flux2-files), and FLUX.2 has no bias to hold a bias delta.
  const bool flux1_shaped = (spec.layout.arch & (flux::kArchFlux1 | flux::kArchChroma)) != 0;
  if (!flux1_shaped && (d == "xlabs" || d == "onetrainer" || d == "onetrainer-bfl" || d == "diffusers-old"))
    return make_error(ErrorCode::kUsage, "the " + d + " dialect has no established FLUX.2 spelling; FLUX.2 files are "
                                         "written as diffusers, fal, kohya, comfy, ai-toolkit or bfl");
  if (spec.bias && !spec.layout.biases)
    return make_error(ErrorCode::kUsage, "this model has no biases, so a LoRA for it has no bias deltas (--bias)");
  Emitter e{spec, std::mt19937_64(spec.seed), {}, {}, 0};
  std::map<std::string, std::string> meta;
  if (!spec.family.empty()) meta["lora_verify.model"] = spec.family;

  if (d == "diffusers" || d == "diffusers-old" || d == "fal" || d == "onetrainer") {
    for (const auto& pm : flux::diffusers_map(spec.layout)) {
      if (!block_wanted(spec, pm.diffusers) || skipped(spec, pm.diffusers)) continue;
      if (!spec.proj_mlp && ends_with(pm.diffusers, ".proj_mlp")) continue;
      if (!spec.norm_out && pm.diffusers == "norm_out.linear") continue;
      auto t = flux::find_target(spec.layout, pm.target);
      int64_t rows = pm.row_end - pm.row_begin, cols = t->cols;
      if (d == "diffusers" || d == "fal") {
        std::string m = (d == "fal" ? "base_model.model." : "transformer.") + pm.diffusers;
        e.module(m + ".lora_A.weight", m + ".lora_B.weight", m + ".alpha", m + ".lora_B.bias", rows, cols);
      } else if (d == "diffusers-old") {
        std::string m = "transformer." + pm.diffusers;
        e.module(m + ".lora.down.weight", m + ".lora.up.weight", "", "", rows, cols);
      } else {
        std::string m = "lora_transformer_" + underscored(pm.diffusers);
        e.module(m + ".lora_down.weight", m + ".lora_up.weight", m + ".alpha", m + ".diff_b", rows, cols);
      }
    }
    if (spec.metadata_alpha && d == "diffusers") {
      meta["lora_adapter_metadata"] = "{\"transformer.r\": " + std::to_string(spec.rank) +
                                      ", \"transformer.lora_alpha\": " + std::to_string(2 * spec.rank) +
                                      (spec.rslora ? ", \"transformer.use_rslora\": true" : "") + "}";
    }
  } else if (d == "kohya" || d == "comfy" || d == "ai-toolkit" || d == "bfl" || d == "onetrainer-bfl" || d == "xlabs") {
    for (const auto& t : flux::bfl_targets(spec.layout)) {
      if (!block_wanted(spec, t.name) || skipped(spec, t.name)) continue;
      if (!spec.norm_out && t.name == "final_layer.adaLN_modulation.1") continue;
      if (d == "kohya") {
        std::string m = "lora_unet_" + underscored(t.name);
        e.module(m + ".lora_down.weight", m + ".lora_up.weight", m + ".alpha", m + ".diff_b", t.rows, t.cols);
      } else if (d == "comfy") {
        std::string m = "diffusion_model." + t.name;
        e.module(m + ".lora_down.weight", m + ".lora_up.weight", m + ".alpha", m + ".diff_b", t.rows, t.cols);
      } else if (d == "ai-toolkit" || d == "bfl") {
        std::string m = (d == "bfl" ? "" : "diffusion_model.") + t.name;
        e.module(m + ".lora_A.weight", m + ".lora_B.weight", m + ".alpha", m + ".lora_B.bias", t.rows, t.cols);
      } else if (d == "onetrainer-bfl") {
        auto parts = flux::parts_of_target(spec.layout, t.name);
        for (size_t j = 0; j < parts.size(); ++j) {
          if (!spec.proj_mlp && j == 3) continue;
          std::string m = "transformer." + t.name;
          if (parts.size() > 1) m.append(".").append(std::to_string(j));  // appended: see keys.cpp
          e.module(m + ".lora_down.weight", m + ".lora_up.weight", m + ".alpha", "", parts[j].row_end - parts[j].row_begin, t.cols);
        }
      } else {  // xlabs: double-block attention only, and the qkv rows of single blocks
        bool single = false;
        int64_t i = flux::block_index(t.name, single);
        std::string b = (single ? "single_blocks." : "double_blocks.") + std::to_string(i) + ".processor.";
        auto ends = [&](const char* s) { return ends_with(t.name, s); };
        if (ends(".img_attn.qkv")) e.module(b + "qkv_lora1.down.weight", b + "qkv_lora1.up.weight", "", "", t.rows, t.cols);
        else if (ends(".txt_attn.qkv")) e.module(b + "qkv_lora2.down.weight", b + "qkv_lora2.up.weight", "", "", t.rows, t.cols);
        else if (ends(".img_attn.proj")) e.module(b + "proj_lora1.down.weight", b + "proj_lora1.up.weight", "", "", t.rows, t.cols);
        else if (ends(".txt_attn.proj")) e.module(b + "proj_lora2.down.weight", b + "proj_lora2.up.weight", "", "", t.rows, t.cols);
        else if (ends(".linear1")) e.module(b + "qkv_lora.down.weight", b + "qkv_lora.up.weight", "", "", 3 * spec.layout.hidden, t.cols);
      }
    }
  } else {
    return make_error(ErrorCode::kUsage, "unknown dialect '" + d +
                                             "' for the generator; it writes diffusers, diffusers-old, fal, onetrainer, "
                                             "kohya, comfy, ai-toolkit, bfl, onetrainer-bfl, xlabs");
  }
  if (spec.text_encoder) {
    for (int i = 0; i < 2; ++i) {
      std::string m = "lora_te1_text_model_encoder_layers_" + std::to_string(i) + "_self_attn_q_proj";
      e.module(m + ".lora_down.weight", m + ".lora_up.weight", m + ".alpha", "", 16, 16);
    }
  }
  for (size_t i = 0; i < e.tensors.size(); ++i) e.tensors[i].data = e.buffers[i];
  return st::serialize(e.tensors, meta);
}

namespace {
constexpr GeneratorDialect kGeneratorDialects[] = {
    {"diffusers", true, true, true},     {"diffusers-old", false, false, true}, {"fal", true, true, true},
    {"onetrainer", true, true, true},    {"kohya", true, true, false},          {"comfy", true, true, false},
    {"ai-toolkit", true, true, false},   {"bfl", true, true, false},            {"onetrainer-bfl", true, false, true},
    {"xlabs", false, false, false},
};
}  // namespace

std::span<const GeneratorDialect> generator_dialects() { return kGeneratorDialects; }

}  // namespace lv
