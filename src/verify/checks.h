// Checks on the values of an input LoRA: non-finite numbers, all-zero deltas, mixed dtypes.
#pragma once

#include <vector>

#include "core/finding.h"
#include "lora/model.h"

namespace lv::verify {

// Scans every tensor the model's parts use. Findings:
//   lora.value.nonfinite (error)  a NaN or Inf in a factor, bias or alpha
//   lora.delta.zero      (warning) a low-rank part whose up or down is all zeros
//   lora.dtype.mixed     (info)    factors in more than one dtype
std::vector<Finding> check_values(const LoraModel& model);

}  // namespace lv::verify
