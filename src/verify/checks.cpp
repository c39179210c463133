// Value checks over the tensors a LoraModel uses, decoded in bounded chunks.
#include "verify/checks.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <set>
#include <string>

namespace lv::verify {
namespace {

struct Scan {
  uint64_t nonfinite = 0;
  uint64_t first_bad = 0;
  bool all_zero = true;
};

// IEEE formats are classified on their bits: exponent all ones is Inf or NaN, all bits
// but the sign zero is ±0. One pass, no decoding.
template <typename U>
Scan scan_bits(const uint8_t* data, uint64_t numel, U exp_mask) {
  Scan s;
  const U magnitude_mask = std::numeric_limits<U>::max() >> 1;  // every bit but the sign
  uint64_t bad = 0;
  U any = 0;
  for (uint64_t i = 0; i < numel; ++i) {
    U x;
    std::memcpy(&x, data + i * sizeof(U), sizeof(U));
    bad += (x & exp_mask) == exp_mask;
    any |= x & magnitude_mask;
  }
  s.nonfinite = bad;
  s.all_zero = any == 0;
  if (bad)
    for (uint64_t i = 0; i < numel; ++i) {
      U x;
      std::memcpy(&x, data + i * sizeof(U), sizeof(U));
      if ((x & exp_mask) == exp_mask) {
        s.first_bad = i;
        break;
      }
    }
  return s;
}

Scan scan(const st::TensorView& t) {
  switch (t.dtype) {
    case st::DType::kBF16: return scan_bits<uint16_t>(t.data, t.numel, 0x7F80);
    case st::DType::kF16: return scan_bits<uint16_t>(t.data, t.numel, 0x7C00);
    case st::DType::kF32: return scan_bits<uint32_t>(t.data, t.numel, 0x7F800000u);
    case st::DType::kF64: return scan_bits<uint64_t>(t.data, t.numel, 0x7FF0000000000000ull);
    default: break;
  }
  Scan s;
  if (!st::dtype_is_decodable(t.dtype)) return s;
  const size_t es = st::dtype_bits(t.dtype) / 8;
  constexpr size_t kChunk = 1 << 14;
  double buf[kChunk];
  for (uint64_t i = 0; i < t.numel; i += kChunk) {
    size_t n = static_cast<size_t>(std::min<uint64_t>(kChunk, t.numel - i));
    st::decode_to_double(t.dtype, t.data + i * es, n, buf);
    for (size_t k = 0; k < n; ++k) {
      if (!std::isfinite(buf[k])) {
        if (s.nonfinite++ == 0) s.first_bad = i + k;
      }
      if (buf[k] != 0.0) s.all_zero = false;
    }
  }
  return s;
}

}  // namespace

std::vector<Finding> check_values(const LoraModel& model) {
  std::vector<Finding> out;
  std::set<const st::TensorView*> seen;
  std::map<const st::TensorView*, Scan> scans;
  std::set<std::string> dtypes;
  auto get = [&](const st::TensorView* t) -> const Scan& {
    auto it = scans.find(t);
    if (it == scans.end()) it = scans.emplace(t, scan(*t)).first;
    return it->second;
  };
  for (const Part& p : model.parts) {
    const st::TensorView* used[] = {p.down, p.up, p.diff, p.w1, p.w1_a, p.w1_b, p.w2, p.w2_a, p.w2_b,
                                    p.hada_w1_a, p.hada_w1_b, p.hada_w2_a, p.hada_w2_b, p.bias, p.magnitude};
    for (const st::TensorView* t : used) {
      if (!t || !seen.insert(t).second) continue;
      dtypes.insert(std::string(st::dtype_name(t->dtype)));
      const Scan& s = get(t);
      if (s.nonfinite)
        out.push_back({"lora.value.nonfinite", Severity::kError, t->name,
                       std::to_string(s.nonfinite) + " of " + std::to_string(t->numel) +
                           " values are NaN or Inf (first at element " + std::to_string(s.first_bad) + ")"});
    }
    if (p.form == PartForm::kLowRank) {
      const st::TensorView* zero = get(p.up).all_zero ? p.up : (get(p.down).all_zero ? p.down : nullptr);
      if (zero)
        out.push_back({"lora.delta.zero", Severity::kWarning, zero->name,
                       "all values are zero, so module " + p.source_module + " changes nothing"});
    }
  }
  if (dtypes.size() > 1) {
    std::string list;
    for (const auto& d : dtypes) list += (list.empty() ? "" : ", ") + d;
    out.push_back({"lora.dtype.mixed", Severity::kInfo, "", "factors are stored in several dtypes: " + list});
  }
  return out;
}

}  // namespace lv::verify
