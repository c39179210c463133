// LoRA generator: walks the layout tables and writes seeded random factors in a dialect.
#include "lora/generate.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <random>

#include "lora/keys.h"
#include "safetensors/writer.h"

namespace lv {
namespace {

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

// The tensor names of one module `m` as dialect `d` writes them, given what it can hold.
struct ModuleKeys {
  std::string down, up, alpha, bias;
};
ModuleKeys keys_of(const DialectRow& d, const std::string& m) {
  auto with = [&](bool holds, Role r, SuffixFamily f) { return holds ? m + std::string(suffix_for(r, f)) : std::string(); };
  return {with(true, Role::kDown, d.factors), with(true, Role::kUp, d.factors),
          with(d.generated.alpha, Role::kAlpha, SuffixFamily::kAlpha), with(d.generated.bias, Role::kBias, d.factors)};
}

void emit(Emitter& e, const ModuleKeys& k, int64_t rows, int64_t cols) { e.module(k.down, k.up, k.alpha, k.bias, rows, cols); }

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

// Diffusers-named dialects: one module per diffusers part.
void emit_diffusers_named(Emitter& e, const DialectRow& d) {
  const GenSpec& spec = e.spec;
  for (const auto& pm : flux::diffusers_map(spec.layout)) {
    if (!block_wanted(spec, pm.diffusers) || skipped(spec, pm.diffusers)) continue;
    if (!spec.proj_mlp && ends_with(pm.diffusers, ".proj_mlp")) continue;
    if (!spec.norm_out && pm.diffusers == "norm_out.linear") continue;
    auto t = flux::find_target(spec.layout, pm.target);
    emit(e, keys_of(d, module_key(d, pm.target, pm.diffusers)), pm.row_end - pm.row_begin, t->cols);
  }
}

// XLabs processors: double-block attention only, and the qkv rows of single blocks.
void emit_xlabs(Emitter& e, const DialectRow& d, const flux::Target& t) {
  bool single = false;
  const int64_t i = flux::block_index(t.name, single);
  const std::string b = (single ? "single_blocks." : "double_blocks.") + std::to_string(i) + ".processor.";
  const std::pair<const char*, const char*> kProcessors[] = {{".img_attn.qkv", "qkv_lora1"}, {".txt_attn.qkv", "qkv_lora2"},
                                                              {".img_attn.proj", "proj_lora1"}, {".txt_attn.proj", "proj_lora2"},
                                                              {".linear1", "qkv_lora"}};
  for (const auto& [target_end, processor] : kProcessors)
    if (ends_with(t.name, target_end))
      emit(e, keys_of(d, b + processor), std::string_view(processor) == "qkv_lora" ? 3 * e.spec.layout.hidden : t.rows, t.cols);
}

// BFL-named dialects: one module per target, or one per part where the dialect splits them.
void emit_bfl_named(Emitter& e, const DialectRow& d) {
  const GenSpec& spec = e.spec;
  for (const auto& t : flux::bfl_targets(spec.layout)) {
    if (!block_wanted(spec, t.name) || skipped(spec, t.name)) continue;
    if (!spec.norm_out && t.name == "final_layer.adaLN_modulation.1") continue;
    if (d.naming == Naming::kXlabs) {
      emit_xlabs(e, d, t);
      continue;
    }
    const std::string m = module_key(d, t.name, "");
    if (!d.split_parts) {
      emit(e, keys_of(d, m), t.rows, t.cols);
      continue;
    }
    auto parts = flux::parts_of_target(spec.layout, t.name);
    for (size_t j = 0; j < parts.size(); ++j) {
      if (!spec.proj_mlp && j == 3) continue;
      std::string mj = m;
      if (parts.size() > 1) mj.append(".").append(std::to_string(j));  // appended: see keys.cpp
      emit(e, keys_of(d, mj), parts[j].row_end - parts[j].row_begin, t.cols);
    }
  }
}

// The names of the generated dialects that satisfy `keep`, as a list for a message.
template <class Keep>
std::string generated_names(Keep keep) {
  std::string out;
  for (const DialectRow& r : dialect_rows())
    if (r.generated.writes && keep(r)) out += (out.empty() ? "" : ", ") + std::string(r.name);
  return out;
}

// The generator's dialect for `spec`, or why it cannot write it.
Result<const DialectRow*> generated_dialect(const GenSpec& spec) {
  auto id = dialect_from_name(spec.dialect);
  if (!id || !dialect_row(*id).generated.writes)
    return make_error(ErrorCode::kUsage, "unknown dialect '" + spec.dialect + "' for the generator; it writes " +
                                             generated_names([](const DialectRow&) { return true; }));
  const DialectRow& d = dialect_row(*id);
  // Dialects whose FLUX.2 spelling no source establishes are not invented
  // (docs/formats.md#dialects-in-flux2-files), and FLUX.2 has no bias to hold a bias delta.
  if ((spec.layout.arch & d.generated.archs) == 0)
    return make_error(ErrorCode::kUsage, "the " + spec.dialect + " dialect has no established FLUX.2 spelling; FLUX.2 files are "
                                         "written as " + generated_names([&](const DialectRow& r) { return (r.generated.archs & spec.layout.arch) != 0; }));
  if (spec.bias && !spec.layout.biases)
    return make_error(ErrorCode::kUsage, "this model has no biases, so a LoRA for it has no bias deltas (--bias)");
  return &d;
}

}  // namespace

Result<std::vector<uint8_t>> generate_lora(const GenSpec& spec) {
  if (spec.rank < 1 || spec.rank > 4096) return make_error(ErrorCode::kUsage, "rank must be 1..4096, got " + std::to_string(spec.rank));
  if (!st::dtype_is_encodable(spec.dtype)) return make_error(ErrorCode::kUsage, "dtype must be F32, F64, F16 or BF16");
  LV_TRY_ASSIGN(d, generated_dialect(spec));
  Emitter e{spec, std::mt19937_64(spec.seed), {}, {}, 0};
  std::map<std::string, std::string> meta;
  if (!spec.family.empty()) meta["lora_verify.model"] = spec.family;
  if (d->naming == Naming::kDiffusers) emit_diffusers_named(e, *d);
  else emit_bfl_named(e, *d);
  if (spec.metadata_alpha && d->generated.metadata_alpha) {
    meta["lora_adapter_metadata"] = "{\"transformer.r\": " + std::to_string(spec.rank) +
                                    ", \"transformer.lora_alpha\": " + std::to_string(2 * spec.rank) +
                                    (spec.rslora ? ", \"transformer.use_rslora\": true" : "") + "}";
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

}  // namespace lv
