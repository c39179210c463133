// LV_CPU_CLONES: a hot loop written in plain C++ is compiled once per x86-64 level (SSE2,
// v3: AVX2/FMA, v4: AVX-512) and the best copy for the CPU is chosen when the program or
// module is loaded (GCC/clang target_clones, an ELF ifunc). A portable build thus runs these
// loops as a -march=native one would. Eigen's kernels are dispatched otherwise
// (src/verify/kernels.h). Off in fuzz builds (sanitizers and ifuncs) and off x86-64.
#pragma once

#if defined(__x86_64__) && defined(__ELF__) && !defined(LV_FUZZING) && !defined(LV_NO_CPU_DISPATCH)
#define LV_CPU_CLONES __attribute__((target_clones("default", "arch=x86-64-v3", "arch=x86-64-v4")))
#else
#define LV_CPU_CLONES
#endif
