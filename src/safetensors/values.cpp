#include "safetensors/values.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/cpu_clones.h"

namespace lv::st {
namespace {

// One pass of OR-reductions (vectorized: no count, no branch per value); the rare tensor
// with a NaN or Inf is counted in a second pass.
template <typename U>
ValueScan scan_bits(const uint8_t* data, uint64_t numel, U exp_mask) {
  ValueScan s;
  const U magnitude_mask = std::numeric_limits<U>::max() >> 1;  // every bit but the sign
  U bad = 0, any = 0;
  for (uint64_t i = 0; i < numel; ++i) {
    const U x = load_bits<U>(data + i * sizeof(U));
    bad |= static_cast<U>((x & exp_mask) == exp_mask);
    any |= x & magnitude_mask;
  }
  s.all_zero = any == 0;
  if (!bad) return s;
  for (uint64_t i = numel; i-- > 0;)
    if ((load_bits<U>(data + i * sizeof(U)) & exp_mask) == exp_mask) {
      ++s.nonfinite;
      s.first_bad = i;
    }
  return s;
}

}  // namespace

IeeeBits ieee_bits(DType d) {
  switch (d) {
    case DType::kBF16: return {2, 0x7F80};
    case DType::kF16: return {2, 0x7C00};
    case DType::kF32: return {4, 0x7F800000u};
    case DType::kF64: return {8, 0x7FF0000000000000ull};
    default: return {};
  }
}

LV_CPU_CLONES ValueScan scan_values(const TensorView& t) {
  const IeeeBits bits = ieee_bits(t.dtype);
  ValueScan s;
  if (with_bits(bits.bytes, [&](auto u) {
        using U = decltype(u);
        s = scan_bits<U>(t.data, t.numel, static_cast<U>(bits.exp_mask));
        return true;
      }))
    return s;
  if (!dtype_is_decodable(t.dtype)) return s;
  const size_t es = dtype_bits(t.dtype) / 8;
  constexpr size_t kChunk = 1 << 14;
  double buf[kChunk];
  for (uint64_t i = 0; i < t.numel; i += kChunk) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(kChunk, t.numel - i));
    decode_to_double(t.dtype, t.data + i * es, n, buf);
    for (size_t k = 0; k < n; ++k) {
      if (!std::isfinite(buf[k]) && s.nonfinite++ == 0) s.first_bad = i + k;
      if (buf[k] != 0.0) s.all_zero = false;
    }
  }
  return s;
}

}  // namespace lv::st
