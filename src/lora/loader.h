// Reads a validated safetensors file into the canonical LoraModel: detects the dialect per
// key, infers the layout from the file, resolves modules to BFL rows, and computes scales.
#pragma once

#include <memory>
#include <optional>

#include "core/result.h"
#include "flux/family.h"
#include "lora/model.h"

namespace lv {

struct LoadOptions {
  // Use this layout instead of inferring one from the file (tests use flux::Layout::tiny()).
  std::optional<flux::Layout> layout;
  // Read a file with no transformer LoRA tensors as an empty model instead of refusing it
  // (for the converted side of a comparison, where "nothing" is a valid answer).
  bool allow_empty = false;
  // The model family named with --model: detection then only reads block counts and the
  // img_in width from the file (src/lora/detect.h).
  const flux::Family* family = nullptr;
};

// Errors (kBadInput): the file is not a FLUX.1 LoRA (the message names the architecture it
// looks like and the evidence), or no tensor in it is a LoRA tensor. Everything else that
// is wrong with individual tensors becomes a finding, and the tensor is reported, not used.
Result<LoraModel> load_lora(std::shared_ptr<const st::SafetensorsFile> file, const LoadOptions& options = {});

}  // namespace lv
