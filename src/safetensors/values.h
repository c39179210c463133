// Tensor values seen as bits: the IEEE binary formats classified without decoding, and one
// scan of a tensor for NaN/Inf and all-zero values. Shared by the value checks, the
// equivalence engine's exact path and the converter.
#pragma once

#include <cstdint>
#include <cstring>

#include "safetensors/dtype.h"
#include "safetensors/reader.h"

namespace lv::st {

// Element size and exponent mask of an IEEE binary dtype (F16, BF16, F32, F64): a value
// whose exponent bits are all ones is Inf or NaN. `bytes` is 0 for every other dtype.
struct IeeeBits {
  unsigned bytes = 0;
  uint64_t exp_mask = 0;
};
IeeeBits ieee_bits(DType d);

// The element at `p` as its unsigned bit pattern (unaligned data allowed).
template <typename U>
U load_bits(const uint8_t* p) {
  U v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// Calls f(U{}) with the unsigned type of `bytes` (2, 4 or 8); false for other sizes.
template <typename F>
bool with_bits(unsigned bytes, F&& f) {
  switch (bytes) {
    case 2: return f(uint16_t{});
    case 4: return f(uint32_t{});
    case 8: return f(uint64_t{});
    default: return false;
  }
}

struct ValueScan {
  uint64_t nonfinite = 0;  // NaN or ±Inf values
  uint64_t first_bad = 0;  // index of the first, when nonfinite > 0
  bool all_zero = true;    // every value is +0 or −0
};
// One pass over the values: on the bits for IEEE dtypes, decoded for the other float
// dtypes; integer and sub-byte dtypes report nothing.
ValueScan scan_values(const TensorView& t);

}  // namespace lv::st
