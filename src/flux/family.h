// Model families as data (docs/families.md; facts in docs/formats.md#families and
// docs/formats.md#flux2-sizes): dimensions, block counts, which module table rows exist,
// and how a file's evidence is weighed. Detection (src/lora/detect.*) and `--model` read it.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "flux/layout.h"

namespace lv::flux {

struct Family {
  std::string_view name;     // as `--model` takes it: "flux1", "chroma", "flux2-klein-4b", …
  std::string_view display;  // "FLUX.2 [klein] 4B"
  std::string_view covers;   // variants sharing the layout ("dev, schnell, Fill, …")
  uint8_t arch = kArchFlux1;
  int64_t hidden = 0, mlp = 0;
  int64_t double_blocks = 0, single_blocks = 0;  // the full model's counts
  // Block counts the file may exceed (FLUX.1: a warning, the layout grows); false: an index
  // beyond the count rules the family out. Flex.1's single count is unconfirmed: from the file.
  bool double_from_file = false, single_from_file = false;
  int64_t in_channels = 64, out_channels = 64, context = 4096, vec = 768, time = 256;
  bool guidance = true, biases = true;
  // Families with identical tables and widths form one group; a file consistent with two
  // groups is ambiguous, one consistent with several members of a group gets the first.
  std::string_view group;
  bool test_only = false;  // tiny layouts for tests and fuzzing (not listed in --help)
};

std::span<const Family> families();
const Family* find_family(std::string_view name);
std::string family_names();  // the --model choices, for messages and --help
Layout layout_of(const Family& f);

}  // namespace lv::flux
