// The report value: everything lora-verify found, built completely before any output is
// written, then rendered as text, JSON or Markdown (renderers in render.cpp).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/finding.h"

namespace lv::report {

struct ModuleRow {
  std::string target;         // BFL target
  std::string status;         // "equivalent", "different", "missing", "extra", "invalid"
  double relative_error = 0;  // ‖ΔW_in − ΔW_out‖_F / ‖ΔW_in‖_F
  double tolerance = 0;
  // ⟨ΔW_out, ΔW_in⟩/‖ΔW_in‖²: how much of the input's delta the output applies, the
  // tolerance the output's rounding allows it, and the smallest scale error of this module
  // the check is sure to catch (src/verify/equivalence.h).
  double gain = 1, gain_tolerance = 0, resolution = 0;
  double bias_error = 0;      // relative error of the bias delta
  std::optional<double> magnitude_error;  // DoRA magnitudes: relative error, when either side has one
  int parts_in = 0, parts_out = 0;
  std::vector<int64_t> ranks_in, ranks_out;
  std::string strategy;       // how the converter built it ("" for compare)
  int zero_filled = 0;        // parts of the target absent from the input (zero delta)
  std::string message;
};

struct Summary {
  int64_t tensors = 0;        // tensors in the input
  int64_t parts = 0;          // deltas read from the input
  int64_t targets = 0;        // BFL targets compared
  int64_t fused_targets = 0;  // targets built from more than one input part
  int64_t zero_filled = 0;    // missing parts that contribute a zero delta
  int64_t passthrough = 0;    // tensors carried unchanged (text encoders, norm scales)
  int64_t unused = 0;         // tensors not used (each has a finding)
  int64_t rank_min = 0, rank_max = 0;
  int64_t equivalent = 0, different = 0;
  double worst_relative_error = 0;
  double resolution = 0;  // the largest resolution of the equivalent modules
  uint64_t output_bytes = 0;
};

// What one profiled loader does with one file (src/loaders/): JSON `loaders[].input/.output`.
struct LoaderOutcome {
  std::string outcome;  // "loads", "drops", "rejects", "unknown"
  std::string message;
  std::vector<std::string> dropped;  // tensors not applied (drops) or that make it reject (rejects)
  // Per target with a dropped tensor: ‖ΔW_lost‖_F/‖ΔW‖_F of the weights and of the bias.
  struct Lost {
    std::string target;
    double weight = 0, bias = 0;
    bool magnitude = false;  // its DoRA magnitude is not applied: the merged weight changes by an
                             // amount that needs the base weights (not a share of ΔW)
  };
  std::vector<Lost> lost;
  std::vector<std::string> unknown;  // kinds whose treatment is not established
  bool measured = false;  // every fact behind it measured with the app's own code (else code reading)
};

struct LoaderRow {
  std::string loader;       // profile name, as given to --for
  std::string display;
  std::string established;  // loader version or commit of the facts
  LoaderOutcome input;
  std::optional<LoaderOutcome> output;
  std::string advice;       // for an input that does not load: what to run, or why nothing helps
  std::string command;      // the command `advice` names ("" when it names none)
};

// A tensor `convert --for L --drop-unsupported` left out, with the size of the lost delta.
struct DroppedRow {
  std::string tensor, target, why;
  double weight_lost = 0, bias_lost = 0;  // relative to the target's delta in the input
};

struct Report {
  std::string command;   // "verify", "compare", "convert"
  std::string version;
  std::string input;     // source file
  std::string other;     // converted file (compare, convert) or "" (in-memory conversion)
  bool output_written = true;  // convert: false when the check failed and nothing was put in place
  bool pass = false;
  std::string verdict;   // one line: "equivalent: 314 of 314 modules match" …
  std::string family;          // model family of the input ("" when a layout was given)
  std::string family_display;
  std::vector<std::string> family_evidence;
  std::string dialect;
  std::vector<std::pair<std::string, int64_t>> dialects;  // evidence: tensors per dialect
  std::string other_dialect;
  std::string layout;    // output layout of the conversion (layout_name)
  std::string style;
  Summary summary;
  std::vector<ModuleRow> modules;  // sorted by target
  std::vector<Finding> findings;   // input and conversion findings, in a stable order
  std::vector<std::pair<std::string, std::string>> passthrough;  // tensor, reason
  std::vector<LoaderRow> loaders;  // one per profiled loader, in profile order
  std::string for_loader;          // --for LOADER, or ""
  std::string style_reason;        // why this output style (default choice, --for)
  std::vector<std::string> not_served;  // loaders the chosen output does not serve completely
  std::vector<DroppedRow> dropped_for;  // --drop-unsupported: left out for for_loader
};

// The text report fits a screen: failing modules past 20 and findings of one kind past 3
// collapse into a count line, the model line is short. `all_modules` (--all) lists every
// module, finding and the model's evidence; `verbose` adds the evidence.
std::string render_text(const Report& r, bool all_modules = false, bool verbose = false);
std::string render_json(const Report& r);      // schema: docs/report-schema.md
std::string render_markdown(const Report& r);
// The loaders section of the text report (also used by `inspect`).
std::string render_loaders_text(const Report& r);
// The `loaders` array of the JSON report (also used by `inspect --json`).
nlohmann::ordered_json loaders_json(const Report& r);

}  // namespace lv::report
