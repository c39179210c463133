// The model family table. Adding a family is adding a row (and, for a new architecture, its
// module rows in layout.cpp).
#include "flux/family.h"

#include <array>

namespace lv::flux {
namespace {

constexpr ImgInWidth kFlux1ImgIn[] = {{64, ""}, {128, "Canny/Depth"}, {384, "Fill"}};

// FLUX.1's dimensions (guidance_in: dev; Chroma and Flex.1 share the widths).
constexpr Layout kFlux1{.arch = kArchFlux1, .hidden = 3072, .mlp = 12288, .double_blocks = 19, .single_blocks = 38};
constexpr Layout with_arch(Layout l, uint8_t arch, bool guidance) {
  l.arch = arch;
  l.guidance = guidance;
  return l;
}
constexpr Layout with_doubles(Layout l, int64_t doubles) {
  l.double_blocks = doubles;
  return l;
}
// FLUX.2: no bias anywhere, no pooled vector, 128 latent channels.
constexpr Layout flux2(int64_t hidden, int64_t mlp, int64_t doubles, int64_t singles, int64_t context, bool guidance) {
  return Layout{.arch = kArchFlux2, .hidden = hidden, .mlp = mlp, .double_blocks = doubles, .single_blocks = singles,
                .in_channels = 128, .out_channels = 128, .context = context, .vec = 0, .time = 256,
                .guidance = guidance, .biases = false};
}

// Unconfirmed facts are not encoded: Flex.1's single-block count comes from the file, and
// neither Flex.2 nor the Klein base checkpoints (geometry identical to Klein) get rows.
constexpr std::array kFamilies = {
    Family{"flux1", "FLUX.1", "dev, schnell, Fill, Canny/Depth, Kontext, Krea", kFlux1, true, true, kFlux1ImgIn, "flux1"},
    Family{"chroma", "Chroma", "Chroma (FLUX.1-schnell derivative)", with_arch(kFlux1, kArchChroma, false), true, true,
           kFlux1ImgIn, "flux1"},
    Family{"flex1", "Flex.1", "Flex.1-alpha (8 double blocks)", with_doubles(kFlux1, 8), false, true, kFlux1ImgIn, "flux1"},
    Family{"flux2-dev", "FLUX.2 [dev]", "FLUX.2 [dev]", flux2(6144, 18432, 8, 48, 15360, true), false, false, {}, "flux2-dev"},
    Family{"flux2-klein-9b", "FLUX.2 [klein] 9B", "FLUX.2 [klein] 9B (distilled and base)",
           flux2(4096, 12288, 8, 24, 12288, false), false, false, {}, "flux2-klein-9b"},
    Family{"flux2-klein-4b", "FLUX.2 [klein] 4B", "FLUX.2 [klein] 4B (distilled and base)",
           flux2(3072, 9216, 5, 20, 7680, false), false, false, {}, "flux2-klein-4b"},
    // Tiny layouts of the same structure for tests, fuzzing and the matrix's fast rows.
    Family{"flux1-tiny", "FLUX.1 (tiny test layout)", "tests",
           Layout{.hidden = 8, .mlp = 16, .double_blocks = 2, .single_blocks = 2, .in_channels = 4, .out_channels = 4,
                  .context = 12, .vec = 6, .time = 5, .approx_hidden = 10, .approx_in = 4},
           true, true, {}, "flux1-tiny", true},
    Family{"flux2-tiny", "FLUX.2 (tiny test layout)", "tests",
           Layout{.arch = kArchFlux2, .hidden = 12, .mlp = 36, .double_blocks = 2, .single_blocks = 2, .in_channels = 6,
                  .out_channels = 6, .context = 18, .vec = 0, .time = 5, .guidance = true, .biases = false,
                  .approx_hidden = 10, .approx_in = 4},
           false, false, {}, "flux2-tiny", true},
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

Layout layout_of(const Family& f) { return f.layout; }

}  // namespace lv::flux
