// The reference converter: writes a canonical LoraModel in a chosen layout and style,
// fusing parts into BFL targets (or splitting them into diffusers modules) exactly.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"
#include "lora/dialects.h"
#include "lora/model.h"
#include "safetensors/writer.h"

namespace lv {

struct ConvertOptions {
  OutputLayout to = OutputLayout::kBfl;
  Style style = Style::kKohya;
  std::optional<st::DType> dtype;  // output dtype; default: the input's
  bool allow_dense = true;         // may LoKr/LoHa deltas on fused targets become dense .diff?
  std::string source_name;         // recorded in the output metadata
  int threads = 1;                 // targets are converted on up to this many threads
};

// How a module was built (docs/formats.md#fusing-and-splitting).
enum class Strategy {
  kRename,      // one part, weights untouched
  kSharedDown,  // parts share one bit-identical A: ups stacked at rank r
  kAlphaRewrite,// parts share one scale: downs stacked, ups block-diagonal, alpha = s·Σr
  kFolded,      // scales folded into the stacked downs in double, rounded once
  kBiasOnly,
  kAdapterRename,  // LoKr / LoHa / dense diff copied under the new name
  kDense,          // adapter deltas that do not split: a dense .diff of the module
};
std::string_view strategy_name(Strategy s);

struct OutTensor {
  std::string name;
  st::DType dtype = st::DType::kF32;
  std::vector<uint64_t> shape;
  std::vector<uint8_t> owned;             // used when `view` is empty
  std::span<const uint8_t> view;          // bytes of an input tensor, copied unchanged
  std::span<const uint8_t> data() const { return view.empty() ? std::span<const uint8_t>(owned) : view; }
};

struct ModuleOut {
  std::string name;      // output module name
  std::string target;    // BFL target
  Strategy strategy = Strategy::kRename;
  int64_t rank = 0;
  int parts = 0;          // contributions fused into it
  int zero_filled = 0;    // parts of the target with no delta in the input
};

struct Conversion {
  std::vector<OutTensor> tensors;
  std::map<std::string, std::string> metadata;
  std::vector<ModuleOut> modules;
  std::vector<Finding> notes;  // conversion facts worth reporting
  int64_t passthrough = 0;
  uint64_t bytes() const;
};

Result<Conversion> convert(const LoraModel& model, const ConvertOptions& options);

// The plan convert() follows, for those that describe its output without building it.
// One output module of a target: the whole target (BFL) or one diffusers part (`diffusers`).
struct OutputModule {
  std::string diffusers;  // "" in the BFL layout
  int64_t begin = 0, end = 0;
  bool swap = false;  // its rows are the target's with the two halves swapped
};
std::vector<OutputModule> output_modules(const flux::Layout& layout, const std::string& target, OutputLayout to);
// An adapter delta (LoKr, LoHa, dense) is renamed, bit for bit, when it is alone on exactly
// one output module; otherwise it is written as a dense .diff of each module it touches.
bool adapter_renamed(const LoraModel& model, const Part& p, OutputLayout to);

// Views for the writer (valid while `conversion` lives).
std::vector<st::TensorToWrite> tensors_to_write(const Conversion& conversion);

}  // namespace lv
