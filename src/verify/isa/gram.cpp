// The Gram kernel of kernels.h, compiled once per CPU level (src/verify/CMakeLists: the
// build defines LV_ISA_NS, the level's namespace, and renames Eigen's namespace with
// -DEigen=lv_eigen_LEVEL so no Eigen template instantiated here for AVX-512 can be merged
// with the portable one by the linker). Nothing else may be instantiated here: only Eigen
// and plain arguments cross the boundary (tests/isa_symbols_test.sh checks the objects).
#include <Eigen/Core>
#include <cstdint>

namespace lv::verify::kernels::LV_ISA_NS {

void gram(const double* data, int64_t rows, int64_t cols, int64_t outer, bool of_columns, double* out) {
  using RowMatrix = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  const Eigen::Map<const RowMatrix, 0, Eigen::OuterStride<>> f(data, rows, cols, Eigen::OuterStride<>(outer));
  const Eigen::Index n = of_columns ? cols : rows;
  Eigen::Map<Eigen::MatrixXd> g(out, n, n);
  g.setZero();
  if (n == 0 || (of_columns ? rows : cols) == 0) return;
  if (of_columns) g.selfadjointView<Eigen::Lower>().rankUpdate(f.transpose());
  else g.selfadjointView<Eigen::Lower>().rankUpdate(f);
  g.triangularView<Eigen::StrictlyUpper>() = g.transpose();
}

void cross(const double* a, int64_t a_rows, int64_t a_cols, int64_t a_outer, const double* b, int64_t b_rows,
           int64_t b_cols, int64_t b_outer, bool of_columns, double* out) {
  using RowMatrix = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  const Eigen::Map<const RowMatrix, 0, Eigen::OuterStride<>> fa(a, a_rows, a_cols, Eigen::OuterStride<>(a_outer));
  const Eigen::Map<const RowMatrix, 0, Eigen::OuterStride<>> fb(b, b_rows, b_cols, Eigen::OuterStride<>(b_outer));
  if (of_columns) {
    Eigen::Map<Eigen::MatrixXd> g(out, a_cols, b_cols);
    if (a_rows == 0) g.setZero();
    else g.noalias() = fa.transpose() * fb;
  } else {
    Eigen::Map<Eigen::MatrixXd> g(out, a_rows, b_rows);
    if (a_cols == 0) g.setZero();
    else g.noalias() = fa * fb.transpose();
  }
}

}  // namespace lv::verify::kernels::LV_ISA_NS
