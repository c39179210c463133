// Tables of LoRA key spellings (docs/formats.md#key-dialects) and the parser that applies them.
#include "lora/keys.h"

#include <algorithm>
#include <array>
#include <vector>

#include "flux/layout.h"

namespace lv {
namespace {

bool starts_with(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }
bool ends_with(std::string_view s, std::string_view p) {
  return s.size() >= p.size() && s.substr(s.size() - p.size()) == p;
}

// Suffix spellings. `family` separates PEFT (lora_A/B), kohya-style (lora_down/up) and
// the rest so the dialect can be named.
enum class Family { kPeft, kPeftOld, kKohya, kXlabs, kLycoris, kDiff, kDora, kAlpha };

struct SuffixRow {
  std::string_view suffix;
  Role role;
  Family family;
};

constexpr std::array kSuffixes = {
    SuffixRow{".lora_A.weight", Role::kDown, Family::kPeft},
    SuffixRow{".lora_B.weight", Role::kUp, Family::kPeft},
    SuffixRow{".lora_B.bias", Role::kBias, Family::kPeft},
    SuffixRow{".lora_down.weight", Role::kDown, Family::kKohya},
    SuffixRow{".lora_up.weight", Role::kUp, Family::kKohya},
    SuffixRow{".lora.down.weight", Role::kDown, Family::kPeftOld},
    SuffixRow{".lora.up.weight", Role::kUp, Family::kPeftOld},
    SuffixRow{"_lora.down.weight", Role::kDown, Family::kPeftOld},
    SuffixRow{"_lora.up.weight", Role::kUp, Family::kPeftOld},
    SuffixRow{".down.weight", Role::kDown, Family::kXlabs},
    SuffixRow{".up.weight", Role::kUp, Family::kXlabs},
    SuffixRow{".alpha", Role::kAlpha, Family::kAlpha},
    SuffixRow{".diff", Role::kDiff, Family::kDiff},
    SuffixRow{".diff_b", Role::kDiffB, Family::kDiff},
    SuffixRow{".lokr_w1", Role::kLokrW1, Family::kLycoris},
    SuffixRow{".lokr_w1_a", Role::kLokrW1A, Family::kLycoris},
    SuffixRow{".lokr_w1_b", Role::kLokrW1B, Family::kLycoris},
    SuffixRow{".lokr_w2", Role::kLokrW2, Family::kLycoris},
    SuffixRow{".lokr_w2_a", Role::kLokrW2A, Family::kLycoris},
    SuffixRow{".lokr_w2_b", Role::kLokrW2B, Family::kLycoris},
    SuffixRow{".lokr_t2", Role::kLokrT2, Family::kLycoris},
    SuffixRow{".hada_w1_a", Role::kHadaW1A, Family::kLycoris},
    SuffixRow{".hada_w1_b", Role::kHadaW1B, Family::kLycoris},
    SuffixRow{".hada_w2_a", Role::kHadaW2A, Family::kLycoris},
    SuffixRow{".hada_w2_b", Role::kHadaW2B, Family::kLycoris},
    SuffixRow{".dora_scale", Role::kDoraScale, Family::kDora},
    SuffixRow{".lora_magnitude_vector", Role::kMagnitude, Family::kDora},
    SuffixRow{".lora_magnitude_vector.weight", Role::kMagnitude, Family::kDora},
};

// Prefix spellings: what follows them and which dialect they announce.
enum class Spelling { kDotted, kBflUnderscore, kDiffusersUnderscore };

struct PrefixRow {
  std::string_view prefix;
  Spelling spelling;
  std::string_view dialect_diffusers;  // dialect when the module is in diffusers naming
  std::string_view dialect_bfl;        // dialect when the module is in BFL naming
};

constexpr std::array kPrefixes = {
    PrefixRow{"lora_unet_", Spelling::kBflUnderscore, "", "kohya"},
    PrefixRow{"lora_transformer_", Spelling::kDiffusersUnderscore, "onetrainer", ""},
    PrefixRow{"lycoris_", Spelling::kDiffusersUnderscore, "lycoris", ""},
    PrefixRow{"diffusion_model.", Spelling::kDotted, "", "comfy"},
    PrefixRow{"transformer.", Spelling::kDotted, "diffusers", "onetrainer-bfl"},
    PrefixRow{"base_model.model.", Spelling::kDotted, "fal", "fal-kontext"},  // fal trainer (PEFT base_model wrapper)
    PrefixRow{"", Spelling::kDotted, "diffusers", "bfl"},
};

struct TextEncoderRow {
  std::string_view prefix;
  std::string_view label;
};

constexpr std::array kTextEncoders = {
    TextEncoderRow{"lora_te1_", "CLIP-L"},       TextEncoderRow{"lora_te2_", "T5-XXL"},
    TextEncoderRow{"lora_te3_", "T5-XXL"},       TextEncoderRow{"lora_te_", "CLIP-L"},
    TextEncoderRow{"text_encoder_2.", "T5-XXL"}, TextEncoderRow{"text_encoder.", "CLIP-L"},
    TextEncoderRow{"text_encoders.", "text encoder"},
};

// Strips a PEFT adapter name: "x.lora_A.default.weight" → "x.lora_A.weight", adapter "default".
std::string strip_adapter(std::string_view name, std::string& adapter) {
  for (std::string_view part : {".lora_A.", ".lora_B.", ".lora_magnitude_vector."}) {
    size_t at = name.rfind(part);
    if (at == std::string_view::npos) continue;
    std::string_view tail = name.substr(at + part.size());  // "default.weight"
    size_t dot = tail.find('.');
    if (dot == std::string_view::npos || dot == 0) continue;
    std::string_view last = tail.substr(dot + 1);
    if (last != "weight" && last != "bias") continue;
    adapter = std::string(tail.substr(0, dot));
    if (adapter == "default") adapter.clear();  // PEFT loads unnamed weights as "default"
    return std::string(name.substr(0, at + part.size())) + std::string(last);
  }
  return std::string(name);
}

// Family of a dialect name: PEFT suffixes on BFL names announce ai-toolkit etc.
std::string refine_dialect(std::string_view base, Family family, Naming naming) {
  if (naming == Naming::kXlabs) return "xlabs";
  std::string d(base);
  if (family == Family::kLycoris && d != "lycoris") return d + "+lycoris";
  if (d == "comfy" && family == Family::kPeft) return "ai-toolkit";
  if (d == "diffusers" && family == Family::kPeftOld) return "diffusers-old";
  if (d == "diffusers" && family == Family::kKohya) return "diffusers-kohya-suffix";
  if (d == "bfl" && family == Family::kKohya) return "comfy-bare";
  return d;
}

// Recognises XLabs processor names: "double_blocks.0.processor.qkv_lora1".
bool is_xlabs_module(std::string_view module) {
  size_t at = module.find(".processor.");
  if (at == std::string_view::npos) return false;
  std::string_view tail = module.substr(at + 11);
  return tail == "qkv_lora1" || tail == "qkv_lora2" || tail == "proj_lora1" || tail == "proj_lora2" ||
         tail == "qkv_lora" || tail == "proj_lora";
}

// Splits a trailing OneTrainer-BFL index: "double_blocks.0.img_attn.qkv.2" → (…qkv, 2).
int split_index_of(std::string& module) {
  if (module.size() < 2 || module[module.size() - 2] != '.') return -1;
  char c = module.back();
  if (c < '0' || c > '3') return -1;
  std::string base = module.substr(0, module.size() - 2);
  // Only fused targets carry split indices; "img_mlp.0" is a module name, not a split.
  if (!ends_with(base, ".qkv") && !ends_with(base, ".linear1")) return -1;
  module = base;
  return c - '0';
}

}  // namespace

std::string_view role_name(Role r) {
  for (const auto& row : kSuffixes)
    if (row.role == r) return row.suffix.substr(1);
  return "?";
}

bool dialect_is_bfl_named(std::string_view dialect) {
  if (dialect == "xlabs") return true;
  for (const auto& row : kPrefixes) {
    if (row.dialect_bfl.empty()) continue;
    if (starts_with(dialect, row.dialect_bfl)) return true;
  }
  return dialect == "ai-toolkit";
}

std::optional<std::string> text_encoder_label(std::string_view name) {
  for (const auto& row : kTextEncoders)
    if (starts_with(name, row.prefix)) return std::string(row.label);
  return std::nullopt;
}

namespace {

std::optional<ParsedKey> parse_with_suffix(ParsedKey key, const std::string& name, const SuffixRow* suffix);

}  // namespace

std::optional<ParsedKey> parse_key(std::string_view raw) {
  ParsedKey key;
  std::string name = strip_adapter(raw, key.adapter);
  // Several suffixes can match ("qkv_lora.up.weight" ends in "_lora.up.weight" and in
  // ".up.weight"): the longest one whose remaining name is a known module wins.
  std::vector<const SuffixRow*> matches;
  for (const auto& row : kSuffixes)
    if (ends_with(name, row.suffix)) matches.push_back(&row);
  std::sort(matches.begin(), matches.end(), [](auto* a, auto* b) { return a->suffix.size() > b->suffix.size(); });
  for (const SuffixRow* suffix : matches)
    if (auto k = parse_with_suffix(key, name, suffix)) return k;
  return std::nullopt;
}

namespace {

std::optional<ParsedKey> parse_with_suffix(ParsedKey key, const std::string& name, const SuffixRow* suffix) {
  std::string stem = name.substr(0, name.size() - suffix->suffix.size());
  key.role = suffix->role;

  for (const auto& prefix : kPrefixes) {
    if (!starts_with(stem, prefix.prefix)) continue;
    std::string module = stem.substr(prefix.prefix.size());
    if (module.empty()) return std::nullopt;
    std::string_view base_dialect;
    switch (prefix.spelling) {
      case Spelling::kBflUnderscore: {
        auto dotted = flux::bfl_from_underscore(module);
        if (!dotted) return std::nullopt;
        module = *dotted;
        key.naming = Naming::kBfl;
        base_dialect = prefix.dialect_bfl;
        break;
      }
      case Spelling::kDiffusersUnderscore: {
        auto dotted = flux::diffusers_from_underscore(module);
        if (!dotted) return std::nullopt;
        module = *dotted;
        key.naming = Naming::kDiffusers;
        base_dialect = prefix.dialect_diffusers;
        break;
      }
      case Spelling::kDotted: {
        if (is_xlabs_module(module)) {
          key.naming = Naming::kXlabs;
          base_dialect = "xlabs";
          break;
        }
        // Naming is decided by the module table alone; block ranges are checked later,
        // against the layout inferred from the whole file.
        std::string bfl = module;
        int split = split_index_of(bfl);
        // A name both namings spell alike (Chroma's distilled_guidance_layer.in_proj) is read
        // in the naming the prefix announces first: diffusers under transformer.
        const bool same_in_both = split < 0 && !prefix.dialect_diffusers.empty() &&
                                  flux::find_diffusers(flux::Layout::any_blocks(), module).has_value();
        if (!same_in_both && flux::find_target(flux::Layout::any_blocks(), bfl)) {
          key.naming = Naming::kBfl;
          key.split_index = split;
          module = bfl;
          base_dialect = prefix.dialect_bfl;
        } else if (flux::find_diffusers(flux::Layout::any_blocks(), module)) {
          key.naming = Naming::kDiffusers;
          base_dialect = prefix.dialect_diffusers;
        } else {
          return std::nullopt;  // a module of neither table: reported as unknown, never guessed
        }
        break;
      }
    }
    if (base_dialect.empty()) return std::nullopt;
    // XLabs-style ".down/.up.weight" suffixes only belong to XLabs processor names.
    if (suffix->family == Family::kXlabs && key.naming != Naming::kXlabs) return std::nullopt;
    if (key.naming == Naming::kXlabs && suffix->family != Family::kXlabs && suffix->family != Family::kAlpha)
      return std::nullopt;
    key.dialect = refine_dialect(base_dialect, suffix->family, key.naming);
    key.module = module;
    // Appended piece by piece: g++ 12 warns falsely (-Wrestrict) on "." + std::to_string().
    key.group = std::string(prefix.prefix);
    key.group += module;
    if (key.split_index >= 0) key.group.append(".").append(std::to_string(key.split_index));
    if (!key.adapter.empty()) key.group.append("#").append(key.adapter);
    return key;
  }
  return std::nullopt;
}

}  // namespace

}  // namespace lv
