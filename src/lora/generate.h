// Seeded, deterministic generator of FLUX.1 LoRA files in several dialects: the bundled
// sample, the test inputs and the compatibility-matrix variants all come from here.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>
#include <string>
#include <vector>

#include "core/result.h"
#include "flux/layout.h"
#include "lora/dialects.h"
#include "safetensors/dtype.h"

namespace lv {

struct GenSpec {
  flux::Layout layout = flux::Layout::flux1_dev();
  // The name of a dialect the generator writes (DialectRow::generated; src/lora/dialects.cpp).
  std::string dialect = std::string(dialect_name(Dialect::kDiffusers));
  int64_t rank = 4;
  st::DType dtype = st::DType::kBF16;
  uint64_t seed = 1;
  double alpha = 0;            // > 0: write a .alpha tensor per module with this value
  bool per_part_alpha = false; // alpha differs per module (alpha·(1 + index % 3))
  bool metadata_alpha = false; // diffusers: lora_adapter_metadata with lora_alpha = 2·rank
  bool rslora = false;         // … with use_rslora
  bool mixed_ranks = false;    // rank varies per module (rank, rank/2, 2·rank)
  bool bias = false;           // bias deltas (lora_B.bias or diff_b)
  bool proj_mlp = true;        // single blocks carry proj_mlp (diffusers) / full linear1
  std::vector<std::string> skip;  // module-name suffixes to leave out ("attn.to_k")
  bool norm_out = true;        // include norm_out.linear / final_layer.adaLN_modulation.1
  bool embedders = true;       // include top-level modules
  bool blocks = true;          // include block modules
  int64_t max_double = -1;     // include only blocks below these indices (-1: all)
  int64_t max_single = -1;
  bool text_encoder = false;   // add a few lora_te1_ tensors
  std::string family;          // recorded as lora_verify.model metadata when set ("flux1", …)
};

// Builds the safetensors bytes of a LoRA following `spec`.
Result<std::vector<uint8_t>> generate_lora(const GenSpec& spec);

}  // namespace lv
