// The FLUX module tables: BFL targets, their shapes, and the diffusers parts on their rows.
#include "flux/layout.h"

#include <charconv>
#include <tuple>

namespace lv::flux {
namespace {

// Dimensions a table row refers to; resolved against a Layout.
enum class Dim { kH, k2H, k3H, k6H, kM, k2M, kHpM, k3HpM, k3Hp2M, kIn, kOut, kCtx, kVec, kTime, kApprox, kApproxIn };

int64_t resolve(const Layout& l, Dim d) {
  switch (d) {
    case Dim::kH: return l.hidden;
    case Dim::k2H: return 2 * l.hidden;
    case Dim::k3H: return 3 * l.hidden;
    case Dim::k6H: return 6 * l.hidden;
    case Dim::kM: return l.mlp;
    case Dim::k2M: return 2 * l.mlp;
    case Dim::k3Hp2M: return 3 * l.hidden + 2 * l.mlp;
    case Dim::kApprox: return l.approx_hidden;
    case Dim::kApproxIn: return l.approx_in;
    case Dim::kHpM: return l.hidden + l.mlp;
    case Dim::k3HpM: return 3 * l.hidden + l.mlp;
    case Dim::kIn: return l.in_channels;
    case Dim::kOut: return l.out_channels;
    case Dim::kCtx: return l.context;
    case Dim::kVec: return l.vec;
    case Dim::kTime: return l.time;
  }
  return 0;
}

// One diffusers part of a target: its name and its row count (parts are contiguous, in order).
struct PartRow {
  const char* diffusers;
  Dim rows;
};

// One BFL target. Up to four parts; a 1:1 module has one part covering all rows.
struct TargetRow {
  const char* bfl;
  Dim rows;
  Dim cols;
  PartRow parts[4];
  int part_count;
  bool swap_halves;
  bool needs_guidance;
  uint8_t arch = kArchFlux1 | kArchChroma;  // architectures that have this module
  ModuleRole role = ModuleRole::kTopLevel;  // block rows: kBlock unless named (see section_role)
};

constexpr uint8_t kF1 = kArchFlux1;
constexpr uint8_t kF1C = kArchFlux1 | kArchChroma;
constexpr uint8_t kAll = kArchFlux1 | kArchChroma | kArchFlux2;
constexpr uint8_t kF2 = kArchFlux2;
constexpr uint8_t kC = kArchChroma;
constexpr uint8_t kF1F2 = kArchFlux1 | kArchFlux2;

// FLUX.1 (docs/formats.md#flux1-module-map), Chroma (docs/formats.md#chroma) and FLUX.2
// (docs/formats.md#flux2-module-map).
// Block rows are relative to the block prefix. Chroma lacks the per-block modulations,
// time/vector/guidance embedders and the final adaLN Linear, and adds its approximator.
constexpr TargetRow kTopTargets[] = {
    {"img_in", Dim::kH, Dim::kIn, {{"x_embedder", Dim::kH}}, 1, false, false, kAll},
    {"txt_in", Dim::kH, Dim::kCtx, {{"context_embedder", Dim::kH}}, 1, false, false, kAll},
    {"time_in.in_layer", Dim::kH, Dim::kTime, {{"time_text_embed.timestep_embedder.linear_1", Dim::kH}}, 1, false, false, kF1, ModuleRole::kTimeEmbedder},
    {"time_in.out_layer", Dim::kH, Dim::kH, {{"time_text_embed.timestep_embedder.linear_2", Dim::kH}}, 1, false, false, kF1, ModuleRole::kTimeEmbedder},
    {"vector_in.in_layer", Dim::kH, Dim::kVec, {{"time_text_embed.text_embedder.linear_1", Dim::kH}}, 1, false, false, kF1},
    {"vector_in.out_layer", Dim::kH, Dim::kH, {{"time_text_embed.text_embedder.linear_2", Dim::kH}}, 1, false, false, kF1},
    {"guidance_in.in_layer", Dim::kH, Dim::kTime, {{"time_text_embed.guidance_embedder.linear_1", Dim::kH}}, 1, false, true, kF1, ModuleRole::kGuidanceEmbedder},
    {"guidance_in.out_layer", Dim::kH, Dim::kH, {{"time_text_embed.guidance_embedder.linear_2", Dim::kH}}, 1, false, true, kF1, ModuleRole::kGuidanceEmbedder},
    {"time_in.in_layer", Dim::kH, Dim::kTime, {{"time_guidance_embed.timestep_embedder.linear_1", Dim::kH}}, 1, false, false, kF2, ModuleRole::kTimeEmbedder},
    {"time_in.out_layer", Dim::kH, Dim::kH, {{"time_guidance_embed.timestep_embedder.linear_2", Dim::kH}}, 1, false, false, kF2, ModuleRole::kTimeEmbedder},
    {"guidance_in.in_layer", Dim::kH, Dim::kTime, {{"time_guidance_embed.guidance_embedder.linear_1", Dim::kH}}, 1, false, true, kF2, ModuleRole::kGuidanceEmbedder},
    {"guidance_in.out_layer", Dim::kH, Dim::kH, {{"time_guidance_embed.guidance_embedder.linear_2", Dim::kH}}, 1, false, true, kF2, ModuleRole::kGuidanceEmbedder},
    {"double_stream_modulation_img.lin", Dim::k6H, Dim::kH, {{"double_stream_modulation_img.linear", Dim::k6H}}, 1, false, false, kF2, ModuleRole::kSharedModulation},
    {"double_stream_modulation_txt.lin", Dim::k6H, Dim::kH, {{"double_stream_modulation_txt.linear", Dim::k6H}}, 1, false, false, kF2, ModuleRole::kSharedModulation},
    {"single_stream_modulation.lin", Dim::k3H, Dim::kH, {{"single_stream_modulation.linear", Dim::k3H}}, 1, false, false, kF2, ModuleRole::kSharedModulation},
    {"distilled_guidance_layer.in_proj", Dim::kApprox, Dim::kApproxIn, {{"distilled_guidance_layer.in_proj", Dim::kApprox}}, 1, false, false, kC},
    {"distilled_guidance_layer.layers.0.in_layer", Dim::kApprox, Dim::kApprox, {{"distilled_guidance_layer.layers.0.linear_1", Dim::kApprox}}, 1, false, false, kC},
    {"distilled_guidance_layer.layers.0.out_layer", Dim::kApprox, Dim::kApprox, {{"distilled_guidance_layer.layers.0.linear_2", Dim::kApprox}}, 1, false, false, kC},
    {"distilled_guidance_layer.layers.1.in_layer", Dim::kApprox, Dim::kApprox, {{"distilled_guidance_layer.layers.1.linear_1", Dim::kApprox}}, 1, false, false, kC},
    {"distilled_guidance_layer.layers.1.out_layer", Dim::kApprox, Dim::kApprox, {{"distilled_guidance_layer.layers.1.linear_2", Dim::kApprox}}, 1, false, false, kC},
    {"distilled_guidance_layer.layers.2.in_layer", Dim::kApprox, Dim::kApprox, {{"distilled_guidance_layer.layers.2.linear_1", Dim::kApprox}}, 1, false, false, kC},
    {"distilled_guidance_layer.layers.2.out_layer", Dim::kApprox, Dim::kApprox, {{"distilled_guidance_layer.layers.2.linear_2", Dim::kApprox}}, 1, false, false, kC},
    {"distilled_guidance_layer.layers.3.in_layer", Dim::kApprox, Dim::kApprox, {{"distilled_guidance_layer.layers.3.linear_1", Dim::kApprox}}, 1, false, false, kC},
    {"distilled_guidance_layer.layers.3.out_layer", Dim::kApprox, Dim::kApprox, {{"distilled_guidance_layer.layers.3.linear_2", Dim::kApprox}}, 1, false, false, kC},
    {"distilled_guidance_layer.layers.4.in_layer", Dim::kApprox, Dim::kApprox, {{"distilled_guidance_layer.layers.4.linear_1", Dim::kApprox}}, 1, false, false, kC},
    {"distilled_guidance_layer.layers.4.out_layer", Dim::kApprox, Dim::kApprox, {{"distilled_guidance_layer.layers.4.linear_2", Dim::kApprox}}, 1, false, false, kC},
    {"distilled_guidance_layer.out_proj", Dim::kH, Dim::kApprox, {{"distilled_guidance_layer.out_proj", Dim::kH}}, 1, false, false, kC},
    {"final_layer.linear", Dim::kOut, Dim::kH, {{"proj_out", Dim::kOut}}, 1, false, false, kAll, ModuleRole::kFinalLinear},
    {"final_layer.adaLN_modulation.1", Dim::k2H, Dim::kH, {{"norm_out.linear", Dim::k2H}}, 1, true, false, kF1F2, ModuleRole::kFinalModulation},
};

constexpr TargetRow kDoubleTargets[] = {
    {"img_attn.qkv", Dim::k3H, Dim::kH, {{"attn.to_q", Dim::kH}, {"attn.to_k", Dim::kH}, {"attn.to_v", Dim::kH}}, 3, false, false, kAll},
    {"txt_attn.qkv", Dim::k3H, Dim::kH, {{"attn.add_q_proj", Dim::kH}, {"attn.add_k_proj", Dim::kH}, {"attn.add_v_proj", Dim::kH}}, 3, false, false, kAll},
    {"img_attn.proj", Dim::kH, Dim::kH, {{"attn.to_out.0", Dim::kH}}, 1, false, false, kAll},
    {"txt_attn.proj", Dim::kH, Dim::kH, {{"attn.to_add_out", Dim::kH}}, 1, false, false, kAll},
    {"img_mlp.0", Dim::kM, Dim::kH, {{"ff.net.0.proj", Dim::kM}}, 1, false, false, kF1C},
    {"img_mlp.2", Dim::kH, Dim::kM, {{"ff.net.2", Dim::kH}}, 1, false, false, kF1C},
    {"txt_mlp.0", Dim::kM, Dim::kH, {{"ff_context.net.0.proj", Dim::kM}}, 1, false, false, kF1C, ModuleRole::kTextMlp},
    {"txt_mlp.2", Dim::kH, Dim::kM, {{"ff_context.net.2", Dim::kH}}, 1, false, false, kF1C, ModuleRole::kTextMlp},
    {"img_mod.lin", Dim::k6H, Dim::kH, {{"norm1.linear", Dim::k6H}}, 1, false, false, kF1},
    {"txt_mod.lin", Dim::k6H, Dim::kH, {{"norm1_context.linear", Dim::k6H}}, 1, false, false, kF1},
    // FLUX.2: SwiGLU projections, rows [0,M) gate and [M,2M) up in both namings (no reorder).
    {"img_mlp.0", Dim::k2M, Dim::kH, {{"ff.linear_in", Dim::k2M}}, 1, false, false, kF2},
    {"img_mlp.2", Dim::kH, Dim::kM, {{"ff.linear_out", Dim::kH}}, 1, false, false, kF2},
    {"txt_mlp.0", Dim::k2M, Dim::kH, {{"ff_context.linear_in", Dim::k2M}}, 1, false, false, kF2, ModuleRole::kTextMlp},
    {"txt_mlp.2", Dim::kH, Dim::kM, {{"ff_context.linear_out", Dim::kH}}, 1, false, false, kF2, ModuleRole::kTextMlp},
};

constexpr TargetRow kSingleTargets[] = {
    {"linear1", Dim::k3HpM, Dim::kH, {{"attn.to_q", Dim::kH}, {"attn.to_k", Dim::kH}, {"attn.to_v", Dim::kH}, {"proj_mlp", Dim::kM}}, 4, false, false, kF1C},
    {"linear2", Dim::kH, Dim::kHpM, {{"proj_out", Dim::kH}}, 1, false, false, kF1C},
    {"modulation.lin", Dim::k3H, Dim::kH, {{"norm.linear", Dim::k3H}}, 1, false, false, kF1},
    // FLUX.2 keeps linear1 fused in diffusers: q, k, v, mlp gate, mlp up in the same row order.
    {"linear1", Dim::k3Hp2M, Dim::kH, {{"attn.to_qkv_mlp_proj", Dim::k3Hp2M}}, 1, false, false, kF2},
    {"linear2", Dim::kH, Dim::kHpM, {{"attn.to_out", Dim::kH}}, 1, false, false, kF2},
};

constexpr const char* kBflDoublePrefix = "double_blocks.";
constexpr const char* kBflSinglePrefix = "single_blocks.";
constexpr const char* kDiffDoublePrefix = "transformer_blocks.";
constexpr const char* kDiffSinglePrefix = "single_transformer_blocks.";

std::string block_name(const char* prefix, int64_t i, const char* rest) {
  return std::string(prefix) + std::to_string(i) + "." + rest;
}

// Block rows say kTopLevel only by default: a block module is kBlock unless its row names a role.
Target make_target(const Layout& l, const TargetRow& row, std::string name, bool in_block) {
  const ModuleRole role = in_block && row.role == ModuleRole::kTopLevel ? ModuleRole::kBlock : row.role;
  return Target{std::move(name), resolve(l, row.rows), resolve(l, row.cols), role};
}

void append_parts(const Layout& l, const TargetRow& row, const std::string& target_name,
                  const std::string& diff_prefix, std::vector<PartMap>& out) {
  int64_t begin = 0;
  for (int j = 0; j < row.part_count; ++j) {
    int64_t n = resolve(l, row.parts[j].rows);
    out.push_back(PartMap{diff_prefix + row.parts[j].diffusers, target_name, begin, begin + n,
                          row.swap_halves, j, row.part_count});
    begin += n;
  }
}

// Splits "<prefix><index>.<rest>"; false when the name does not have that form.
bool split_block(std::string_view name, std::string_view prefix, int64_t& index, std::string_view& rest) {
  if (name.substr(0, prefix.size()) != prefix) return false;
  name.remove_prefix(prefix.size());
  size_t dot = name.find('.');
  if (dot == std::string_view::npos || dot == 0 || dot > 9) return false;
  std::string_view digits = name.substr(0, dot);
  if (digits.size() > 1 && digits[0] == '0') return false;  // "01" is not a block index
  int64_t v = 0;
  auto [p, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), v);
  if (ec != std::errc() || p != digits.data() + digits.size()) return false;
  index = v;
  rest = name.substr(dot + 1);
  return true;
}

bool in_arch(const Layout& l, const TargetRow& r) { return (r.arch & l.arch) != 0; }

template <size_t N>
const TargetRow* find_bfl_row(const Layout& l, const TargetRow (&table)[N], std::string_view rest) {
  for (const auto& r : table)
    if (in_arch(l, r) && rest == r.bfl) return &r;
  return nullptr;
}

template <size_t N>
std::optional<std::pair<const TargetRow*, int>> find_diff_row(const Layout& l, const TargetRow (&table)[N],
                                                              std::string_view rest) {
  for (const auto& r : table)
    if (in_arch(l, r))
      for (int j = 0; j < r.part_count; ++j)
        if (rest == r.parts[j].diffusers) return std::make_pair(&r, j);
  return std::nullopt;
}

bool guidance_ok(const Layout& l, const TargetRow& r) { return in_arch(l, r) && (l.guidance || !r.needs_guidance); }

std::string underscored(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c == '.') c = '_';
  return out;
}

// Splits "<prefix><digits>_<rest>" (underscore spelling).
bool split_block_underscore(std::string_view name, std::string_view prefix, std::string& index,
                            std::string_view& rest) {
  if (name.substr(0, prefix.size()) != prefix) return false;
  name.remove_prefix(prefix.size());
  size_t i = 0;
  while (i < name.size() && i < 10 && name[i] >= '0' && name[i] <= '9') ++i;
  if (i == 0 || i >= name.size() || name[i] != '_') return false;
  index = std::string(name.substr(0, i));
  rest = name.substr(i + 1);
  return true;
}

template <size_t N, typename NameOf>
std::optional<std::string> from_underscore(const TargetRow (&table)[N], std::string_view rest, NameOf name_of) {
  for (const auto& r : table)
    for (int j = 0; j < r.part_count; ++j) {
      const char* dotted = name_of(r, j);
      if (dotted && underscored(dotted) == rest) return std::string(dotted);
    }
  return std::nullopt;
}

const char* bfl_name_of(const TargetRow& r, int j) { return j == 0 ? r.bfl : nullptr; }
const char* diff_name_of(const TargetRow& r, int j) { return r.parts[j].diffusers; }

template <typename NameOf>
std::optional<std::string> recover(std::string_view name, const char* dprefix, const char* sprefix, NameOf name_of) {
  std::string index;
  std::string_view rest;
  std::string d = underscored(dprefix), s = underscored(sprefix);
  // The single prefix may contain the double one ("single_transformer_blocks_"), so try it first.
  if (split_block_underscore(name, s, index, rest)) {
    auto hit = from_underscore(kSingleTargets, rest, name_of);
    if (hit) return std::string(sprefix) + index + "." + *hit;
    return std::nullopt;
  }
  if (split_block_underscore(name, d, index, rest)) {
    auto hit = from_underscore(kDoubleTargets, rest, name_of);
    if (hit) return std::string(dprefix) + index + "." + *hit;
    return std::nullopt;
  }
  return from_underscore(kTopTargets, name, name_of);
}

}  // namespace

std::optional<std::string> bfl_from_underscore(std::string_view name) {
  return recover(name, kBflDoublePrefix, kBflSinglePrefix, bfl_name_of);
}

std::optional<std::string> diffusers_from_underscore(std::string_view name) {
  return recover(name, kDiffDoublePrefix, kDiffSinglePrefix, diff_name_of);
}

int64_t block_index(std::string_view name, bool& is_single) {
  int64_t i = 0;
  std::string_view rest;
  for (const char* p : {kBflSinglePrefix, kDiffSinglePrefix}) {
    if (split_block(name, p, i, rest)) {
      is_single = true;
      return i;
    }
  }
  for (const char* p : {kBflDoublePrefix, kDiffDoublePrefix}) {
    if (split_block(name, p, i, rest)) {
      is_single = false;
      return i;
    }
  }
  return -1;
}

Layout Layout::tiny() {
  Layout l;
  l.hidden = 8;
  l.mlp = 16;
  l.double_blocks = 2;
  l.single_blocks = 2;
  l.in_channels = 4;
  l.out_channels = 4;
  l.context = 12;
  l.vec = 6;
  l.time = 5;
  l.guidance = true;
  return l;
}

std::vector<Target> bfl_targets(const Layout& l) {
  std::vector<Target> out;
  for (const auto& r : kTopTargets)
    if (guidance_ok(l, r)) out.push_back(make_target(l, r, r.bfl, false));
  for (int64_t i = 0; i < l.double_blocks; ++i)
    for (const auto& r : kDoubleTargets)
      if (in_arch(l, r)) out.push_back(make_target(l, r, block_name(kBflDoublePrefix, i, r.bfl), true));
  for (int64_t i = 0; i < l.single_blocks; ++i)
    for (const auto& r : kSingleTargets)
      if (in_arch(l, r)) out.push_back(make_target(l, r, block_name(kBflSinglePrefix, i, r.bfl), true));
  return out;
}

std::vector<PartMap> diffusers_map(const Layout& l) {
  std::vector<PartMap> out;
  for (const auto& r : kTopTargets)
    if (guidance_ok(l, r)) append_parts(l, r, r.bfl, "", out);
  for (int64_t i = 0; i < l.double_blocks; ++i)
    for (const auto& r : kDoubleTargets)
      if (in_arch(l, r))
        append_parts(l, r, block_name(kBflDoublePrefix, i, r.bfl), kDiffDoublePrefix + std::to_string(i) + ".", out);
  for (int64_t i = 0; i < l.single_blocks; ++i)
    for (const auto& r : kSingleTargets)
      if (in_arch(l, r))
        append_parts(l, r, block_name(kBflSinglePrefix, i, r.bfl), kDiffSinglePrefix + std::to_string(i) + ".", out);
  return out;
}

std::optional<Target> find_target(const Layout& l, std::string_view name) {
  int64_t i = 0;
  std::string_view rest;
  if (split_block(name, kBflDoublePrefix, i, rest)) {
    const TargetRow* r = find_bfl_row(l, kDoubleTargets, rest);
    if (!r || i >= l.double_blocks) return std::nullopt;
    return make_target(l, *r, std::string(name), true);
  }
  if (split_block(name, kBflSinglePrefix, i, rest)) {
    const TargetRow* r = find_bfl_row(l, kSingleTargets, rest);
    if (!r || i >= l.single_blocks) return std::nullopt;
    return make_target(l, *r, std::string(name), true);
  }
  const TargetRow* r = find_bfl_row(l, kTopTargets, name);
  if (!r || !guidance_ok(l, *r)) return std::nullopt;
  return make_target(l, *r, std::string(name), false);
}

std::optional<PartMap> find_diffusers(const Layout& l, std::string_view name) {
  int64_t i = 0;
  std::string_view rest;
  const TargetRow* row = nullptr;
  int part = 0;
  std::string target;
  if (split_block(name, kDiffSinglePrefix, i, rest)) {
    auto hit = find_diff_row(l, kSingleTargets, rest);
    if (!hit || i >= l.single_blocks) return std::nullopt;
    std::tie(row, part) = *hit;
    target = block_name(kBflSinglePrefix, i, row->bfl);
  } else if (split_block(name, kDiffDoublePrefix, i, rest)) {
    auto hit = find_diff_row(l, kDoubleTargets, rest);
    if (!hit || i >= l.double_blocks) return std::nullopt;
    std::tie(row, part) = *hit;
    target = block_name(kBflDoublePrefix, i, row->bfl);
  } else {
    auto hit = find_diff_row(l, kTopTargets, name);
    if (!hit || !guidance_ok(l, *hit->first)) return std::nullopt;
    std::tie(row, part) = *hit;
    target = row->bfl;
  }
  // Only the named part: its rows start after the parts before it.
  int64_t begin = 0;
  for (int j = 0; j < part; ++j) begin += resolve(l, row->parts[j].rows);
  return PartMap{std::string(name), std::move(target), begin, begin + resolve(l, row->parts[part].rows),
                 row->swap_halves, part, row->part_count};
}

std::vector<PartMap> parts_of_target(const Layout& l, std::string_view name) {
  std::vector<PartMap> out;
  int64_t i = 0;
  std::string_view rest;
  if (split_block(name, kBflDoublePrefix, i, rest)) {
    const TargetRow* r = find_bfl_row(l, kDoubleTargets, rest);
    if (r && i < l.double_blocks) append_parts(l, *r, std::string(name), kDiffDoublePrefix + std::to_string(i) + ".", out);
  } else if (split_block(name, kBflSinglePrefix, i, rest)) {
    const TargetRow* r = find_bfl_row(l, kSingleTargets, rest);
    if (r && i < l.single_blocks) append_parts(l, *r, std::string(name), kDiffSinglePrefix + std::to_string(i) + ".", out);
  } else {
    const TargetRow* r = find_bfl_row(l, kTopTargets, name);
    if (r && guidance_ok(l, *r)) append_parts(l, *r, std::string(name), "", out);
  }
  return out;
}

}  // namespace lv::flux
