// Row-wise dense deltas of LoRA parts (ΔW formulas: docs/formats.md#adapter-forms).
#include "lora/delta.h"

#include <algorithm>

namespace lv {
namespace {

// c = a (n×k) · b (k×m), row-major.
std::vector<double> matmul(const std::vector<double>& a, const std::vector<double>& b, int64_t n, int64_t k, int64_t m) {
  std::vector<double> c(static_cast<size_t>(n * m), 0.0);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t t = 0; t < k; ++t) {
      double x = a[static_cast<size_t>(i * k + t)];
      if (x == 0) continue;
      for (int64_t j = 0; j < m; ++j) c[static_cast<size_t>(i * m + j)] += x * b[static_cast<size_t>(t * m + j)];
    }
  return c;
}

int64_t dim(const st::TensorView* t, size_t i) { return static_cast<int64_t>(t->shape[i]); }

// W = w, or w_a · w_b.
std::vector<double> factor(const st::TensorView* w, const st::TensorView* a, const st::TensorView* b, int64_t& rows,
                           int64_t& cols) {
  if (w) {
    rows = dim(w, 0);
    cols = dim(w, 1);
    return decode_all(*w);
  }
  rows = dim(a, 0);
  cols = dim(b, 1);
  return matmul(decode_all(*a), decode_all(*b), rows, dim(a, 1), cols);
}

}  // namespace

std::vector<double> decode_all(const st::TensorView& t) {
  std::vector<double> v(static_cast<size_t>(t.numel));
  st::decode_to_double(t.dtype, t.data, v.size(), v.data());
  return v;
}

PartRows::PartRows(const Part& part) : part_(part) {
  switch (part.form) {
    case PartForm::kLowRank:
      m1_ = decode_all(*part.down);
      rank_ = dim(part.down, 0);
      break;
    case PartForm::kLoKr:
      m1_ = factor(part.w1, part.w1_a, part.w1_b, r1_, c1_);
      m2_ = factor(part.w2, part.w2_a, part.w2_b, r2_, c2_);
      break;
    case PartForm::kLoHa:
      rank_ = dim(part.hada_w1_b, 0);
      m1_ = decode_all(*part.hada_w1_a);
      m2_ = decode_all(*part.hada_w1_b);
      m3_ = decode_all(*part.hada_w2_a);
      m4_ = decode_all(*part.hada_w2_b);
      r2_ = dim(part.hada_w2_b, 0);
      break;
    case PartForm::kDense:
    case PartForm::kBiasOnly:
      break;
  }
}

void PartRows::row(int64_t k, double* out) const {
  const int64_t n = cols();
  std::fill(out, out + n, 0.0);
  const double s = part_.scale;
  switch (part_.form) {
    case PartForm::kLowRank: {
      std::vector<double> b(static_cast<size_t>(rank_));
      st::decode_to_double(part_.up->dtype, part_.up->data + static_cast<size_t>(k * rank_) * (st::dtype_bits(part_.up->dtype) / 8),
                           b.size(), b.data());
      for (int64_t t = 0; t < rank_; ++t)
        for (int64_t j = 0; j < n; ++j) out[j] += s * b[static_cast<size_t>(t)] * m1_[static_cast<size_t>(t * n + j)];
      break;
    }
    case PartForm::kDense:
      st::decode_to_double(part_.diff->dtype, part_.diff->data + static_cast<size_t>(k * n) * (st::dtype_bits(part_.diff->dtype) / 8),
                           static_cast<size_t>(n), out);
      break;
    case PartForm::kLoKr: {
      const int64_t i1 = k / r2_, i2 = k % r2_;
      for (int64_t j = 0; j < n; ++j)
        out[j] = s * m1_[static_cast<size_t>(i1 * c1_ + j / c2_)] * m2_[static_cast<size_t>(i2 * c2_ + j % c2_)];
      break;
    }
    case PartForm::kLoHa: {
      for (int64_t j = 0; j < n; ++j) {
        double x = 0, y = 0;
        for (int64_t t = 0; t < rank_; ++t) x += m1_[static_cast<size_t>(k * rank_ + t)] * m2_[static_cast<size_t>(t * n + j)];
        for (int64_t t = 0; t < r2_; ++t) y += m3_[static_cast<size_t>(k * r2_ + t)] * m4_[static_cast<size_t>(t * n + j)];
        out[j] = s * x * y;
      }
      break;
    }
    case PartForm::kBiasOnly:
      break;
  }
}

}  // namespace lv
