// The canonical form every LoRA is read into: deltas placed on rows of BFL target weights.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/finding.h"
#include "flux/layout.h"
#include "lora/dialects.h"
#include "lora/keys.h"
#include "safetensors/reader.h"

namespace lv {

enum class PartForm {
  kLowRank,  // ΔW = scale · B · A
  kDense,    // ΔW = diff (scale 1)
  kLoKr,     // ΔW = scale · kron(W1, W2)
  kLoHa,     // ΔW = scale · (w1a·w1b) ⊙ (w2a·w2b)
  kBiasOnly, // no weight delta, only a bias delta
};

// One delta on rows [row_begin, row_end) of a BFL target. All tensor pointers point into
// LoraModel::file and are non-null where the form needs them.
struct Part {
  std::string target;           // BFL module name, e.g. "single_blocks.3.linear1"
  int64_t target_rows = 0;
  int64_t target_cols = 0;
  int64_t row_begin = 0;
  int64_t row_end = 0;
  // Rows of this part's delta are stored with their two halves swapped relative to the
  // target (diffusers norm_out.linear is (scale, shift), BFL is (shift, scale)). Applies
  // to B's rows and to the bias delta; never to A.
  bool swap_halves = false;

  PartForm form = PartForm::kLowRank;
  double scale = 1.0;  // weight-delta scale (alpha/rank etc.)
  // Unit roundoff of the dtype the scale was read from (its .alpha tensor's), 0 when it
  // was not read from a tensor: how far the stored scale may sit from the one meant.
  double scale_roundoff = 0;

  // kLowRank
  const st::TensorView* down = nullptr;  // A: rank × cols
  const st::TensorView* up = nullptr;    // B: (row_end-row_begin) × rank
  // kDense
  const st::TensorView* diff = nullptr;  // (row_end-row_begin) × cols
  // kLoKr (w1 or w1_a·w1_b; w2 or w2_a·w2_b)
  const st::TensorView* w1 = nullptr;
  const st::TensorView* w1_a = nullptr;
  const st::TensorView* w1_b = nullptr;
  const st::TensorView* w2 = nullptr;
  const st::TensorView* w2_a = nullptr;
  const st::TensorView* w2_b = nullptr;
  // kLoHa
  const st::TensorView* hada_w1_a = nullptr;
  const st::TensorView* hada_w1_b = nullptr;
  const st::TensorView* hada_w2_a = nullptr;
  const st::TensorView* hada_w2_b = nullptr;

  // Bias delta on the same rows: b += bias_scale · bias.
  const st::TensorView* bias = nullptr;
  double bias_scale = 1.0;

  // DoRA magnitude, when present. W' = m ⊙ (W + ΔW) / ‖W + ΔW‖, the norm taken per output
  // row (PEFT lora_magnitude_vector [rows]; LyCORIS dora_scale [rows, 1]) or per input
  // column (dora_scale [1, cols]). Row magnitudes follow the rows (and their swap).
  const st::TensorView* magnitude = nullptr;
  bool magnitude_per_row = false;

  std::string source_module;  // module name as spelled in the file
  // Every tensor this part consumed, with what its name was parsed to (never parsed again).
  struct Source {
    std::string name;
    Role role;
    DialectTag dialect;
    const st::TensorView* tensor = nullptr;  // into LoraModel::file
  };
  std::vector<Source> source_tensors;
  std::vector<std::string> source_names() const;

  int64_t rank() const;  // A's rows for kLowRank, 0 otherwise
};

// A tensor carried through unchanged (text encoders, absolute norm scales).
struct PassThrough {
  std::string tensor;
  std::string reason;  // "text encoder (CLIP-L)", "absolute norm scale", …
  bool text_encoder = true;  // false: an absolute norm scale
};

struct LoraModel {
  std::shared_ptr<const st::SafetensorsFile> file;
  flux::Layout layout;
  std::string family;          // detected or named model family ("flux1", "flux2-klein-4b"; "" when a layout was given)
  std::string family_display;
  std::vector<std::string> family_evidence;  // what decided it
  DialectTag dialect;  // the dialect most of its tensors are in
  // Evidence: for each dialect seen, how many tensors were read in it.
  std::vector<std::pair<DialectTag, int64_t>> dialect_counts;
  std::vector<Part> parts;
  std::vector<PassThrough> passthrough;
  std::vector<Finding> findings;

  // The same file, layout, family and dialect with no parts, pass-through tensors or
  // findings: the start of a model derived from this one (a subset of its parts).
  LoraModel empty_copy() const {
    LoraModel m;
    m.file = file;
    m.layout = layout;
    m.family = family;
    m.family_display = family_display;
    m.family_evidence = family_evidence;
    m.dialect = dialect;
    m.dialect_counts = dialect_counts;
    return m;
  }
};

}  // namespace lv
