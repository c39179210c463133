// The compatibility matrix: a defined grid of LoRA variants (dialect × structure × dtype),
// each run through every output style and back, rendered for release notes.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/result.h"

namespace lv::report {

// One cell: the outcome of one output style (or the round trip) for one variant.
struct MatrixCell {
  std::string column;   // "kohya", "comfy", "peft", "bfl", "diffusers", "round-trip"
  std::string outcome;  // "equivalent", "not equivalent", "refused"
  std::string reason;   // why it failed or was refused ("" when equivalent)
  double worst_error = 0;
  // Against a baseline (set by mark_changes, rendered, never read back as a result):
  std::string was;      // the baseline's outcome when it differs, else ""
  bool regression = false;
};

// One profiled loader on one variant (src/loaders/): its outcome for the input as it is, and
// the output form lora-verify writes for it (`convert --for`) with that form's outcome.
struct MatrixLoaderCell {
  std::string loader;        // profile name
  std::string input;         // "loads", "drops", "rejects", "unknown"
  std::string form;          // output style for this loader, "-" when none is established
  std::string form_outcome;  // outcome of that output, "-" when none
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
};

// Whether a structure applies to a dialect; n/a cells say why.
struct Applicability {
  std::string dialect, structure;
  bool applies = true;
  std::string why_not;
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

// The built-in grid: every variant's name in matrix order, and the dialect × structure
// table with the reason for every n/a cell.
std::vector<std::string> builtin_variant_names();
std::vector<Applicability> builtin_applicability();
std::vector<std::string> builtin_structures();
std::vector<std::string> builtin_dialects();

// Errors: kUsage (bad shard), kCannotOpen (an input path that does not exist). An input
// file that cannot be read is not an error: its row says "refused" with the reason.
Result<MatrixResult> run_matrix(const MatrixOptions& options);

// Byte-stable renderings (no time stamps; per-row times only with `timings`).
std::string render_matrix_markdown(const MatrixResult& m, bool timings = false);
std::string render_matrix_json(const MatrixResult& m, bool timings = false);
std::string render_matrix_html(const MatrixResult& m, bool timings = false);

// Reads a compatibility.json (a baseline or a shard). Errors (kBadInput) name the file.
Result<MatrixResult> read_matrix_json(const std::string& text, const std::string& name);
// Joins shards into the matrix a single run would have produced (same rows, same order).
// Errors (kBadInput): different columns or descriptions, shards of different runs (run
// fingerprints differ or are absent), a variant in two shards, a shard missing or given twice.
Result<MatrixResult> merge_matrices(const std::vector<MatrixResult>& shards);

// One cell (or row) whose outcome changed against a baseline.
struct MatrixChange {
  std::string variant, column, before, after;  // after "missing": the row is gone
  bool regression = false;  // was equivalent, is not now (or the row disappeared)
  bool fix = false;         // was not equivalent, is now
};
// `partial`: the current run was restricted (filter, shard, no built-ins), so baseline
// rows it did not run are not reported as missing.
std::vector<MatrixChange> diff_against_baseline(const MatrixResult& baseline, const MatrixResult& current,
                                                bool partial = false);
// Marks the changed cells of `current` and records the summary rendered at the top.
void mark_changes(MatrixResult& current, const std::vector<MatrixChange>& changes);

}  // namespace lv::report
