// The 22 safetensors dtypes: names, bit widths, and exact conversion to and from double.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace lv::st {

// Declared in the spec's list order (ascending alignment); the writer sorts by the
// reverse of this order.
enum class DType : uint8_t {
  kBool, kF4, kF6E2M3, kF6E3M2, kU8, kI8, kF8E5M2, kF8E4M3, kF8E8M0, kF8E4M3Fnuz,
  kF8E5M2Fnuz, kI16, kU16, kF16, kBF16, kI32, kU32, kF32, kC64, kF64, kI64, kU64,
};
inline constexpr int kDTypeCount = 22;

std::string_view dtype_name(DType d);                       // "BF16"
std::optional<DType> dtype_from_name(std::string_view name);  // exact, case-sensitive
unsigned dtype_bits(DType d);                               // 4, 6, 8, 16, 32, 64

// Floating dtypes lora-verify reads as numbers: F32, F64, F16, BF16, F8_E4M3, F8_E5M2.
bool dtype_is_decodable(DType d);
// Dtypes lora-verify can write numbers in: F32, F64, F16, BF16.
bool dtype_is_encodable(DType d);
// Unit roundoff of a float dtype (2^-p): BF16 2^-8, F16 2^-11, F32 2^-24, F64 2^-53,
// F8_E4M3 2^-4, F8_E5M2 2^-3. 0 for non-float dtypes.
double dtype_unit_roundoff(DType d);

// Decode n elements starting at `bytes` (may be unaligned) into doubles. Exact for every
// decodable dtype. Precondition: dtype_is_decodable(d).
void decode_to_double(DType d, const uint8_t* bytes, size_t n, double* out);
// Encode n doubles with round-to-nearest-even (overflow to inf like a cast). Precondition:
// dtype_is_encodable(d).
void encode_from_double(DType d, const double* in, size_t n, uint8_t* out);
// v = x·scale for n values, rounded into `out` (F16 or BF16) as encode_from_double(out, v)
// rounds them, with each value's rounding error in units of the dtype's unit roundoff:
// d = (rounded − v)·(1/u). One pass on the bits, for values that all round into the normal
// range; false when one does not (a subnormal, zero, infinite or NaN result, or another
// dtype), and then dst, v and d hold nothing usable.
bool scale_round_16(DType out, const double* x, size_t n, double scale, uint8_t* dst, double* v, double* d);
// The same rounding without encode_from_double's fast path for the normal range (F16, BF16):
// the reference that path is tested against.
void encode_from_double_reference(DType d, const double* in, size_t n, uint8_t* out);

}  // namespace lv::st
