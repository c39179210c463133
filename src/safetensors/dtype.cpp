// dtype table and exact float conversions (F32, F64, F16, BF16, F8_E4M3, F8_E5M2).
#include "safetensors/dtype.h"

#include <bit>
#include <cmath>
#include <cstring>
#include <limits>

#include "core/cpu_clones.h"

namespace lv::st {
namespace {

struct DTypeRow {
  DType d;
  std::string_view name;
  unsigned bits;
};

constexpr DTypeRow kTable[kDTypeCount] = {
    {DType::kBool, "BOOL", 8},        {DType::kF4, "F4", 4},
    {DType::kF6E2M3, "F6_E2M3", 6},   {DType::kF6E3M2, "F6_E3M2", 6},
    {DType::kU8, "U8", 8},            {DType::kI8, "I8", 8},
    {DType::kF8E5M2, "F8_E5M2", 8},   {DType::kF8E4M3, "F8_E4M3", 8},
    {DType::kF8E8M0, "F8_E8M0", 8},   {DType::kF8E4M3Fnuz, "F8_E4M3FNUZ", 8},
    {DType::kF8E5M2Fnuz, "F8_E5M2FNUZ", 8}, {DType::kI16, "I16", 16},
    {DType::kU16, "U16", 16},         {DType::kF16, "F16", 16},
    {DType::kBF16, "BF16", 16},       {DType::kI32, "I32", 32},
    {DType::kU32, "U32", 32},         {DType::kF32, "F32", 32},
    {DType::kC64, "C64", 64},         {DType::kF64, "F64", 64},
    {DType::kI64, "I64", 64},         {DType::kU64, "U64", 64},
};

double f16_to_double(uint16_t h) {
  const int sign = h >> 15, exp = (h >> 10) & 0x1f, man = h & 0x3ff;
  double v;
  if (exp == 0) v = std::ldexp(static_cast<double>(man), -24);
  else if (exp == 31) v = man ? std::numeric_limits<double>::quiet_NaN() : std::numeric_limits<double>::infinity();
  else v = std::ldexp(static_cast<double>(man | 0x400), exp - 25);
  return sign ? -v : v;
}

double e4m3_to_double(uint8_t b) {  // FN variant: no inf, S.1111.111 is NaN, bias 7
  const int sign = b >> 7, exp = (b >> 3) & 0xf, man = b & 7;
  double v;
  if (exp == 15 && man == 7) return std::numeric_limits<double>::quiet_NaN();
  if (exp == 0) v = std::ldexp(static_cast<double>(man), -9);
  else v = std::ldexp(static_cast<double>(man | 8), exp - 10);
  return sign ? -v : v;
}

double e5m2_to_double(uint8_t b) { return f16_to_double(static_cast<uint16_t>(b) << 8); }

// Round-to-nearest-even of a double to a binary float with `man_bits` explicit mantissa
// bits and exponent range [emin, emax] (normal), directly from double (no double rounding).
// Returns the bit pattern assembled by `pack`.
template <typename Pack>
auto round_float(double x, int man_bits, int emin, int emax, Pack pack) {
  const bool neg = std::signbit(x);
  if (std::isnan(x)) return pack(neg, -1, 0, true, false);
  double a = std::fabs(x);
  if (std::isinf(a)) return pack(neg, 0, 0, false, true);
  if (a == 0) return pack(neg, 0, 0, false, false);
  int e = std::ilogb(a);
  if (e < emin) e = emin;  // subnormal range shares emin's quantum
  // Quantum of representable numbers at this exponent.
  double q = std::ldexp(1.0, e - man_bits);
  double m = a / q;  // exact: power-of-two scaling
  double r = std::nearbyint(m);  // default rounding mode: ties to even
  uint64_t mi = static_cast<uint64_t>(r);
  if (mi >> (man_bits + 1)) {  // rounded up to the next binade
    mi >>= 1;
    ++e;
  }
  if (e > emax) return pack(neg, 0, 0, false, true);
  bool normal = (mi >> man_bits) & 1;
  int biased = normal ? e - emin + 1 : 0;
  return pack(neg, biased, mi & ((uint64_t{1} << man_bits) - 1), false, false);
}

// The same rounding for results in the normal range, on the double's bits: keep the top
// man_bits of its 52-bit mantissa, round to nearest even (a carry moves into the exponent
// field, as it should), then rebias the exponent. `ok` is false where the result would be
// subnormal, zero, infinite or NaN (round_float handles those; the bits are then garbage).
template <int kManBits, int kBias, int kMaxBiased>
inline uint16_t round_normal_16(double x, bool& ok) {
  const uint64_t bits = std::bit_cast<uint64_t>(x);
  const uint64_t mag = bits & 0x7fffffffffffffffULL;
  constexpr int kDrop = 52 - kManBits;
  const uint64_t half = (uint64_t{1} << (kDrop - 1)) - 1 + ((mag >> kDrop) & 1);
  const uint64_t r = (mag + half) >> kDrop;  // exponent (11 bits) and man_bits, rounded
  const uint64_t biased = (r >> kManBits) - 1023 + kBias;  // wraps when below the range
  ok = biased - 1 < uint64_t{kMaxBiased} && (mag >> 52) != 0x7ff;
  return static_cast<uint16_t>(((bits >> 48) & 0x8000) | (biased << kManBits) | (r & ((uint64_t{1} << kManBits) - 1)));
}

template <int kManBits, int kBias, int kMaxBiased>
inline bool round_normal_bits(double x, uint16_t& out) {
  bool ok;
  const uint16_t h = round_normal_16<kManBits, kBias, kMaxBiased>(x, ok);
  if (ok) out = h;
  return ok;
}

// The value of a normal 16-bit float, assembled as a double's bits.
template <int kManBits, int kBias>
inline double normal_16_to_double(uint16_t h) {
  const uint64_t exp = (h & 0x7fffu) >> kManBits, man = h & ((1u << kManBits) - 1);
  return std::bit_cast<double>((uint64_t{h} >> 15 << 63) | ((exp - kBias + 1023) << 52) | (man << (52 - kManBits)));
}

// scale_round_16 for one format: one pass, no branch per value.
template <int kManBits, int kBias, int kMaxBiased>
inline bool scale_round_normal(const double* x, size_t n, double scale, double inv_u, uint8_t* dst, double* v, double* d) {
  unsigned bad = 0;
  for (size_t i = 0; i < n; ++i) {
    const double y = x[i] * scale;
    bool ok;
    const uint16_t h = round_normal_16<kManBits, kBias, kMaxBiased>(y, ok);
    bad |= !ok;
    if constexpr (std::endian::native == std::endian::little) {
      std::memcpy(dst + 2 * i, &h, 2);
    } else {
      dst[2 * i] = static_cast<uint8_t>(h & 0xff);
      dst[2 * i + 1] = static_cast<uint8_t>(h >> 8);
    }
    v[i] = y;
    d[i] = (normal_16_to_double<kManBits, kBias>(h) - y) * inv_u;
  }
  return bad == 0;
}

uint16_t double_to_f16(double x) {
  return round_float(x, 10, -14, 15, [](bool neg, int be, uint64_t man, bool nan, bool inf) -> uint16_t {
    uint16_t s = neg ? 0x8000 : 0;
    if (nan) return static_cast<uint16_t>(s | 0x7e00);
    if (inf) return static_cast<uint16_t>(s | 0x7c00);
    return static_cast<uint16_t>(s | (be << 10) | man);
  });
}

uint16_t double_to_bf16(double x) {
  return round_float(x, 7, -126, 127, [](bool neg, int be, uint64_t man, bool nan, bool inf) -> uint16_t {
    uint16_t s = neg ? 0x8000 : 0;
    if (nan) return static_cast<uint16_t>(s | 0x7fc0);
    if (inf) return static_cast<uint16_t>(s | 0x7f80);
    return static_cast<uint16_t>(s | (be << 7) | man);
  });
}

// Little-endian 16-bit floats: the normal-range rounding on the bits, the generic one elsewhere.
template <typename Fast, typename Slow>
inline void encode_16(const double* in, size_t n, uint8_t* out, Fast fast, Slow slow) {
  for (size_t i = 0; i < n; ++i) {
    uint16_t h;
    if (!fast(in[i], h)) h = slow(in[i]);
    out[2 * i] = static_cast<uint8_t>(h & 0xff);
    out[2 * i + 1] = static_cast<uint8_t>(h >> 8);
  }
}

}  // namespace

std::string_view dtype_name(DType d) { return kTable[static_cast<int>(d)].name; }

std::optional<DType> dtype_from_name(std::string_view name) {
  for (const auto& r : kTable)
    if (r.name == name) return r.d;
  return std::nullopt;
}

unsigned dtype_bits(DType d) { return kTable[static_cast<int>(d)].bits; }

bool dtype_is_decodable(DType d) {
  return d == DType::kF32 || d == DType::kF64 || d == DType::kF16 || d == DType::kBF16 || d == DType::kF8E4M3 ||
         d == DType::kF8E5M2;
}

bool dtype_is_encodable(DType d) {
  return d == DType::kF32 || d == DType::kF64 || d == DType::kF16 || d == DType::kBF16;
}

double dtype_unit_roundoff(DType d) {
  switch (d) {
    case DType::kBF16: return std::ldexp(1.0, -8);
    case DType::kF16: return std::ldexp(1.0, -11);
    case DType::kF32: return std::ldexp(1.0, -24);
    case DType::kF64: return std::ldexp(1.0, -53);
    case DType::kF8E4M3: return std::ldexp(1.0, -4);
    case DType::kF8E5M2: return std::ldexp(1.0, -3);
    default: return 0.0;
  }
}

LV_CPU_CLONES void decode_to_double(DType d, const uint8_t* p, size_t n, double* out) {
  switch (d) {
    case DType::kF32:
      for (size_t i = 0; i < n; ++i) {
        float f;
        std::memcpy(&f, p + 4 * i, 4);
        out[i] = f;
      }
      return;
    case DType::kF64:
      std::memcpy(out, p, 8 * n);
      return;
    case DType::kF16:
      for (size_t i = 0; i < n; ++i) out[i] = f16_to_double(static_cast<uint16_t>(p[2 * i] | (p[2 * i + 1] << 8)));
      return;
    case DType::kBF16:
      for (size_t i = 0; i < n; ++i) {
        uint32_t bits = static_cast<uint32_t>(p[2 * i] | (p[2 * i + 1] << 8)) << 16;
        out[i] = std::bit_cast<float>(bits);
      }
      return;
    case DType::kF8E4M3:
      for (size_t i = 0; i < n; ++i) out[i] = e4m3_to_double(p[i]);
      return;
    case DType::kF8E5M2:
      for (size_t i = 0; i < n; ++i) out[i] = e5m2_to_double(p[i]);
      return;
    default:
      for (size_t i = 0; i < n; ++i) out[i] = std::numeric_limits<double>::quiet_NaN();
      return;
  }
}

LV_CPU_CLONES void encode_from_double(DType d, const double* in, size_t n, uint8_t* out) {
  switch (d) {
    case DType::kF32:
      for (size_t i = 0; i < n; ++i) {
        float f = static_cast<float>(in[i]);  // IEEE cast: round to nearest even
        std::memcpy(out + 4 * i, &f, 4);
      }
      return;
    case DType::kF64:
      std::memcpy(out, in, 8 * n);
      return;
    case DType::kF16:
      return encode_16(in, n, out, [](double x, uint16_t& h) { return round_normal_bits<10, 15, 30>(x, h); }, double_to_f16);
    case DType::kBF16:
      return encode_16(in, n, out, [](double x, uint16_t& h) { return round_normal_bits<7, 127, 254>(x, h); }, double_to_bf16);
    default:
      return;
  }
}

LV_CPU_CLONES bool scale_round_16(DType out, const double* x, size_t n, double scale, uint8_t* dst, double* v, double* d) {
  const double inv_u = 1.0 / dtype_unit_roundoff(out);
  if (out == DType::kF16) return scale_round_normal<10, 15, 30>(x, n, scale, inv_u, dst, v, d);
  if (out == DType::kBF16) return scale_round_normal<7, 127, 254>(x, n, scale, inv_u, dst, v, d);
  return false;
}

void encode_from_double_reference(DType d, const double* in, size_t n, uint8_t* out) {
  const auto never = [](double, uint16_t&) { return false; };
  if (d == DType::kF16) return encode_16(in, n, out, never, double_to_f16);
  if (d == DType::kBF16) return encode_16(in, n, out, never, double_to_bf16);
  encode_from_double(d, in, n, out);
}

}  // namespace lv::st
