// compatibility.json: writing the matrix, and reading it back (a baseline or a shard).
#pragma once

#include <string>

#include "core/result.h"
#include "matrix/model.h"

namespace lv::matrix {

// Byte-stable (no time stamps; per-row times only with `timings`).
std::string render_matrix_json(const MatrixResult& m, bool timings = false);
// Errors (kBadInput) name the file: not JSON, another schema, a malformed row or cell, or a
// cell outcome the outcome table does not know.
Result<MatrixResult> read_matrix_json(const std::string& text, const std::string& name);

}  // namespace lv::matrix
