// The model family table. Adding a family is adding a row (and, for a new architecture, its
// module rows in layout.cpp).
#include "flux/family.h"

#include <array>

namespace lv::flux {
namespace {

// Unconfirmed facts are not encoded: Flex.1's single-block count comes from the file, and
// neither Flex.2 nor the Klein base checkpoints (geometry identical to Klein) get rows.
constexpr std::array kFamilies = {
    Family{"flux1", "FLUX.1", "dev, schnell, Fill, Canny/Depth, Kontext, Krea", kArchFlux1, 3072, 12288, 19, 38, true, true,
           64, 64, 4096, 768, 256, true, true, "flux1"},
    Family{"chroma", "Chroma", "Chroma (FLUX.1-schnell derivative)", kArchChroma, 3072, 12288, 19, 38, true, true, 64, 64,
           4096, 768, 256, false, true, "flux1"},
    Family{"flex1", "Flex.1", "Flex.1-alpha (8 double blocks)", kArchFlux1, 3072, 12288, 8, 38, false, true, 64, 64, 4096,
           768, 256, true, true, "flux1"},
    Family{"flux2-dev", "FLUX.2 [dev]", "FLUX.2 [dev]", kArchFlux2, 6144, 18432, 8, 48, false, false, 128, 128, 15360, 0,
           256, true, false, "flux2-dev"},
    Family{"flux2-klein-9b", "FLUX.2 [klein] 9B", "FLUX.2 [klein] 9B (distilled and base)", kArchFlux2, 4096, 12288, 8, 24,
           false, false, 128, 128, 12288, 0, 256, false, false, "flux2-klein-9b"},
    Family{"flux2-klein-4b", "FLUX.2 [klein] 4B", "FLUX.2 [klein] 4B (distilled and base)", kArchFlux2, 3072, 9216, 5, 20,
           false, false, 128, 128, 7680, 0, 256, false, false, "flux2-klein-4b"},
    // Tiny layouts of the same structure for tests, fuzzing and the matrix's fast rows.
    Family{"flux1-tiny", "FLUX.1 (tiny test layout)", "tests", kArchFlux1, 8, 16, 2, 2, true, true, 4, 4, 12, 6, 5, true,
           true, "flux1-tiny", true},
    Family{"flux2-tiny", "FLUX.2 (tiny test layout)", "tests", kArchFlux2, 12, 36, 2, 2, false, false, 6, 6, 18, 0, 5, true,
           false, "flux2-tiny", true},
};

}  // namespace

std::span<const Family> families() { return kFamilies; }

const Family* find_family(std::string_view name) {
  for (const Family& f : kFamilies)
    if (f.name == name) return &f;
  return nullptr;
}

std::string family_names() {
  std::string s;
  for (const Family& f : kFamilies) {
    if (f.test_only) continue;
    if (!s.empty()) s += ", ";
    s += f.name;
  }
  return s;
}

Layout layout_of(const Family& f) {
  Layout l;
  l.arch = f.arch;
  l.hidden = f.hidden;
  l.mlp = f.mlp;
  l.double_blocks = f.double_blocks;
  l.single_blocks = f.single_blocks;
  l.in_channels = f.in_channels;
  l.out_channels = f.out_channels;
  l.context = f.context;
  l.vec = f.vec;
  l.time = f.time;
  l.guidance = f.guidance;
  l.biases = f.biases;
  if (f.test_only) l.approx_hidden = 10, l.approx_in = 4;
  return l;
}

}  // namespace lv::flux
