// Dense evaluation of one part's weight delta, a row at a time: the reference for adapter
// forms (LoKr, LoHa, dense diff) that have no low-rank factors.
#pragma once

#include <cstdint>
#include <vector>

#include "lora/model.h"

namespace lv {

class PartRows {
 public:
  // Precondition: the part passed the loader's shape checks.
  explicit PartRows(const Part& part);
  int64_t rows() const { return part_.row_end - part_.row_begin; }
  int64_t cols() const { return part_.target_cols; }
  // Row k of the part's delta in its own (stored) row order, scale applied: cols() values.
  void row(int64_t k, double* out) const;

 private:
  const Part& part_;
  // Small factors decoded once: LoKr W1, W2 (each w or w_a·w_b), LoHa factors, or A.
  std::vector<double> m1_, m2_, m3_, m4_;
  int64_t r1_ = 0, c1_ = 0, r2_ = 0, c2_ = 0, rank_ = 0;
};

// Decodes a whole tensor into doubles (row-major).
std::vector<double> decode_all(const st::TensorView& t);

}  // namespace lv
