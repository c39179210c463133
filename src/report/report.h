// The report value: everything lora-verify found, built completely before any output is
// written, then rendered as text, JSON or Markdown (renderers in render.cpp).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/finding.h"

namespace lv::report {

struct ModuleRow {
  std::string target;         // BFL target
  std::string status;         // "equivalent", "different", "missing", "extra", "invalid"
  double relative_error = 0;  // ‖ΔW_in − ΔW_out‖_F / ‖ΔW_in‖_F
  double tolerance = 0;
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
  uint64_t output_bytes = 0;
};

struct Report {
  std::string command;   // "verify", "compare", "convert"
  std::string version;
  std::string input;     // source file
  std::string other;     // converted file (compare, convert) or "" (in-memory conversion)
  bool pass = false;
  std::string verdict;   // one line: "equivalent: 314 of 314 modules match" …
  std::string dialect;
  std::vector<std::pair<std::string, int64_t>> dialects;  // evidence: tensors per dialect
  std::string other_dialect;
  std::string layout;    // output layout of the conversion ("bfl", "diffusers")
  std::string style;
  Summary summary;
  std::vector<ModuleRow> modules;  // sorted by target
  std::vector<Finding> findings;   // input and conversion findings, in a stable order
  std::vector<std::pair<std::string, std::string>> passthrough;  // tensor, reason
};

std::string render_text(const Report& r, bool all_modules = false);
std::string render_json(const Report& r);      // schema: docs/report-schema.md
std::string render_markdown(const Report& r);

}  // namespace lv::report
