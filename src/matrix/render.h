// The matrix for people: Markdown (a GitHub table for release notes) and a self-contained
// HTML page. Byte-stable: no time stamps; per-row times only with `timings`.
// (compatibility.json is written by matrix/io.h.)
#pragma once

#include <string>

#include "matrix/model.h"

namespace lv::matrix {

std::string render_matrix_markdown(const MatrixResult& m, bool timings = false);
std::string render_matrix_html(const MatrixResult& m, bool timings = false);

}  // namespace lv::matrix
