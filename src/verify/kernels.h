// Hot kernels chosen at run time for the CPU they run on, so a portable build (no
// -march=native: the Debian package, the Python wheel) runs about as fast as a native one.
//
// Two mechanisms. Loops written in plain C++ carry LV_CPU_CLONES (core/cpu_clones.h): the
// compiler emits one copy per x86-64 level and the loader picks one. Eigen's matrix kernels
// cannot be cloned that way (Eigen picks its SIMD packets from preprocessor macros, and its
// kernels are out-of-line templates), so the kernels below are compiled once per level from
// src/verify/isa/, each inside its own renamed copy of Eigen, and a table picks the best
// level the CPU supports.
#pragma once

#include <cstdint>

#include "core/cpu_clones.h"

namespace lv::verify::kernels {

// The symmetric n×n Gram matrix of a row-major factor F (rows × cols, `outer` doubles
// between rows): FᵀF (n = cols) when `of_columns`, else F·Fᵀ (n = rows). `out` receives all
// n² entries (column-major; symmetric).
void gram(const double* data, int64_t rows, int64_t cols, int64_t outer, bool of_columns, double* out);

// The cross product of two row-major factors A (a_rows × a_cols) and B: AᵀB (a_cols × b_cols,
// a_rows == b_rows) when `of_columns`, else A·Bᵀ (a_rows × b_rows, a_cols == b_cols); `out`
// receives it column-major.
void cross(const double* a, int64_t a_rows, int64_t a_cols, int64_t a_outer, const double* b, int64_t b_rows,
           int64_t b_cols, int64_t b_outer, bool of_columns, double* out);

// The level the kernels run at: "x86-64" (SSE2), "x86-64-v3" (AVX2, FMA) or "x86-64-v4"
// (AVX-512); "generic" off x86-64. LV_CPU_LEVEL=NAME in the environment caps it (tests and
// benchmarks compare the levels on one machine); a level the CPU lacks is never chosen.
const char* level();

}  // namespace lv::verify::kernels
