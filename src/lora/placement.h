// Where a parsed LoRA module lands in a layout: its BFL target and row range (the family's
// module table decides; XLabs processor names have their own small table).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "flux/layout.h"
#include "lora/keys.h"

namespace lv {

struct Placement {
  std::string target;
  int64_t rows = 0, cols = 0, row_begin = 0, row_end = 0;
  bool swap = false;
};

std::optional<Placement> place(const flux::Layout& l, const ParsedKey& k);

}  // namespace lv
