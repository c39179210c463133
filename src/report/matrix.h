// The compatibility matrix: a defined grid of LoRA variants (dialect × structure × dtype),
// each run through every output style and back, rendered for release notes.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/result.h"

namespace lv::report {

// One cell: the outcome of one output style (or the round trip) for one variant.
struct MatrixCell {
  std::string column;   // "kohya", "comfy", "peft", "bfl", "diffusers", "round-trip"
  std::string outcome;  // "equivalent", "not equivalent", "refused", "n/a"
  std::string reason;   // for refusals and failures
  double worst_error = 0;
};

struct MatrixRow {
  std::string variant;   // "diffusers / no-proj-mlp / BF16" or an input path
  std::string dialect;   // detected
  std::string ranks;     // "2..4"
  int64_t zero_filled = 0;
  double worst_error = 0;
  double seconds = 0;    // only rendered with timings
  std::vector<MatrixCell> cells;
  bool equivalent() const;  // every applicable cell equivalent
};

struct MatrixOptions {
  std::vector<std::string> inputs;  // files or directories of .safetensors
  bool builtin = true;              // include the generated variants
  std::string filter;               // only variants whose name contains this
  int jobs = 1;
  int shard_index = 0, shard_count = 1;  // rows i, i+n, … of the full list
  bool progress = false;                 // a progress line on stderr
};

struct Matrix {
  std::vector<std::string> columns;
  std::vector<MatrixRow> rows;
  std::string description;  // what the built-in variants are
  int64_t equivalent_rows() const;
};

// The names of every built-in variant, in matrix order.
std::vector<std::string> builtin_variant_names();

Result<Matrix> run_matrix(const MatrixOptions& options);

std::string render_matrix_markdown(const Matrix& m, bool timings = false);
std::string render_matrix_json(const Matrix& m, bool timings = false);
std::string render_matrix_html(const Matrix& m, bool timings = false);

// Reads a compatibility.json (a baseline or a shard). Errors name the file.
Result<Matrix> read_matrix_json(const std::string& text, const std::string& name);
// Concatenates shards, ordered like a single run (by variant order, inputs last).
Result<Matrix> merge_matrices(const std::vector<Matrix>& shards);

// Cells whose outcome changed against a baseline.
struct MatrixChange {
  std::string variant, column, before, after;
  bool regression = false;  // equivalent before, not now (or a row disappeared)
};
std::vector<MatrixChange> diff_matrices(const Matrix& baseline, const Matrix& current);
// Marks changed cells in `current` (their reason gains "was: …").
void mark_changes(Matrix& current, const std::vector<MatrixChange>& changes);

}  // namespace lv::report
