// Run-time choice of the kernels' CPU level (kernels.h): a table of the levels this build
// compiled, best last; the first call picks the best one the CPU (and LV_CPU_LEVEL) allows.
#include "verify/kernels.h"

#include <cstdlib>
#include <cstring>

namespace lv::verify::kernels {

#ifdef LV_CPU_LEVELS_X86
namespace x86_64 {
void gram(const double*, int64_t, int64_t, int64_t, bool, double*);
void cross(const double*, int64_t, int64_t, int64_t, const double*, int64_t, int64_t, int64_t, bool, double*);
}  // namespace x86_64
namespace x86_64_v3 {
void gram(const double*, int64_t, int64_t, int64_t, bool, double*);
void cross(const double*, int64_t, int64_t, int64_t, const double*, int64_t, int64_t, int64_t, bool, double*);
}  // namespace x86_64_v3
namespace x86_64_v4 {
void gram(const double*, int64_t, int64_t, int64_t, bool, double*);
void cross(const double*, int64_t, int64_t, int64_t, const double*, int64_t, int64_t, int64_t, bool, double*);
}  // namespace x86_64_v4
#else
namespace generic {
void gram(const double*, int64_t, int64_t, int64_t, bool, double*);
void cross(const double*, int64_t, int64_t, int64_t, const double*, int64_t, int64_t, int64_t, bool, double*);
}  // namespace generic
#endif

namespace {

using GramFn = void (*)(const double*, int64_t, int64_t, int64_t, bool, double*);
using CrossFn = void (*)(const double*, int64_t, int64_t, int64_t, const double*, int64_t, int64_t, int64_t, bool, double*);

struct Level {
  const char* name;
  bool (*supported)();
  GramFn gram;
  CrossFn cross;
};

bool always() { return true; }

#ifdef LV_CPU_LEVELS_X86
// The features each level's code may use (-march=x86-64-v3 / -v4); libgcc's checks include
// the operating system's support for the wider registers.
bool has_v3() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx") && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
         __builtin_cpu_supports("bmi") && __builtin_cpu_supports("bmi2") && __builtin_cpu_supports("popcnt");
}
bool has_v4() {
  return has_v3() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512cd");
}
constexpr Level kLevels[] = {
    {"x86-64", always, x86_64::gram, x86_64::cross},
    {"x86-64-v3", has_v3, x86_64_v3::gram, x86_64_v3::cross},
    {"x86-64-v4", has_v4, x86_64_v4::gram, x86_64_v4::cross},
};
#else
constexpr Level kLevels[] = {{"generic", always, generic::gram, generic::cross}};
#endif

const Level& choose() {
  const char* cap = std::getenv("LV_CPU_LEVEL");
  const Level* best = &kLevels[0];
  for (const Level& l : kLevels) {
    if (!l.supported()) break;
    best = &l;
    if (cap && std::strcmp(cap, l.name) == 0) break;
  }
  return *best;
}

const Level& chosen() {
  static const Level& l = choose();
  return l;
}

}  // namespace

void gram(const double* data, int64_t rows, int64_t cols, int64_t outer, bool of_columns, double* out) {
  chosen().gram(data, rows, cols, outer, of_columns, out);
}

void cross(const double* a, int64_t a_rows, int64_t a_cols, int64_t a_outer, const double* b, int64_t b_rows,
           int64_t b_cols, int64_t b_outer, bool of_columns, double* out) {
  chosen().cross(a, a_rows, a_cols, a_outer, b, b_rows, b_cols, b_outer, of_columns, out);
}

const char* level() { return chosen().name; }

}  // namespace lv::verify::kernels
