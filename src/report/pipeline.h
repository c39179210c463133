// The lora-verify pipelines: read → detect → convert → re-read → compare → Report.
// The CLI, the compatibility matrix and the fuzzers all run these.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "core/result.h"
#include "lora/converter.h"
#include "lora/loader.h"
#include "report/report.h"

namespace lv::report {

struct PipelineOptions {
  std::optional<OutputLayout> to;   // default: diffusers-named inputs → BFL, BFL-named → diffusers
  std::optional<Style> style;       // default: kohya for BFL output, diffusers for diffusers output
  std::optional<st::DType> dtype;
  std::optional<flux::Layout> layout;  // default: inferred from the file
  const flux::Family* family = nullptr;  // --model: the family, instead of detecting it
  bool allow_dense = true;            // LoKr/LoHa on fused targets may become dense .diff
  int threads = 2;
  // Write the form this profiled loader (src/loaders/) reads completely; refuse tensors it
  // cannot take in any form it reads, or leave them out with drop_unsupported.
  std::string for_loader;
  bool drop_unsupported = false;
  // Write a --for output even where how that loader reads it is not established (unknown).
  bool allow_unknown = false;
  // No to/style/for_loader: choose the style that loads completely in the most profiled
  // loaders (convert's default) instead of the other layout (verify's default).
  bool default_for_loaders = false;
  // Set by the pipelines, not by callers: the default layout was refused (a DoRA magnitude
  // that cannot be fused without the base weights), so the input's own layout is used, with
  // this reason.
  std::string own_layout_because;
  // Called at each phase boundary ("reading", "converting", "writing", "re-reading",
  // "verifying", "loaders") with the fraction of the pipeline done (0 at the start of the
  // first phase, 1 when all are done); may be empty.
  std::function<void(std::string_view phase, double fraction)> progress;
};

// How a conversion is made: options, and for --drop-unsupported the model without the
// tensors left out.
struct ConversionPlan {
  ConvertOptions options;
  std::optional<LoraModel> kept;     // set when tensors were left out for a loader
  std::vector<DroppedRow> dropped;
  std::string reason;                // why this style
  std::vector<std::string> not_served;
};
Result<ConversionPlan> plan_conversion(const LoraModel& model, const PipelineOptions& opt);

// The findings on an input: the loader's, then the value checks (NaN/Inf, all-zero
// deltas; an untrained LoRA is one file-level lora.delta.untrained warning).
std::vector<Finding> input_findings(const LoraModel& in);

// Resolves the defaults of `opt` for a loaded model.
ConvertOptions resolve_convert_options(const LoraModel& model, const PipelineOptions& opt);

// Converts `input` in memory, re-reads the result with the same reader, and verifies it.
Result<Report> run_verify(std::shared_ptr<const st::SafetensorsFile> input, const PipelineOptions& opt);
// The same from a model already loaded (with the family and layout `opt` names): callers that
// verify one input several ways load it once.
Result<Report> run_verify(const LoraModel& model, const PipelineOptions& opt);

// Verifies a conversion made by any tool: `converted` may be in any dialect lora-verify reads.
Result<Report> run_compare(std::shared_ptr<const st::SafetensorsFile> source,
                           std::shared_ptr<const st::SafetensorsFile> converted, const PipelineOptions& opt);
// The same from the source model already loaded.
Result<Report> run_compare(const LoraModel& source, std::shared_ptr<const st::SafetensorsFile> converted,
                           const PipelineOptions& opt);

// How a report names standard output (`convert -o -`).
inline constexpr const char* kStandardOutput = "(standard output)";

// Converts `input`, writes `output` to a temporary (never over the input), re-reads it and
// verifies it against the input; only a passing output is put in place (renamed onto a
// regular file, streamed into a device, a FIFO or "-", standard output). On FAIL the report
// says so (output_written false) and a previous file at `output` is unchanged.
Result<Report> run_convert(std::shared_ptr<const st::SafetensorsFile> input, const std::string& output,
                           const PipelineOptions& opt);

}  // namespace lv::report
