// The key canonicaliser: one table reduces every LoRA tensor-name spelling to
// (dialect, module, role) before anything reasons about it.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "lora/dialects.h"

namespace lv {

// What a tensor is for, within its module.
enum class Role {
  kDown, kUp, kAlpha, kBias /* lora_B.bias: scaled */, kDiff, kDiffB /* unscaled */,
  kLokrW1, kLokrW1A, kLokrW1B, kLokrW2, kLokrW2A, kLokrW2B, kLokrT2,
  kHadaW1A, kHadaW1B, kHadaW2A, kHadaW2B,
  kDoraScale, kMagnitude,
};

struct ParsedKey {
  DialectTag dialect;
  Naming naming = Naming::kDiffusers;
  std::string module;      // dotted module name in its naming, without prefix or split index
  std::string group;       // what groups tensors of one module: prefix + module + adapter
  Role role = Role::kDown;
  std::string adapter;     // PEFT adapter name ("default") or ""
  int split_index = -1;    // OneTrainer-BFL ".0" … ".3" on a fused target
};

// Text-encoder tensors (lora_te*, text_encoder*, text_encoders.*): passed through.
// Returns a label ("CLIP-L", "T5-XXL", "text encoder") or nullopt.
std::optional<std::string> text_encoder_label(std::string_view name);

// Parses one tensor name. nullopt when no dialect's table explains it.
std::optional<ParsedKey> parse_key(std::string_view name);

std::string_view role_name(Role r);

// The suffix a writer gives a tensor of `role` in a dialect whose factors are `family`'s: the
// first row of the suffix table for it ("" when the family has none). A bias delta falls
// back to the unscaled .diff_b.
std::string_view suffix_for(Role role, SuffixFamily family);

// The name of a module as `dialect` writes it: prefix + module (BFL target or diffusers
// module, by the dialect's naming), spelled as the dialect spells it.
std::string module_key(const DialectRow& dialect, const std::string& target, const std::string& diffusers_module);

}  // namespace lv
