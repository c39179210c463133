// Matrices combined: shards joined into the run they came from, and a run compared with a
// baseline (its changed cells marked for the renderings).
#pragma once

#include <string>
#include <vector>

#include "core/result.h"
#include "matrix/model.h"

namespace lv::matrix {

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

}  // namespace lv::matrix
