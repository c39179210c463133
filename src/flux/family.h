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

// An img_in input width one of a family's variants uses.
struct ImgInWidth {
  int64_t width;
  std::string_view variants;  // "" for the base model
};

struct Family {
  std::string_view name;     // as `--model` takes it: "flux1", "chroma", "flux2-klein-4b", …
  std::string_view display;  // "FLUX.2 [klein] 4B"
  std::string_view covers;   // variants sharing the layout ("dev, schnell, Fill, …")
  Layout layout;             // dimensions, block counts of the full model, which table rows exist
  // Block counts the file may exceed (FLUX.1: a warning, the layout grows); false: an index
  // beyond the count rules the family out. Flex.1's single count is unconfirmed: from the file.
  bool double_from_file = false, single_from_file = false;
  // The img_in widths its variants use (FLUX.1: 64, 128 Canny/Depth, 384 Fill): the file's
  // width is taken, never a reason to rule the family out. Empty: the layout's width is fixed.
  std::span<const ImgInWidth> img_in_widths;
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
