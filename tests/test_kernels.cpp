// The run-time dispatched kernels (src/verify/kernels.h): the Gram kernel at the level this
// CPU gets matches a plain triple loop on strided, wide and empty factors, and the level is
// one this build knows. (Each level against the others: python/tests, LV_CPU_LEVEL.)
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "support/lora_support.h"
#include "verify/kernels.h"

namespace {

// FᵀF or F·Fᵀ of a row-major rows × cols factor with `outer` doubles between rows.
std::vector<double> naive_gram(const std::vector<double>& f, int64_t rows, int64_t cols, int64_t outer, bool of_columns) {
  const int64_t n = of_columns ? cols : rows, depth = of_columns ? rows : cols;
  std::vector<double> g(static_cast<size_t>(n * n), 0.0);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double s = 0;
      for (int64_t k = 0; k < depth; ++k)
        s += of_columns ? f[k * outer + i] * f[k * outer + j] : f[i * outer + k] * f[j * outer + k];
      g[static_cast<size_t>(j * n + i)] = s;
    }
  return g;
}

TEST(Kernels, GramMatchesAPlainLoop) {
  struct Case {
    int64_t rows, cols, outer;
  };
  for (const Case c : {Case{3072, 16, 16}, Case{64, 3072, 3072}, Case{500, 37, 41}, Case{37, 300, 333}, Case{1, 1, 1}}) {
    const auto f = lv::test::random_values(static_cast<uint64_t>(c.rows * c.outer), 7);
    for (bool of_columns : {true, false}) {
      const int64_t n = of_columns ? c.cols : c.rows;
      std::vector<double> g(static_cast<size_t>(n * n), -1.0);
      lv::verify::kernels::gram(f.data(), c.rows, c.cols, c.outer, of_columns, g.data());
      const auto want = naive_gram(f, c.rows, c.cols, c.outer, of_columns);
      double scale = 0;
      for (double x : want) scale = std::max(scale, std::fabs(x));
      for (size_t i = 0; i < g.size(); ++i)
        ASSERT_NEAR(g[i], want[i], 1e-12 * scale) << c.rows << "x" << c.cols << " of_columns=" << of_columns << " at " << i;
      for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < n; ++j) ASSERT_EQ(g[static_cast<size_t>(i * n + j)], g[static_cast<size_t>(j * n + i)]);
    }
  }
}

TEST(Kernels, EmptyFactorsGiveZeroGrams) {
  std::vector<double> g(9, -1.0);
  const double x = 1.0;
  lv::verify::kernels::gram(&x, 0, 3, 3, true, g.data());  // no rows: FᵀF is 3×3 zero
  for (double v : g) EXPECT_EQ(v, 0.0);
  lv::verify::kernels::gram(&x, 0, 3, 3, false, g.data());  // F·Fᵀ is 0×0: nothing written
}

TEST(Kernels, LevelIsOneThisBuildKnows) {
  const std::string level = lv::verify::kernels::level();
  EXPECT_TRUE(level == "x86-64" || level == "x86-64-v3" || level == "x86-64-v4" || level == "generic") << level;
#if defined(__x86_64__)
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512cd") && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
      __builtin_cpu_supports("bmi2") &&
      !std::getenv("LV_CPU_LEVEL"))
    EXPECT_EQ(level, "x86-64-v4");
#endif
}

}  // namespace
