// The compatibility matrix's data: a grid of LoRA variants (dialect × structure × dtype, and
// given files), each run through every output style and back, and through converter columns.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "flux/family.h"
#include "matrix/outcome.h"

namespace lv::matrix {

// One cell: the outcome of one output style (or the round trip, or a converter) for one variant.
struct MatrixCell {
  std::string column;  // an output style (style_name), "round-trip", or a converter's name
  Outcome outcome = Outcome::kRefused;
  std::string reason;  // why it failed or was refused ("" when equivalent)
  double worst_error = 0;
  // Against a baseline (set by mark_changes, rendered, never read back as a result):
  std::optional<Outcome> was;  // the baseline's outcome when it differs
  bool regression = false;
  // Converter cells that are not equivalent: the log's path relative to --out (rendered and
  // read back), and its text (written by the CLI, not rendered).
  std::string log;
  std::string log_text;
};

// A converter column (`matrix --converter NAME=CMD`).
struct MatrixConverter {
  std::string name;     // the column
  std::string command;  // run by /bin/sh -c with {in} and {out} replaced by quoted paths
};

struct ConverterLimits {
  double timeout_seconds = 120;           // then the whole process group is killed
  uint64_t max_output = uint64_t{4} << 30;  // bytes: {out} and each log stream (RLIMIT_FSIZE)
};

// One profiled loader on one variant (src/loaders/): its outcome for the input as it is, and
// the output form lora-verify writes for it (`convert --for`) with that form's outcome.
struct MatrixLoaderCell {
  std::string loader;        // profile name
  std::string input;         // "loads", "drops", "rejects", "unknown"
  std::string form;          // output style for this loader, "-" when none is established
  std::string form_outcome;  // outcome of that output; "refused" when convert --for writes no
                             // file (see refusal); "-" when no form is established
  // Not in compatibility.json (the corpus manifest carries them):
  std::string message;               // the input verdict's message
  std::vector<std::string> dropped;  // tensors of the input the loader leaves out
  std::string refusal;               // why convert --for refuses, or ""
};

struct MatrixRow {
  std::string variant;   // "diffusers / no-proj-mlp / BF16", or an input path
  bool builtin = false;  // a generated variant (its failure fails the run), not an input
  std::string dialect;   // detected by the loader ("-" when unreadable)
  std::string ranks;     // "2..4", or "-"
  int64_t zero_filled = 0;  // parts of fused BFL targets absent from the input
  double worst_error = 0;   // worst relative error over the row's cells
  double seconds = 0;       // rendered only with timings
  std::vector<MatrixCell> cells;
  std::vector<MatrixLoaderCell> loaders;  // one per profiled loader (empty: input unreadable)
  bool equivalent() const;  // every cell equivalent
};

struct MatrixOptions {
  std::vector<std::string> inputs;  // .safetensors files or directories (searched recursively)
  bool builtin = true;              // include the generated variants
  std::string filter;               // only built-in variants whose name contains this
  int jobs = 1;
  int shard_index = 0, shard_count = 1;  // rows i, i+n, … of the full list
  bool progress = false;                 // a progress line on stderr (only on a terminal)
  // Built-in style columns to run, in this order (default: all of style_columns()).
  std::optional<std::vector<std::string>> styles;
  std::vector<MatrixConverter> converters;  // converter columns, after the style columns
  ConverterLimits limits;
};

struct MatrixResult {
  std::vector<std::string> columns;
  std::vector<MatrixRow> rows;
  std::string description;  // what the built-in variants are (one paragraph)
  // Set on shards (--shard i/n): lets a merge prove it has every shard exactly once.
  int shard_index = 0, shard_count = 1;
  int64_t total_rows = 0;  // rows of the unsharded run
  // Set on shards: a hash of what the run was (lora-verify version, the full variant list
  // with its options and inputs), so a merge refuses shards of different runs.
  std::string run_fingerprint;
  // Set by mark_changes: a summary of the baseline comparison, rendered at the top.
  bool has_baseline = false;
  std::vector<std::string> baseline_notes;
  int64_t regressions = 0, fixes = 0, changes = 0;

  int64_t equivalent_rows() const;
  bool builtin_failed() const;  // a built-in variant is not equivalent
};

// The built-in columns: kohya, comfy, peft, bfl, diffusers, round-trip (run.cpp holds their
// conversions).
const std::vector<std::string>& style_columns();
bool is_style_column(const std::string& column);

}  // namespace lv::matrix
