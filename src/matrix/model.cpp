// The matrix's data (see model.h): what a row and a run being equivalent means.
#include "matrix/model.h"

#include <algorithm>

namespace lv::matrix {

bool MatrixRow::equivalent() const {
  return !cells.empty() &&
         std::all_of(cells.begin(), cells.end(), [](const MatrixCell& c) { return c.outcome == Outcome::kEquivalent; });
}

int64_t MatrixResult::equivalent_rows() const {
  return std::count_if(rows.begin(), rows.end(), [](const MatrixRow& r) { return r.equivalent(); });
}

bool MatrixResult::builtin_failed() const {
  return std::any_of(rows.begin(), rows.end(), [](const MatrixRow& r) { return r.builtin && !r.equivalent(); });
}

}  // namespace lv::matrix
