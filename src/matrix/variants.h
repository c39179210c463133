// The built-in variants of the matrix: dialects × structures × dtypes of FLUX.1-dev, and the
// other model families' rows, each a seeded generator spec (lora/generate.h).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/result.h"
#include "flux/family.h"
#include "lora/generate.h"

namespace lv::matrix {

// One built-in variant: its name in matrix order, its parts, and how it is generated.
struct Variant {
  std::string name;
  std::string dialect, structure, dtype;
  GenSpec spec;
  // The family the variant is generated for: named to the pipeline as --model would, since
  // some structures (norm_out alone) are ambiguous between families by design.
  const flux::Family* family = nullptr;
};
const std::vector<Variant>& builtin_variants();

// A built-in variant for `lora-verify corpus`: its name, parts, and file name.
struct BuiltinVariant {
  std::string name, dialect, structure, dtype;
  std::string file;  // variant_slug(name) + ".safetensors"
  const flux::Family* family = nullptr;  // the model family it is generated for
};
std::vector<BuiltinVariant> builtin_variants_matching(const std::string& filter);
Result<std::vector<uint8_t>> generate_builtin(const std::string& name);

// Whether a structure applies to a dialect; n/a cells say why.
struct Applicability {
  std::string dialect, structure;
  bool applies = true;
  std::string why_not;
};

// The built-in grid: every variant's name in matrix order, and the dialect × structure
// table with the reason for every n/a cell.
std::vector<std::string> builtin_variant_names();
std::vector<Applicability> builtin_applicability();
std::vector<std::string> builtin_structures();
std::vector<std::string> builtin_dialects();
// What each structure is (one line for the legend), in column order.
struct StructureLegend {
  std::string name, what;
};
std::vector<StructureLegend> builtin_structure_legend();

// What the built-in variants are (one paragraph).
std::string builtin_description();

// "diffusers / no-proj-mlp / BF16" -> "diffusers-no-proj-mlp-bf16" (file-name safe).
std::string variant_slug(const std::string& variant);

}  // namespace lv::matrix
