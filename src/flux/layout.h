// The FLUX transformers in BFL naming, parameterised by their dimensions: every Linear
// target with its shape, and the diffusers modules that map onto its rows. One table per
// section (top level, double block, single block); each row names the architectures it
// belongs to (FLUX.1, Chroma, FLUX.2), so a family is a set of rows plus its dimensions
// (src/flux/family.*), never a branch.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace lv::flux {

// Module tables a layout uses (bit flags; kAny for name lookups before the family is known).
enum Arch : uint8_t { kArchFlux1 = 1, kArchChroma = 2, kArchFlux2 = 4, kArchAny = 7 };

struct Layout {
  uint8_t arch = kArchFlux1;     // which rows of the tables exist
  int64_t hidden = 3072;         // H
  int64_t mlp = 12288;           // M
  int64_t double_blocks = 19;
  int64_t single_blocks = 38;
  int64_t in_channels = 64;      // img_in input width (128 Canny/Depth, 384 Fill)
  int64_t out_channels = 64;     // final_layer.linear rows
  int64_t context = 4096;        // txt_in input width
  int64_t vec = 768;             // pooled text vector
  int64_t time = 256;            // timestep / guidance embedding width
  bool guidance = true;          // dev has guidance_in, schnell does not
  bool biases = true;            // FLUX.2 has no bias anywhere: bias deltas have no target
  int64_t approx_hidden = 5120;  // Chroma's distilled_guidance_layer width
  int64_t approx_in = 64;        // … and its input width

  static Layout flux1_dev() { return Layout{}; }
  // A small layout with the same structure, for fast tests and fuzzing.
  static Layout tiny();
  // FLUX.1-dev dimensions with no limit on block indices: for deciding what a name means
  // before the file's block counts are known.
  static Layout any_blocks() {
    Layout l;
    l.arch = kArchAny;
    l.double_blocks = l.single_blocks = 1'000'000'000;
    return l;
  }
  // The same, restricted to one architecture's rows.
  static Layout any_blocks(uint8_t arch) {
    Layout l = any_blocks();
    l.arch = arch;
    return l;
  }
};

// What a module is for, as loaders tell modules apart (a column of the module tables).
enum class ModuleRole : uint8_t {
  kTopLevel,          // an embedder or projection outside the blocks
  kBlock,             // a module of a double or single block
  kTextMlp,           // a double block's text-stream MLP
  kTimeEmbedder,      // time_in
  kGuidanceEmbedder,  // guidance_in
  kSharedModulation,  // FLUX.2's modulations shared by all blocks of a kind
  kFinalLinear,       // final_layer.linear
  kFinalModulation,   // final_layer.adaLN_modulation.1
};

// One BFL Linear module a LoRA can target.
struct Target {
  std::string name;  // e.g. "double_blocks.0.img_attn.qkv"
  int64_t rows = 0;  // out features
  int64_t cols = 0;  // in features
  ModuleRole role = ModuleRole::kTopLevel;
};

// One diffusers module placed on a row range of a BFL target.
struct PartMap {
  std::string diffusers;  // e.g. "transformer_blocks.0.attn.to_q" (no prefix)
  std::string target;     // BFL name
  int64_t row_begin = 0;
  int64_t row_end = 0;    // half-open
  bool swap_halves = false;  // norm_out.linear: diffusers (scale, shift) vs BFL (shift, scale)
  int part_index = 0;     // position among the target's parts (q=0, k=1, v=2, mlp=3)
  int part_count = 1;     // number of parts of the target (1 for 1:1 modules)
};

// All BFL targets of the layout (314 for FLUX.1-dev), in a fixed order.
std::vector<Target> bfl_targets(const Layout& layout);
// All diffusers modules of the layout (504 for FLUX.1-dev), in a fixed order.
std::vector<PartMap> diffusers_map(const Layout& layout);

// Lookups that do not depend on block counts: they parse the block index from the name
// and check it against the layout. Return nullopt for names that are not FLUX.1 modules
// (or whose block index is out of the layout's range).
std::optional<Target> find_target(const Layout& layout, std::string_view bfl_name);
std::optional<PartMap> find_diffusers(const Layout& layout, std::string_view diffusers_name);
// Parts of one fused or 1:1 BFL target, in row order.
std::vector<PartMap> parts_of_target(const Layout& layout, std::string_view bfl_name);

// Recover a dotted module name from its underscore spelling ("double_blocks_0_img_attn_qkv"
// → "double_blocks.0.img_attn.qkv"), by table: each block row's name with '.'→'_'. The
// block index is not range-checked here.
std::optional<std::string> bfl_from_underscore(std::string_view name);
std::optional<std::string> diffusers_from_underscore(std::string_view name);

// Largest block index a name refers to, or -1 ("double_blocks.7.…" → 7). For layout
// inference: `is_single` tells which block kind.
int64_t block_index(std::string_view name, bool& is_single);

}  // namespace lv::flux
