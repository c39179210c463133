// The key canonicaliser: one table reduces every LoRA tensor-name spelling to
// (dialect, module, role) before anything reasons about it.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace lv {

// What a tensor is for, within its module.
enum class Role {
  kDown, kUp, kAlpha, kBias /* lora_B.bias: scaled */, kDiff, kDiffB /* unscaled */,
  kLokrW1, kLokrW1A, kLokrW1B, kLokrW2, kLokrW2A, kLokrW2B, kLokrT2,
  kHadaW1A, kHadaW1B, kHadaW2A, kHadaW2B,
  kDoraScale, kMagnitude,
};

// How the module part of the name is spelled once the prefix is stripped.
enum class Naming {
  kDiffusers,  // "single_transformer_blocks.0.attn.to_q"
  kBfl,        // "single_blocks.0.linear1" (optionally with a split index)
  kXlabs,      // "double_blocks.0.processor.qkv_lora1"
};

struct ParsedKey {
  std::string dialect;     // "diffusers", "kohya", "comfy", "ai-toolkit", "bfl", … (stable ids)
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

// True for dialects whose module names are BFL's (kohya, comfy, ai-toolkit, bfl, …): their
// natural conversion goes to the diffusers layout; diffusers-named ones go to BFL.
bool dialect_is_bfl_named(std::string_view dialect);

}  // namespace lv
