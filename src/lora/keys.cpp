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

// Suffix spellings, by the family that names the dialect.
using Family = SuffixFamily;

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

// The prefixes of the dialect table, longest first: what follows each and which dialect it
// announces for each naming of the module.
struct PrefixRow {
  std::string_view prefix;
  Spelling spelling;
  Dialect diffusers = Dialect::kNone;  // when the module is in diffusers naming
  Dialect bfl = Dialect::kNone;        // when the module is in BFL naming
};

std::vector<PrefixRow> make_prefixes() {
  std::vector<PrefixRow> out;
  auto add = [&](std::string_view prefix, Spelling spelling, Naming naming, Dialect d) {
    auto it = std::find_if(out.begin(), out.end(), [&](const PrefixRow& r) { return r.prefix == prefix && r.spelling == spelling; });
    if (it == out.end()) it = out.insert(out.end(), PrefixRow{prefix, spelling});
    (naming == Naming::kDiffusers ? it->diffusers : it->bfl) = d;
  };
  for (const DialectRow& r : dialect_rows()) {
    if (r.id == Dialect::kNone || r.refines != Dialect::kNone || r.naming == Naming::kXlabs) continue;
    add(r.prefix, r.spelling, r.naming, r.id);
    if (r.bare_prefix_read) add("", Spelling::kDotted, r.naming, r.id);
  }
  std::stable_sort(out.begin(), out.end(), [](const PrefixRow& a, const PrefixRow& b) { return a.prefix.size() > b.prefix.size(); });
  return out;
}

const std::vector<PrefixRow>& prefixes() {
  static const std::vector<PrefixRow> rows = make_prefixes();
  return rows;
}

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

// The dialect a key is in: XLabs processor names are XLabs', LyCORIS adapter suffixes keep the
// key dialect and mark it; other suffix families may refine the prefix's dialect.
DialectTag tag_of(Dialect base, Family family, Naming naming) {
  if (naming == Naming::kXlabs) return {Dialect::kXlabs, false};
  if (family == Family::kLycoris) return {base, base != Dialect::kLycoris};
  return {refine_dialect(base, family), false};
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

std::string_view suffix_for(Role role, SuffixFamily family) {
  for (const auto& row : kSuffixes)
    if (row.role == role && row.family == family) return row.suffix;
  return role == Role::kBias ? suffix_for(Role::kDiffB, Family::kDiff) : std::string_view();
}

std::string module_key(const DialectRow& dialect, const std::string& target, const std::string& diffusers_module) {
  const std::string& module = dialect.naming == Naming::kDiffusers ? diffusers_module : target;
  std::string key(dialect.prefix);
  if (dialect.spelling == Spelling::kDotted) return key + module;
  for (char c : module) key += c == '.' ? '_' : c;
  return key;
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

  for (const PrefixRow& prefix : prefixes()) {
    if (!starts_with(stem, prefix.prefix)) continue;
    std::string module = stem.substr(prefix.prefix.size());
    if (module.empty()) return std::nullopt;
    Dialect base = Dialect::kNone;
    if (prefix.spelling == Spelling::kUnderscored) {
      const bool bfl = prefix.bfl != Dialect::kNone;
      auto dotted = bfl ? flux::bfl_from_underscore(module) : flux::diffusers_from_underscore(module);
      if (!dotted) return std::nullopt;
      module = *dotted;
      key.naming = bfl ? Naming::kBfl : Naming::kDiffusers;
      base = bfl ? prefix.bfl : prefix.diffusers;
    } else if (is_xlabs_module(module)) {
      key.naming = Naming::kXlabs;
      base = Dialect::kXlabs;
    } else {
      // Naming is decided by the module table alone; block ranges are checked later,
      // against the layout inferred from the whole file.
      std::string bfl = module;
      int split = split_index_of(bfl);
      // A name both namings spell alike (Chroma's distilled_guidance_layer.in_proj) is read
      // in the naming the prefix announces first: diffusers under transformer.
      const bool same_in_both = split < 0 && prefix.diffusers != Dialect::kNone &&
                                flux::find_diffusers(flux::Layout::any_blocks(), module).has_value();
      if (!same_in_both && flux::find_target(flux::Layout::any_blocks(), bfl)) {
        key.naming = Naming::kBfl;
        key.split_index = split;
        module = bfl;
        base = prefix.bfl;
      } else if (flux::find_diffusers(flux::Layout::any_blocks(), module)) {
        key.naming = Naming::kDiffusers;
        base = prefix.diffusers;
      } else {
        return std::nullopt;  // a module of neither table: reported as unknown, never guessed
      }
    }
    if (base == Dialect::kNone) return std::nullopt;
    // XLabs-style ".down/.up.weight" suffixes only belong to XLabs processor names.
    if (suffix->family == Family::kXlabs && key.naming != Naming::kXlabs) return std::nullopt;
    if (key.naming == Naming::kXlabs && suffix->family != Family::kXlabs && suffix->family != Family::kAlpha)
      return std::nullopt;
    key.dialect = tag_of(base, suffix->family, key.naming);
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
