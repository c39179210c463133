// The built-in variants (see variants.h): dialects and structures are data, and a variant is
// one row of each that applies, in each dtype; other families get BF16 rows.
#include "matrix/variants.h"

#include <cctype>
#include <functional>
#include <optional>

namespace lv::matrix {
namespace {

// Every variant is small but has real FLUX.1-dev shapes: rank 2 and two blocks of each kind.
constexpr int64_t kRank = 2;
constexpr int64_t kBlocks = 2;
constexpr uint64_t kSeed = 7;
// ---- the grid: dialects and structures are data -------------------------------------------

// What a variant needs to know of a dialect the generator writes, from the dialect table.
struct Dialect {
  std::string name;
  bool diffusers_named;  // diffusers module names: q, k, v, proj_mlp are separate modules
  bool split_index;      // BFL names with fused targets split by index (.0 .1 .2 .3)
  bool alpha;            // the dialect spells .alpha tensors
  bool bias;             // the dialect spells bias deltas (lora_B.bias or diff_b)
  bool metadata;         // lora_adapter_metadata (PEFT config in the safetensors header)
  bool top_level;        // covers the embedders and the final layer (XLabs processors do not)
  uint8_t archs;         // architectures whose spelling in it is established
};

const std::vector<Dialect>& dialects() {
  static const std::vector<Dialect> kDialects = [] {
    std::vector<Dialect> out;
    for (const DialectRow& r : dialect_rows())
      if (r.generated.writes)
        out.push_back({std::string(r.name), r.naming == Naming::kDiffusers, r.split_parts, r.generated.alpha,
                       r.generated.bias, r.generated.metadata_alpha, r.naming != Naming::kXlabs, r.generated.archs});
    return out;
  }();
  return kDialects;
}

// The top-level modules other than norm_out, in both namings (for "norm-out only").
std::vector<std::string> top_level_except_norm_out(const flux::Layout& layout) {
  std::vector<std::string> out;
  bool single = false;
  for (const auto& t : flux::bfl_targets(layout))
    if (flux::block_index(t.name, single) < 0 && t.name != "final_layer.adaLN_modulation.1") out.push_back(t.name);
  for (const auto& p : flux::diffusers_map(layout))
    if (flux::block_index(p.diffusers, single) < 0 && p.diffusers != "norm_out.linear") out.push_back(p.diffusers);
  return out;
}

// Single-block module names (diffusers) of one attention part, for every generated block.
std::vector<std::string> single_block_parts(std::initializer_list<const char*> parts) {
  std::vector<std::string> out;
  for (int64_t i = 0; i < kBlocks; ++i)
    for (const char* p : parts) out.push_back("single_transformer_blocks." + std::to_string(i) + ".attn." + p);
  return out;
}

struct Structure {
  const char* name;
  const char* what;  // one line for the legend
  std::function<void(GenSpec&)> apply;
  // nullopt: applies to the dialect; otherwise why the cell is n/a.
  std::function<std::optional<std::string>(const Dialect&)> not_applicable;
};

std::optional<std::string> needs_diffusers_parts(const Dialect& d) {
  if (d.diffusers_named) return std::nullopt;
  if (d.split_index) return "the generator splits onetrainer-bfl targets only at proj_mlp (.3), see no-proj-mlp";
  return "q, k, v (and proj_mlp) are one fused module in BFL naming";
}

const std::vector<Structure>& structures() {
  static const std::vector<Structure> kStructures = {
      {"complete", "every module of the generated blocks and all top-level modules (norm_out included)",
       [](GenSpec&) {}, [](const Dialect&) { return std::optional<std::string>(); }},
      {"no-proj-mlp", "single blocks have q, k, v but no proj_mlp (InvokeAI 5.1.1 crash); its rows are zero-filled",
       [](GenSpec& s) { s.proj_mlp = false; },
       [](const Dialect& d) -> std::optional<std::string> {
         if (d.diffusers_named || d.split_index) return std::nullopt;
         if (!d.top_level) return "xlabs single blocks never carry the proj_mlp rows (every xlabs variant lacks them)";
         return "linear1 is one fused module in BFL naming";
       }},
      {"only-proj-mlp", "single blocks have proj_mlp but no q, k, v", [](GenSpec& s) { s.skip = single_block_parts({"to_q", "to_k", "to_v"}); },
       needs_diffusers_parts},
      {"missing-q", "q absent from every fused attention target (image, text and single-block)",
       [](GenSpec& s) { s.skip = {"attn.to_q", "attn.add_q_proj"}; }, needs_diffusers_parts},
      {"missing-k", "k absent from every fused attention target (the \"q, v but no k\" case)",
       [](GenSpec& s) { s.skip = {"attn.to_k", "attn.add_k_proj"}; }, needs_diffusers_parts},
      {"missing-v", "v absent from every fused attention target",
       [](GenSpec& s) { s.skip = {"attn.to_v", "attn.add_v_proj"}; }, needs_diffusers_parts},
      {"no-double-blocks", "whole double blocks absent (single blocks and top level only)", [](GenSpec& s) { s.max_double = 0; },
       [](const Dialect&) { return std::optional<std::string>(); }},
      {"no-single-blocks", "whole single blocks absent (double blocks and top level only)", [](GenSpec& s) { s.max_single = 0; },
       [](const Dialect&) { return std::optional<std::string>(); }},
      {"mixed-ranks", "rank differs per module (2, 1, 4), so fused parts have different ranks",
       [](GenSpec& s) { s.mixed_ranks = true; }, [](const Dialect&) { return std::optional<std::string>(); }},
      {"per-part-alpha", "a .alpha per module with different values (3, 6, 9), so fused parts have different scales",
       [](GenSpec& s) {
         s.alpha = 3;
         s.per_part_alpha = true;
       },
       [](const Dialect& d) -> std::optional<std::string> {
         if (d.alpha) return std::nullopt;
         return "the dialect has no .alpha tensors";
       }},
      {"metadata-alpha", "scale from lora_adapter_metadata (lora_alpha = 2·r), no .alpha tensors",
       [](GenSpec& s) { s.metadata_alpha = true; },
       [](const Dialect& d) -> std::optional<std::string> {
         if (d.metadata) return std::nullopt;
         return "lora_adapter_metadata is written by diffusers only";
       }},
      {"rslora", "lora_adapter_metadata with use_rslora (scale lora_alpha/√r)",
       [](GenSpec& s) {
         s.metadata_alpha = true;
         s.rslora = true;
       },
       [](const Dialect& d) -> std::optional<std::string> {
         if (d.metadata) return std::nullopt;
         return "lora_adapter_metadata is written by diffusers only";
       }},
      {"norm-out", "only norm_out.linear / final_layer.adaLN_modulation.1 (the row-half swap, Hyper/Turbo LoRAs)",
       [](GenSpec& s) {
         s.blocks = false;
         s.skip = top_level_except_norm_out(s.layout);
       },
       [](const Dialect& d) -> std::optional<std::string> {
         if (d.top_level) return std::nullopt;
         return "xlabs covers block attention only";
       }},
      {"bias", "bias deltas beside the factors (lora_B.bias or diff_b)", [](GenSpec& s) { s.bias = true; },
       [](const Dialect& d) -> std::optional<std::string> {
         if (d.bias) return std::nullopt;
         return "the dialect has no bias-delta spelling";
       }},
      {"embedders-only", "top-level modules only, no blocks", [](GenSpec& s) { s.blocks = false; },
       [](const Dialect& d) -> std::optional<std::string> {
         if (d.top_level) return std::nullopt;
         return "xlabs covers block attention only";
       }},
      {"text-encoder", "CLIP-L (lora_te1_) modules mixed in; passed through unchanged",
       [](GenSpec& s) { s.text_encoder = true; }, [](const Dialect&) { return std::optional<std::string>(); }},
  };
  return kStructures;
}

const st::DType kDTypes[] = {st::DType::kF32, st::DType::kF16, st::DType::kBF16};

// The full grid is of the family table's first family (FLUX.1). The other families whose
// tables or widths differ from it get rows too (one differing only in block counts adds nothing
// at the grid's two blocks): BF16, the dialects whose FLUX.2 spelling is established (those
// LoRAs of every family are written in); a structure a layout cannot hold is n/a, judged from it.
const flux::Family& grid_family() { return flux::families().front(); }

std::vector<const flux::Family*> other_families() {
  std::vector<const flux::Family*> out;
  const flux::Layout& base = grid_family().layout;
  for (const flux::Family& f : flux::families())
    if (!f.test_only && (f.layout.arch != base.arch || f.layout.hidden != base.hidden || f.layout.mlp != base.mlp))
      out.push_back(&f);
  return out;
}

std::optional<std::string> family_not_applicable(const flux::Layout& l, const std::string& structure) {
  const bool split_mlp = flux::parts_of_target(l, "single_blocks.0.linear1").size() == 4;
  if ((structure == "no-proj-mlp" || structure == "only-proj-mlp") && !split_mlp)
    return "linear1 is one module in both namings";
  if (structure == "bias" && !l.biases) return "the model has no biases";
  if (structure == "norm-out" && !flux::find_target(l, "final_layer.adaLN_modulation.1"))
    return "the model has no final adaLN Linear";
  return std::nullopt;
}

// A variant of `family` (its layout in `v.spec` already) with the shared generator settings.
Variant make_variant(Variant v, const Dialect& d, const Structure& s, st::DType dt, const flux::Family* family) {
  v.dialect = d.name;
  v.structure = s.name;
  v.dtype = std::string(st::dtype_name(dt));
  v.spec.dialect = d.name;
  v.spec.rank = kRank;
  v.spec.dtype = dt;
  v.spec.seed = kSeed;
  v.spec.max_double = kBlocks;
  v.spec.max_single = kBlocks;
  v.family = family;
  v.spec.family = family->name;
  s.apply(v.spec);
  return v;
}

// Every dialect × structure that applies × dtype, of FLUX.1-dev.
void add_flux1_variants(std::vector<Variant>& out) {
  const flux::Family* flux1 = &grid_family();
  for (const auto& d : dialects())
    for (const auto& s : structures()) {
      if (s.not_applicable(d)) continue;
      for (st::DType dt : kDTypes) {
        Variant v;
        v.name = d.name + " / " + s.name + " / " + std::string(st::dtype_name(dt));
        out.push_back(make_variant(std::move(v), d, s, dt, flux1));
      }
    }
}

// The other families: their dialects × the structures their layouts hold, in BF16.
void add_family_variants(std::vector<Variant>& out) {
  for (const flux::Family* f : other_families()) {
    for (const Dialect& d : dialects()) {
      if (!(d.archs & flux::kArchFlux2)) continue;
      for (const auto& s : structures()) {
        if (s.not_applicable(d) || std::string(s.name) == "text-encoder") continue;
        Variant v;
        v.spec.layout = flux::layout_of(*f);
        if (family_not_applicable(v.spec.layout, s.name)) continue;
        // Named apart from the FLUX.1 rows ("kohya / complete /" filters only those).
        v.name = std::string(f->name) + ": " + d.name + ", " + s.name + ", BF16";
        out.push_back(make_variant(std::move(v), d, s, st::DType::kBF16, f));
      }
    }
  }
}

}  // namespace

const std::vector<Variant>& builtin_variants() {
  static const std::vector<Variant> kVariants = [] {
    std::vector<Variant> out;
    add_flux1_variants(out);
    add_family_variants(out);
    return out;
  }();
  return kVariants;
}

std::string builtin_description() {
  std::string families;
  for (const flux::Family* f : other_families()) families += (families.empty() ? "" : ", ") + std::string(f->display);
  return "Built-in variants are generated in memory, seeded (seed " + std::to_string(kSeed) +
         "), from the FLUX.1-dev layout: real FLUX.1-dev shapes, rank " + std::to_string(kRank) +
         ", double and single blocks 0–" + std::to_string(kBlocks - 1) +
         " plus the top-level modules (embedders, final layer, norm_out); rows named 'family: …' do the same with the "
         "real shapes of " + families + " (BF16; structures the model cannot hold, such as FLUX.2 bias deltas or "
         "a split linear1, are left out). Each is converted in memory to every "
         "output style, re-read with the same strict reader and verified module by module; the round trip "
         "converts to the other layout and back and compares the result with the source.";
}

std::vector<BuiltinVariant> builtin_variants_matching(const std::string& filter) {
  std::vector<BuiltinVariant> out;
  for (const auto& v : builtin_variants()) {
    if (!filter.empty() && v.name.find(filter) == std::string::npos) continue;
    out.push_back({v.name, v.dialect, v.structure, v.dtype, variant_slug(v.name) + ".safetensors", v.family});
  }
  return out;
}

Result<std::vector<uint8_t>> generate_builtin(const std::string& name) {
  for (const auto& v : builtin_variants())
    if (v.name == name) return generate_lora(v.spec);
  return make_error(ErrorCode::kUsage, "no built-in variant is named '" + name + "'");
}

std::vector<std::string> builtin_variant_names() {
  std::vector<std::string> n;
  for (const auto& v : builtin_variants()) n.push_back(v.name);
  return n;
}

std::vector<std::string> builtin_structures() {
  std::vector<std::string> n;
  for (const auto& s : structures()) n.push_back(s.name);
  return n;
}

std::vector<StructureLegend> builtin_structure_legend() {
  std::vector<StructureLegend> n;
  for (const auto& s : structures()) n.push_back({s.name, s.what});
  return n;
}

std::vector<std::string> builtin_dialects() {
  std::vector<std::string> n;
  for (const auto& d : dialects()) n.push_back(d.name);
  return n;
}

std::vector<Applicability> builtin_applicability() {
  std::vector<Applicability> out;
  for (const auto& d : dialects())
    for (const auto& s : structures()) {
      auto why = s.not_applicable(d);
      out.push_back({d.name, s.name, !why, why.value_or("")});
    }
  return out;
}

std::string variant_slug(const std::string& variant) {
  std::string o;
  for (unsigned char c : variant) {
    if (std::isalnum(c)) o += static_cast<char>(std::tolower(c));
    else if (c == '.' || c == '_') o += static_cast<char>(c);
    else if (!o.empty() && o.back() != '-') o += '-';
  }
  while (!o.empty() && (o.back() == '-' || o.back() == '.')) o.pop_back();
  while (!o.empty() && (o.front() == '-' || o.front() == '.')) o.erase(0, 1);
  if (o.size() > 150) o = o.substr(o.size() - 150);
  return o.empty() ? "variant" : o;
}

}  // namespace lv::matrix
