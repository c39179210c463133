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

// What the advice of a report may point at: the command just run and its output.
struct AdviceContext {
  std::string output_path;     // the converted file as the user named it ("" for in memory)
  bool output_written = false; // it is there (convert, PASS); standard output counts
  std::string for_loader;      // the command just run was --for this loader
  bool wrote_file = false;     // the command just run was convert
  int threads = 2;
};

// One row per profiled loader. `out` (may be null) is the converted side. The advice of a
// loader that does not load the input is a command only when lora-verify has checked it:
// the form is established, the conversion is not refused (a DoRA magnitude that cannot be
// fused, or dropped), and it carries --model when the input needed it; otherwise it says why
// not, plainly. It never repeats the command just run.
std::vector<LoaderRow> loader_rows(const LoraModel& in, const OutputSide* out, const AdviceContext& ctx);

// Why `convert --for p` writes no file for `model` when its chosen form is `choice`, if it
// writes none: a DoRA magnitude p cannot take, a rest p still refuses, or a refused conversion
// (kRefused); how p reads the rest not established (kUnknown, which --allow-unknown writes).
// The advice, the matrix and the corpus manifest all ask this.
struct Refusal {
  enum class Kind { kNone, kRefused, kUnknown };  // kNone: a file is written
  Kind kind = Kind::kNone;
  std::string why;  // the advice's words: "none: …" or "unknown: …"
  explicit operator bool() const { return kind != Kind::kNone; }
};
Refusal convert_for_refusal(const loaders::Profile& p, const LoraModel& model, const loaders::FormChoice& choice,
                            loaders::OutputForms& forms);

// The exact command that writes a file `loader` loads from `input` (`model`: --model FAMILY).
std::string convert_command(const std::string& input, std::string_view loader, bool drop_unsupported,
                            const std::string& model = "");

}  // namespace lv::report
