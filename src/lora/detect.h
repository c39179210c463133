// Which model family a LoRA is for, from its keys and shapes alone
// (docs/formats.md#telling-families-apart): names first, then the set of widths, then block
// indices. Never hidden size or img_in alone; when the evidence does not decide, the answer is
// "ambiguous" with the candidates and what would decide, never a guess.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "core/finding.h"
#include "core/result.h"
#include "flux/family.h"
#include "lora/keys.h"
#include "safetensors/reader.h"

namespace lv {

struct KeyedTensor {
  const st::TensorView* tensor = nullptr;
  ParsedKey key;
};

struct Detection {
  const flux::Family* family = nullptr;
  flux::Layout layout;               // the family's, with block counts and img_in width from the file
  std::vector<std::string> evidence;  // what decided, for reports
  std::vector<Finding> findings;
};

// `forced`: the family named with --model (detection then only fills in what the file
// says: block counts where the family takes them from the file, img_in width).
// Errors (kBadInput): names of two architectures in one file; widths of no known family;
// evidence consistent with several families (the message names them and what would decide).
// `recorded`: the lora_verify.model metadata of a file lora-verify wrote (or ""): it settles a
// choice between families that all fit, never overrides a misfit.
Result<Detection> detect_family(const std::vector<KeyedTensor>& keyed, const std::string& path,
                                const flux::Family* forced = nullptr, const std::string& recorded = "");

}  // namespace lv
