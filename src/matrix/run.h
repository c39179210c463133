// Running the matrix: every row of the grid (matrix/grid.h) through each selected output
// style and back, and through each converter column, on a pool of threads.
#pragma once

#include "core/result.h"
#include "matrix/model.h"

namespace lv::matrix {

// Errors: kUsage (bad shard, unknown style, converter named twice, no columns), kCannotOpen
// (an input path that does not exist). An input file that cannot be read is not an error:
// its row says "refused" with the reason.
Result<MatrixResult> run_matrix(const MatrixOptions& options);

}  // namespace lv::matrix
