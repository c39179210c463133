// The `loaders` section of every report: each profiled loader's verdict on the input and on
// the converted side, the size of what it would lose, and what to run when it does not load.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "loaders/verdict.h"
#include "report/report.h"

namespace lv::report {

// Per target touched by `dropped`: ‖ΔW_lost‖/‖ΔW‖ of the weights and of the bias, computed
// by the equivalence engine as the difference between `model` and `model` without them.
std::vector<LoaderOutcome::Lost> lost_delta(const LoraModel& model, const std::vector<loaders::DroppedTensor>& dropped,
                                            int threads);

// The converted side as the loaders see it: its description, and per loader what it would
// lose. Gathered group by group when the output is verified in pieces (run_verify streams).
struct OutputSide {
  loaders::Description description;
  std::map<std::string, std::vector<LoaderOutcome::Lost>> lost;  // loader → targets
  bool any = false;
};
void append_output_side(OutputSide& side, const LoraModel& out, int threads);

// One row per profiled loader. `out` (may be null) is the converted side; `output_path` its
// file name ("" for an in-memory conversion).
std::vector<LoaderRow> loader_rows(const LoraModel& in, const OutputSide* out, const std::string& output_path,
                                   int threads);

// The exact command that writes a file `loader` loads from `input`.
std::string convert_command(const std::string& input, std::string_view loader, bool drop_unsupported);

}  // namespace lv::report
