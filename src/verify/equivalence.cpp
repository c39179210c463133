// Factor-based equivalence of two canonical models (method and tolerance: equivalence.h).
#include "verify/equivalence.h"

#include <algorithm>
#include <atomic>
#include <bit>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <span>
#include <thread>
#include <tuple>
#include <unordered_map>

#include "lora/delta.h"
#include "verify/kernels.h"
#include "safetensors/values.h"

namespace lv::verify {
namespace {

using Eigen::MatrixXd;

// The local row of `p` that lands on target row t (undoing the half swap).
int64_t local_row(const Part& p, int64_t t) {
  const int64_t len = p.row_end - p.row_begin;
  int64_t k = t - p.row_begin;
  return p.swap_halves ? (k + len / 2) % len : k;
}

bool same_tensor(const st::TensorView* a, const st::TensorView* b) {
  if (a == b) return true;
  if (!a || !b) return false;
  return a->dtype == b->dtype && a->shape == b->shape && a->nbytes == b->nbytes &&
         std::memcmp(a->data, b->data, static_cast<size_t>(a->nbytes)) == 0;
}

bool same_part(const Part& a, const Part& b) {
  return a.form == b.form && a.row_begin == b.row_begin && a.row_end == b.row_end && a.swap_halves == b.swap_halves &&
         a.scale == b.scale && a.bias_scale == b.bias_scale && same_tensor(a.down, b.down) && same_tensor(a.up, b.up) &&
         same_tensor(a.diff, b.diff) && same_tensor(a.w1, b.w1) && same_tensor(a.w1_a, b.w1_a) &&
         same_tensor(a.w1_b, b.w1_b) && same_tensor(a.w2, b.w2) && same_tensor(a.w2_a, b.w2_a) &&
         same_tensor(a.w2_b, b.w2_b) && same_tensor(a.hada_w1_a, b.hada_w1_a) && same_tensor(a.hada_w1_b, b.hada_w1_b) &&
         same_tensor(a.hada_w2_a, b.hada_w2_a) && same_tensor(a.hada_w2_b, b.hada_w2_b) && same_tensor(a.bias, b.bias) &&
         same_tensor(a.magnitude, b.magnitude) && a.magnitude_per_row == b.magnitude_per_row;
}

std::vector<const st::TensorView*> tensors_of(const Part& p) {
  std::vector<const st::TensorView*> v;
  for (const st::TensorView* t : {p.down, p.up, p.diff, p.w1, p.w1_a, p.w1_b, p.w2, p.w2_a, p.w2_b, p.hada_w1_a,
                                  p.hada_w1_b, p.hada_w2_a, p.hada_w2_b, p.bias})
    if (t) v.push_back(t);
  return v;
}

using RowMatrix = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

using FactorMap = Eigen::Map<const RowMatrix>;

// Decoded straight into row-major storage (the tensor's own layout, no reordering), in
// buffers each thread keeps across targets: no fresh pages to fault in per target.
struct DecodePool {
  std::vector<std::vector<double>> buffers;
  size_t next = 0;
};
thread_local DecodePool decode_pool;

FactorMap to_matrix(const st::TensorView& t) {
  const int64_t rows = t.shape.empty() ? 1 : static_cast<int64_t>(t.shape[0]);
  const int64_t cols = rows == 0 ? 0 : static_cast<int64_t>(t.numel) / rows;
  DecodePool& pool = decode_pool;
  if (pool.next == pool.buffers.size()) pool.buffers.emplace_back();
  std::vector<double>& b = pool.buffers[pool.next++];
  if (b.size() < static_cast<size_t>(t.numel)) b.resize(static_cast<size_t>(t.numel));
  st::decode_to_double(t.dtype, t.data, static_cast<size_t>(t.numel), b.data());
  return FactorMap(b.data(), rows, cols);
}

// Every value finite, in one branch-free pass (NaN fails the comparison).
bool all_finite(const FactorMap& m) {
  const double* d = m.data();
  const Eigen::Index n = m.size();
  bool ok = true;
  for (Eigen::Index i = 0; i < n; ++i) ok &= std::fabs(d[i]) <= std::numeric_limits<double>::max();
  return ok;
}

// R factor of a thin Householder QR (min(rows, cols) × cols, upper trapezoidal).
MatrixXd r_factor(const MatrixXd& m) {
  Eigen::HouseholderQR<MatrixXd> qr(m);
  const Eigen::Index k = std::min(m.rows(), m.cols());
  return qr.matrixQR().topRows(k).triangularView<Eigen::Upper>();
}

struct Side {
  std::vector<const Part*> parts;
  std::vector<FactorMap> downs, ups;  // decoded low-rank factors, per part (in decode_pool)
};

// Decodes a side's low-rank factors. A factor whose bytes equal an earlier one of the side
// (the downs of q, k and v split from one fused down) shares its decoded storage: the same
// values at the same address, so the Grams and products on it are computed once (GramCache
// keys on addresses) and every result is what separate copies would give.
void decode_side(const std::vector<const Part*>& list, Side& side) {
  std::vector<std::pair<const st::TensorView*, FactorMap>> seen;
  const auto decoded = [&](const st::TensorView& t) {
    for (const auto& [u, m] : seen)
      if (same_tensor(u, &t)) return m;
    seen.emplace_back(&t, to_matrix(t));
    return seen.back().second;
  };
  for (const Part* p : list) {
    if (p->form != PartForm::kLowRank) continue;
    side.parts.push_back(p);
    side.downs.push_back(decoded(*p->down));
    side.ups.push_back(decoded(*p->up));
  }
}

double roundoff(const std::vector<const Part*>& a, const std::vector<const Part*>& b) {
  double u = std::ldexp(1.0, -24);
  for (const auto* list : {&a, &b})
    for (const Part* p : *list)
      for (const st::TensorView* t : tensors_of(*p)) u = std::max(u, st::dtype_unit_roundoff(t->dtype));
  return u;
}

std::vector<int64_t> ranks(const std::vector<const Part*>& ps) {
  std::vector<int64_t> r;
  for (const Part* p : ps) r.push_back(p->rank());
  return r;
}

// Bias delta of one side on the target's rows.
Eigen::VectorXd bias_of(const std::vector<const Part*>& ps, int64_t rows, bool& finite) {
  Eigen::VectorXd b = Eigen::VectorXd::Zero(rows);
  for (const Part* p : ps) {
    if (!p->bias) continue;
    std::vector<double> v = decode_all(*p->bias);
    for (int64_t t = p->row_begin; t < p->row_end; ++t) {
      double x = v[static_cast<size_t>(local_row(*p, t))];
      if (!std::isfinite(x)) finite = false;
      b(t) += p->bias_scale * x;
    }
  }
  return b;
}

double rel(double err, double base) {
  if (base > 0) return err / base;
  return err > 0 ? std::numeric_limits<double>::infinity() : 0.0;
}

// DoRA magnitudes of one side: per target row (with a mask of the rows that have one),
// and per-column ones keyed by their part's row range.
struct Magnitudes {
  std::vector<double> rows;
  std::vector<uint8_t> has_row;
  std::map<std::pair<int64_t, int64_t>, std::vector<double>> columns;
  double u = 0;  // largest unit roundoff of the magnitude dtypes
  bool any = false, finite = true;
};

Magnitudes magnitudes_of(const std::vector<const Part*>& ps, int64_t rows) {
  Magnitudes m;
  m.rows.assign(static_cast<size_t>(rows), 0.0);
  m.has_row.assign(static_cast<size_t>(rows), 0);
  std::set<const st::TensorView*> seen;
  for (const Part* p : ps) {
    if (!p->magnitude || !seen.insert(p->magnitude).second) continue;
    m.any = true;
    m.u = std::max(m.u, st::dtype_unit_roundoff(p->magnitude->dtype));
    std::vector<double> v = decode_all(*p->magnitude);
    for (double x : v) m.finite = m.finite && std::isfinite(x);
    if (!p->magnitude_per_row) {
      m.columns[{p->row_begin, p->row_end}] = std::move(v);
      continue;
    }
    for (int64_t t = p->row_begin; t < p->row_end; ++t) {
      m.rows[static_cast<size_t>(t)] = v[static_cast<size_t>(local_row(*p, t))];
      m.has_row[static_cast<size_t>(t)] = 1;
    }
  }
  return m;
}

// Compares the DoRA magnitudes of two sides; false (with a message) when they differ.
bool compare_magnitudes(const Magnitudes& a, const Magnitudes& b, double& rel_error, std::string& message) {
  rel_error = 0;
  if (!a.finite || !b.finite) {
    message = "non-finite values in a DoRA magnitude";
    return false;
  }
  for (size_t t = 0; t < a.has_row.size(); ++t)
    if (a.has_row[t] != b.has_row[t]) {
      message = std::string("DoRA magnitude of row ") + std::to_string(t) + " is only on the " +
                (a.has_row[t] ? "source" : "converted") + " side";
      rel_error = std::numeric_limits<double>::infinity();
      return false;
    }
  for (const auto* side : {&a, &b})
    for (const auto& [range, v] : side->columns)
      if (!a.columns.count(range) || !b.columns.count(range)) {
        message = "per-column DoRA scale of rows " + std::to_string(range.first) + ".." + std::to_string(range.second) +
                  " is only on the " + (side == &a ? "source" : "converted") + " side";
        rel_error = std::numeric_limits<double>::infinity();
        return false;
      }
  long double err2 = 0, norm2 = 0;
  for (size_t t = 0; t < a.rows.size(); ++t) {
    const long double d = static_cast<long double>(a.rows[t]) - b.rows[t];
    err2 += d * d;
    norm2 += static_cast<long double>(a.rows[t]) * a.rows[t];
  }
  for (const auto& [range, va] : a.columns) {
    const auto& vb = b.columns.at(range);
    for (size_t j = 0; j < va.size() && j < vb.size(); ++j) {
      const long double d = static_cast<long double>(va[j]) - vb[j];
      err2 += d * d;
      norm2 += static_cast<long double>(va[j]) * va[j];
    }
  }
  rel_error = rel(std::sqrt(static_cast<double>(err2)), std::sqrt(static_cast<double>(norm2)));
  const double tol = 4 * std::max({std::ldexp(1.0, -24), a.u, b.u});
  if (rel_error > tol) {
    message = "DoRA magnitude differs (relative error " + std::to_string(rel_error) + ")";
    return false;
  }
  return true;
}

// Row segments of a target: cut at every part boundary and at the point where a swapped
// part's own rows wrap around, so on each segment every part covers all rows or none and
// its rows are contiguous in its own storage.
std::vector<int64_t> segment_cuts(int64_t rows, const std::vector<const Part*>& a, const std::vector<const Part*>& b) {
  std::set<int64_t> cuts = {0, rows};
  for (const auto* list : {&a, &b})
    for (const Part* p : *list) {
      cuts.insert(p->row_begin);
      cuts.insert(p->row_end);
      if (p->swap_halves) {
        cuts.insert(p->row_begin + (p->row_end - p->row_begin) / 2);
        cuts.insert(p->row_begin + (p->row_end - p->row_begin + 1) / 2);
      }
    }
  return {cuts.begin(), cuts.end()};
}

// ---- The numerical path ----------------------------------------------------------------
//
// On a row segment, ΔW_A − ΔW_B = U·Vᵀ where every column of U is a sum of coefficient ×
// up column (on the segment) and every column of V a sum of coefficient × down row. Terms
// whose down rows are equal in value share one V column and their up columns are summed
// in double (shared down: a renamed or split factor, ups rescaled by another tool); terms
// whose up columns are equal share one U column and their down rows are summed (shared
// up: scales folded into the downs). The difference of the two sides is then formed
// elementwise before any product, and U, V have as many columns as one side's rank, not
// the two sides stacked. Only when neither factor is shared do U and V stack both sides.
//
// ‖U Vᵀ‖_F² = Σ (UᵀU) ∘ (VᵀV): two symmetric rank-k updates (BLAS-3), O((q + m)·n²). Its
// rounding error is at most (q + m + n² + 1)·ε·S², S = Σ_j ‖u_j‖‖v_j‖ (Cauchy–Schwarz on
// the entries of the computed Grams; any summation order). When that bound is not below
// 2⁻²⁰ of the value — the sides cancel inside the product, as when nearly equal sides
// share no factor — the value is recomputed from a thin Householder QR of the factor with
// fewer rows: ‖U Vᵀ‖ = ‖R·Vᵀ‖ (or ‖U·Rᵀ‖), backward stable like the former QR of both.

// An atom of a column: `coef` × the `len` values at p[0], p[stride], p[2·stride], …
struct Atom {
  const double* p;
  int64_t stride;
  double coef;
  auto operator<=>(const Atom&) const = default;
};
using Column = std::vector<Atom>;

enum class Kind { kUp, kDown };  // U: len × n (columns strided); V stored as n × len rows

// A factor built from column descriptors: a view of decoded storage when every column is
// one atom with coefficient 1 at evenly spaced addresses, else formed in double.
struct Factor {
  RowMatrix owned;
  const double* data = nullptr;
  Eigen::Index rows = 0, cols = 0, outer = 0;
  Eigen::Map<const RowMatrix, 0, Eigen::OuterStride<>> map() const { return {data, rows, cols, Eigen::OuterStride<>(outer)}; }
};

LV_CPU_CLONES Factor build_factor(Kind kind, int64_t len, const std::vector<Column>& cols) {
  Factor f;
  const auto n = static_cast<Eigen::Index>(cols.size());
  bool view = n > 0;
  for (Eigen::Index j = 0; j < n && view; ++j) {
    const Column& c = cols[static_cast<size_t>(j)];
    view = c.size() == 1 && c[0].coef == 1.0 && c[0].stride == cols[0][0].stride &&
           c[0].p == cols[0][0].p + j * (kind == Kind::kUp ? 1 : len);
  }
  if (view && kind == Kind::kUp) {
    f.data = cols[0][0].p, f.rows = len, f.cols = n, f.outer = cols[0][0].stride;
    return f;
  }
  if (view && kind == Kind::kDown && cols[0][0].stride == 1) {
    f.data = cols[0][0].p, f.rows = n, f.cols = len, f.outer = len;
    return f;
  }
  if (kind == Kind::kUp) {
    // Row by row (each row of every source up is contiguous); columns of two atoms, the
    // usual difference of the two sides, without the inner loop.
    f.owned.resize(len, n);
    std::vector<const double*> p0(static_cast<size_t>(n)), p1(static_cast<size_t>(n));
    std::vector<int64_t> s0(static_cast<size_t>(n)), s1(static_cast<size_t>(n));
    std::vector<double> c0(static_cast<size_t>(n)), c1(static_cast<size_t>(n));
    bool pairs = true;
    for (Eigen::Index j = 0; j < n; ++j) {
      const Column& c = cols[static_cast<size_t>(j)];
      pairs &= c.size() <= 2;
      const size_t k = static_cast<size_t>(j);
      p0[k] = c[0].p, s0[k] = c[0].stride, c0[k] = c[0].coef;
      p1[k] = c.size() > 1 ? c[1].p : c[0].p, s1[k] = c.size() > 1 ? c[1].stride : c[0].stride;
      c1[k] = c.size() > 1 ? c[1].coef : 0.0;
    }
    for (Eigen::Index t = 0; t < len; ++t) {
      double* row = f.owned.row(t).data();
      if (pairs) {
        for (size_t j = 0; j < static_cast<size_t>(n); ++j) row[j] = c0[j] * p0[j][t * s0[j]] + c1[j] * p1[j][t * s1[j]];
        continue;
      }
      for (Eigen::Index j = 0; j < n; ++j) {
        double x = 0;
        for (const Atom& a : cols[static_cast<size_t>(j)]) x += a.coef * a.p[t * a.stride];
        row[j] = x;
      }
    }
  } else {
    f.owned = RowMatrix::Zero(n, len);
    for (Eigen::Index j = 0; j < n; ++j) {
      double* row = f.owned.row(j).data();
      for (const Atom& a : cols[static_cast<size_t>(j)])
        for (int64_t k = 0; k < len; ++k) row[k] += a.coef * a.p[k * a.stride];
    }
  }
  f.data = f.owned.data(), f.rows = f.owned.rows(), f.cols = f.owned.cols(), f.outer = f.owned.cols();
  return f;
}

// AᵀB (`of_columns`) or A·Bᵀ of two factors, with the kernel of the CPU it runs on.
MatrixXd cross_of(const Factor& a, const Factor& b, bool of_columns) {
  MatrixXd out(of_columns ? a.cols : a.rows, of_columns ? b.cols : b.rows);
  kernels::cross(a.data, a.rows, a.cols, a.outer, b.data, b.rows, b.cols, b.outer, of_columns, out.data());
  return out;
}

// Gram matrices per target, keyed by their column descriptors: a part's down rows serve
// every segment, and the same columns serve the error and side A's norm.
class GramCache {
 public:
  // (U restricted to the columns)ᵀ·(…) for Kind::kUp, V·Vᵀ of the rows for Kind::kDown.
  // With `absolute`, the Gram of the factor's absolute values (single-atom columns only;
  // their coefficients must not be negative).
  MatrixXd gram(Kind kind, int64_t len, const std::vector<Column>& cols, bool absolute = false) {
    // Columns of one atom each are cached with coefficient 1 and scaled afterwards.
    bool atoms = true;
    for (const Column& c : cols) atoms &= c.size() == 1;
    Key key{kind, len, absolute, cols};
    Eigen::VectorXd scale;
    if (atoms) {
      scale.resize(static_cast<Eigen::Index>(cols.size()));
      for (size_t j = 0; j < cols.size(); ++j) {
        scale(static_cast<Eigen::Index>(j)) = cols[j][0].coef;
        key.cols[j][0].coef = 1.0;
      }
    }
    auto it = cache_.find(key);
    if (it == cache_.end()) it = cache_.emplace(key, compute(kind, len, key.cols, absolute)).first;
    if (!atoms) return it->second;
    return scale.asDiagonal() * it->second * scale.asDiagonal();
  }

  // AᵀB of the columns (Kind::kUp) or A·Bᵀ of the rows (Kind::kDown) of two factors, once
  // per pair of column lists.
  const MatrixXd& cross(Kind kind, int64_t len, const std::vector<Column>& a, const std::vector<Column>& b) {
    auto key = std::make_tuple(kind, len, a, b);
    auto it = cross_.find(key);
    if (it == cross_.end())
      it = cross_.emplace(std::move(key), cross_of(build_factor(kind, len, a), build_factor(kind, len, b), kind == Kind::kUp))
               .first;
    return it->second;
  }

 private:
  struct Key {
    Kind kind;
    int64_t len;
    bool absolute;
    std::vector<Column> cols;
    auto operator<=>(const Key&) const = default;
  };
  static MatrixXd compute(Kind kind, int64_t len, const std::vector<Column>& cols, bool absolute) {
    const auto n = static_cast<Eigen::Index>(cols.size());
    MatrixXd g = MatrixXd::Zero(n, n);
    if (n == 0 || len == 0) return g;
    const Factor f = build_factor(kind, len, cols);
    if (absolute) {
      const RowMatrix a = f.map().cwiseAbs();
      kernels::gram(a.data(), a.rows(), a.cols(), a.cols(), kind == Kind::kUp, g.data());
    } else {
      kernels::gram(f.data, f.rows, f.cols, f.outer, kind == Kind::kUp, g.data());  // at the CPU's level
    }
    return g;
  }
  std::map<Key, MatrixXd> cache_;
  std::map<std::tuple<Kind, int64_t, std::vector<Column>, std::vector<Column>>, MatrixXd> cross_;
};

// ‖U Vᵀ‖_F² for U = the up columns on a segment of q rows, V = the down columns (length m).
// `s_out` (when given) receives S = Σ_j ‖u_j‖‖v_j‖, the scale of the value's rounding error.
double product_norm2(GramCache& cache, int64_t q, int64_t m, const std::vector<Column>& ucols,
                     const std::vector<Column>& vcols, double* s_out = nullptr) {
  if (ucols.empty() || q == 0 || m == 0) return 0.0;
  const MatrixXd gu = cache.gram(Kind::kUp, q, ucols), gv = cache.gram(Kind::kDown, m, vcols);
  const double est = gu.cwiseProduct(gv).sum();
  double s = 0;
  for (Eigen::Index j = 0; j < gu.rows(); ++j) s += std::sqrt(std::max(0.0, gu(j, j)) * std::max(0.0, gv(j, j)));
  if (s_out) *s_out = s;
  const auto n = static_cast<double>(ucols.size());
  const double bound = 1.1 * (static_cast<double>(q + m) + n * n + 1) * std::ldexp(1.0, -53) * s * s;
  if (bound <= std::ldexp(est, -20)) return est;
  // Cancellation inside the product: one thin QR, of the factor with fewer rows.
  const Factor u = build_factor(Kind::kUp, q, ucols), v = build_factor(Kind::kDown, m, vcols);
  if (q <= m) {
    const MatrixXd r = r_factor(u.map());
    return (r * v.map()).squaredNorm();
  }
  const MatrixXd r = r_factor(v.map().transpose());
  return (u.map() * r.transpose()).squaredNorm();
}

// What one target's comparison adds up over its row segments.
struct Sums {
  double err2 = 0;     // ‖ΔW_A − ΔW_B‖²
  double norm_a2 = 0;  // ‖ΔW_A‖²
  double inner = 0;    // ⟨ΔW_B, ΔW_A⟩
  // Rounding of side B (see equivalence.h, "Tolerance"): a bound on |⟨E, ΔW_A⟩| (the gain's
  // numerator), the squared elementwise bound on ‖E‖, and bounds on the double-precision
  // error of `inner` and of √err2.
  double gain_bound = 0, round2 = 0, inner_error = 0, err_error = 0;
  double k_a = 0, k_b = 0;  // Σ|s|‖B‖_F‖A‖_F per side
};

// One term of U·Vᵀ on a segment: coefficient × column `col` of a part's up, paired with that
// part's down row `col`. Side B's terms carry the unit roundoffs of their part's up, down
// and scale (the scale's: its alpha tensor's dtype, at least double's division).
struct Term {
  Atom up;  // coefficient 1; the term's coefficient is `coef`
  const double* down;
  double coef;  // +scale on side A, −scale on side B
  uint64_t up_hash, down_hash;
  double u_up = 0, u_down = 0, u_scale = 0;
};
struct Group {
  std::vector<size_t> terms;
};

// Four independent lanes (no serial multiply chain), folded at the end.
uint64_t hash_values(const double* v, int64_t n, int64_t stride) {
  uint64_t h[4] = {0x9e3779b97f4a7c15ull, 0xc2b2ae3d27d4eb4full, 0x165667b19e3779f9ull, 0x27d4eb2f165667c5ull};
  for (int64_t k = 0; k < n; ++k) {
    uint64_t w;
    std::memcpy(&w, v + k * stride, sizeof w);
    uint64_t& x = h[k & 3];
    x = (x ^ w) * 0xff51afd7ed558ccdull;
  }
  uint64_t out = static_cast<uint64_t>(n);
  for (uint64_t x : h) out = (out ^ (x ^ (x >> 29))) * 0xc4ceb9fe1a85ec53ull;
  return out;
}

// Every factor finite (else a message naming the module), and Σ|s|‖B‖‖A‖ of each side.
bool check_factors(const Side& a, const Side& b, Sums& s, std::string& message) {
  for (const Side* sd : {&a, &b})
    for (size_t i = 0; i < sd->parts.size(); ++i) {
      // A finite sum of squares shows every value finite in the same pass as the norm.
      const double nu = sd->ups[i].squaredNorm(), nd = sd->downs[i].squaredNorm();
      if ((!std::isfinite(nu) && !all_finite(sd->ups[i])) || (!std::isfinite(nd) && !all_finite(sd->downs[i]))) {
        message = "non-finite values in " + sd->parts[i]->source_module;
        return false;
      }
      (sd == &a ? s.k_a : s.k_b) += std::fabs(sd->parts[i]->scale) * std::sqrt(nu) * std::sqrt(nd);
    }
  return true;
}

// The terms of both sides on rows [s0, s1) (side A's first; `a_count` of them): every
// column of an up that is non-zero there. An internal error when the segmentation invariant
// breaks: the loader checks every up against its part's rows, and segment_cuts cuts at every
// part boundary and wrap point, so no input reaches it.
LV_CPU_CLONES Status segment_terms(const Side& a, const Side& b, const std::vector<std::vector<uint64_t>> (&down_hashes)[2],
                                   int64_t s0, int64_t s1, std::vector<Term>& terms, size_t& a_count, int64_t& m) {
  const int64_t q = s1 - s0;
  terms.clear();
  m = -1;
  for (int side = 0; side < 2; ++side) {
    const Side& sd = side == 0 ? a : b;
    for (size_t i = 0; i < sd.parts.size(); ++i) {
      const Part& p = *sd.parts[i];
      if (p.row_end <= s0 || p.row_begin >= s1) continue;
      const FactorMap& up = sd.ups[i];
      const FactorMap& down = sd.downs[i];
      m = down.cols();
      // Segments are cut at every part boundary and swap point: the part's rows of this
      // segment are contiguous in its own storage.
      const Eigen::Index r0 = local_row(p, s0);
      if (r0 + q > up.rows() || local_row(p, s1 - 1) != r0 + q - 1)
        return internal_error("rows " + std::to_string(s0) + ".." + std::to_string(s1) + " of " + p.source_module +
                              " are not contiguous in its up factor");
      // Columns of B that are non-zero on the segment (a NaN too, ±0 not), in one pass over
      // its rows: each column's bits but the sign OR-ed together (vectorized), then tested.
      const Eigen::Index r = up.cols();
      std::vector<uint64_t> bits(static_cast<size_t>(r), 0);
      for (Eigen::Index t = 0; t < q; ++t) {
        const double* row = up.row(r0 + t).data();
        for (Eigen::Index col = 0; col < r; ++col)
          bits[static_cast<size_t>(col)] |= std::bit_cast<uint64_t>(row[col]) & 0x7fffffffffffffffull;
      }
      std::vector<uint8_t> live(static_cast<size_t>(r));
      for (Eigen::Index col = 0; col < r; ++col) live[static_cast<size_t>(col)] = bits[static_cast<size_t>(col)] != 0;
      const double u_up = side == 0 ? 0 : st::dtype_unit_roundoff(p.up->dtype);
      const double u_down = side == 0 ? 0 : st::dtype_unit_roundoff(p.down->dtype);
      const double u_scale = side == 0 ? 0 : std::max(p.scale_roundoff, std::ldexp(1.0, -51));
      for (Eigen::Index col = 0; col < r; ++col) {
        if (!live[static_cast<size_t>(col)]) continue;
        const double* u0 = up.data() + r0 * r + col;
        // The hash of an up column covers its first rows; equality is checked in full.
        terms.push_back({{u0, r, 1.0}, down.row(col).data(), (side == 0 ? 1.0 : -1.0) * p.scale,
                         hash_values(u0, std::min<int64_t>(q, 32), r), down_hashes[side][i][static_cast<size_t>(col)],
                         u_up, u_down, u_scale});
      }
    }
    if (side == 0) a_count = terms.size();
  }
  return {};
}

// Groups of terms with equal down rows (by_up false) or equal up columns on the segment
// (by_up true). Up columns are matched on their first rows (hash, then values); the rest of
// every match is checked in one pass over the segment's rows (row-major: contiguous), and a
// term whose column differs there leaves its group.
std::vector<Group> group_terms(const std::vector<Term>& terms, bool by_up, int64_t q, int64_t m) {
  const int64_t prefix = std::min<int64_t>(q, 32);
  std::vector<Group> groups;
  std::vector<size_t> group_of(terms.size());
  std::unordered_map<uint64_t, std::vector<size_t>> by_hash;
  for (size_t k = 0; k < terms.size(); ++k) {
    const Term& t = terms[k];
    auto& same = by_hash[by_up ? t.up_hash : t.down_hash];
    bool merged = false;
    for (size_t g : same) {
      const Term& f = terms[groups[g].terms[0]];
      bool equal = true;
      if (by_up) {
        for (int64_t i = 0; i < prefix && equal; ++i) equal = f.up.p[i * f.up.stride] == t.up.p[i * t.up.stride];
      } else {
        equal = std::memcmp(f.down, t.down, static_cast<size_t>(m) * sizeof(double)) == 0;
      }
      if (equal) {
        groups[g].terms.push_back(k);
        group_of[k] = g;
        merged = true;
        break;
      }
    }
    if (!merged) {
      same.push_back(groups.size());
      group_of[k] = groups.size();
      groups.push_back({{k}});
    }
  }
  if (!by_up || prefix == q || groups.size() == terms.size()) return groups;
  std::vector<uint8_t> differs(terms.size(), 0);
  struct Pair {
    size_t k;  // a term, compared with its group's first term
    const double *p, *pf;
    int64_t s, sf;
    uint8_t differs;
  };
  std::vector<Pair> pairs;
  for (size_t k = 0; k < terms.size(); ++k) {
    const Term& f = terms[groups[group_of[k]].terms[0]];
    if (&f != &terms[k]) pairs.push_back({k, terms[k].up.p, f.up.p, terms[k].up.stride, f.up.stride, 0});
  }
  for (int64_t i = prefix; i < q; ++i)
    for (Pair& x : pairs) x.differs |= x.p[i * x.s] != x.pf[i * x.sf];
  for (const Pair& x : pairs) differs[x.k] = x.differs;
  std::vector<Group> out;
  for (const Group& g : groups) {
    Group kept;
    for (size_t k : g.terms) {
      if (differs[k]) out.push_back({{k}});
      else kept.terms.push_back(k);
    }
    out.push_back(std::move(kept));
  }
  return out;
}

// For each term, a term of side A (index < a_count) in the same group, or -1.
std::vector<int64_t> side_a_match(const std::vector<Group>& groups, size_t count, size_t a_count) {
  std::vector<int64_t> match(count, -1);
  for (const Group& g : groups) {
    int64_t a = -1;
    for (size_t k : g.terms)
      if (k < a_count) a = static_cast<int64_t>(k);
    for (size_t k : g.terms) match[k] = a;
  }
  return match;
}

// U, V of ΔW_A − ΔW_B on the segment with the shared factors merged: one column per group
// of the grouping with fewer groups.
void merged_difference(const std::vector<Term>& terms, const std::vector<Group>& by_down, const std::vector<Group>& by_up,
                       std::vector<Column>& ucols, std::vector<Column>& vcols) {
  const bool shared_up = by_up.size() < by_down.size();
  for (const Group& g : shared_up ? by_up : by_down) {
    Column merged;
    for (size_t k : g.terms) {
      const Term& t = terms[k];
      if (shared_up) merged.push_back({t.down, 1, t.coef});
      else merged.push_back({t.up.p, t.up.stride, t.coef});
    }
    const Term& first = terms[g.terms[0]];
    if (shared_up) {
      ucols.push_back({first.up});
      vcols.push_back(std::move(merged));
    } else {
      ucols.push_back(std::move(merged));
      vcols.push_back({{first.down, 1, 1.0}});
    }
  }
}

// Side B's rounding on one segment (method: equivalence.h, "Tolerance"). W = ΔW_A on the
// segment = U_A·V_A (U_A's columns carry A's scales). For each B term s·ũ·ṽᵀ whose up or
// down is not bit-for-bit a factor of A (those were not rounded), the entries of ũ and ṽ
// moved by at most u·|entry|, its scale by u_s·|s|:
//   |⟨E, W⟩| ≤ Σ |s|(ū_u‖ũ‖‖Wṽ‖ + ū_v‖ṽ‖‖Wᵀũ‖ + ū_uū_v‖ũ‖‖ṽ‖‖W‖ + u_s|ũᵀWṽ|),
//   |E| ≤ Σ d·|ũ||ṽ|ᵀ elementwise, d = |s|(ū_u + ū_v + ū_uū_v + u_s(1+ū_u)(1+ū_v)),
// with ‖Wṽ‖² = gᵀ(U_AᵀU_A)g for g = V_A·ṽ (a column of V_A's Gram when ṽ is a down of A),
// ‖Wᵀũ‖² likewise, and ‖Σ d|ũ||ṽ|ᵀ‖² from the Grams of the absolute factors.
void segment_bounds(GramCache& cache, const std::vector<Term>& terms, size_t a_count, const std::vector<int64_t>& down_match,
                    const std::vector<int64_t>& up_match, int64_t q, int64_t m, double norm_seg2, Sums& s) {
  const size_t na = a_count, nb = terms.size() - a_count;
  if (nb == 0) return;
  std::vector<Column> ua, va, ub, vb;
  for (size_t j = 0; j < terms.size(); ++j) {
    (j < na ? ua : ub).push_back({{terms[j].up.p, terms[j].up.stride, j < na ? terms[j].coef : 1.0}});
    (j < na ? va : vb).push_back({{terms[j].down, 1, 1.0}});
  }
  // |ũ|ᵀ|ũ'| and |ṽ|ᵀ|ṽ'| of B's terms (a part's downs are cached across its segments);
  // their diagonals are ‖ũ‖², ‖ṽ‖².
  const MatrixXd gub = cache.gram(Kind::kUp, q, ub, true), gvb = cache.gram(Kind::kDown, m, vb, true);
  Eigen::VectorXd d(static_cast<Eigen::Index>(nb));
  std::vector<double> uu(nb), uv(nb);
  bool any_up = false, any_down = false;  // a rounded factor: its cross products are needed
  for (size_t j = 0; j < nb; ++j) {
    const Term& t = terms[na + j];
    uu[j] = t.u_up > 0 && up_match[na + j] < 0 ? t.u_up / (1 - t.u_up) : 0.0;
    uv[j] = t.u_down > 0 && down_match[na + j] < 0 ? t.u_down / (1 - t.u_down) : 0.0;
    d(static_cast<Eigen::Index>(j)) = std::fabs(t.coef) * (uu[j] + uv[j] + uu[j] * uv[j] + t.u_scale * (1 + uu[j]) * (1 + uv[j]));
    any_up = any_up || up_match[na + j] < 0;
    any_down = any_down || down_match[na + j] < 0;
  }
  s.round2 += std::max(0.0, (d.asDiagonal() * gub * d.asDiagonal()).cwiseProduct(gvb).sum());
  double s_a = 0, s_b = 0;
  for (size_t j = 0; j < nb; ++j) s_b += std::fabs(terms[na + j].coef) * std::sqrt(gub(j, j) * gvb(j, j));
  if (na > 0) {
    const MatrixXd gua = cache.gram(Kind::kUp, q, ua), gva = cache.gram(Kind::kDown, m, va);
    for (size_t j = 0; j < na; ++j) s_a += std::sqrt(std::max(0.0, gua(j, j)) * std::max(0.0, gva(j, j)));
    // V_A·ṽ and U_Aᵀ·ũ for every B term: columns of A's Grams where the factor is A's
    // own, else one product for all.
    MatrixXd gv, gu;
    if (any_down) gv = cache.cross(Kind::kDown, m, va, vb);
    if (any_up) gu = cache.cross(Kind::kUp, q, ua, ub);
    for (size_t j = 0; j < nb; ++j) {
      const Term& t = terms[na + j];
      const int64_t dm = down_match[na + j], um = up_match[na + j];
      const Eigen::VectorXd g = dm >= 0 ? Eigen::VectorXd(gva.col(dm)) : Eigen::VectorXd(gv.col(static_cast<Eigen::Index>(j)));
      const double c = um >= 0 ? terms[static_cast<size_t>(um)].coef : 0.0;
      const Eigen::VectorXd h = um >= 0 && c != 0 ? Eigen::VectorXd(gua.col(um) / c)
                                                  : any_up ? Eigen::VectorXd(gu.col(static_cast<Eigen::Index>(j)))
                                                           : Eigen::VectorXd(build_factor(Kind::kUp, q, ua).map().transpose() *
                                                                             build_factor(Kind::kUp, q, {ub[j]}).map());
      const double z = h.dot(g);  // ũᵀ·W·ṽ
      s.inner += -t.coef * z;
      const double nu = std::sqrt(gub(j, j)), nv = std::sqrt(gvb(j, j)), sc = std::fabs(t.coef);
      const double wv = std::sqrt(std::max(0.0, g.dot(gua * g))), wtu = std::sqrt(std::max(0.0, h.dot(gva * h)));
      s.gain_bound += sc * (uu[j] * nu * wv + uv[j] * nv * wtu + uu[j] * uv[j] * nu * nv * std::sqrt(norm_seg2) + t.u_scale * std::fabs(z));
    }
  }
  // Merging a group's columns sums up to n terms in double (equal terms of the two sides
  // may leave a residue there): at most (n + 1)·ε of Σ|s|‖u‖‖v‖ over all terms.
  s.err_error += 4.0 * static_cast<double>(na + nb + 1) * std::ldexp(1.0, -53) * (s_a + s_b);
  // Each computed inner product of length q or m carries at most (len + n)·ε of the sums
  // of absolute products; twice for the two factors of the quadratic forms.
  s.inner_error += 4.0 * static_cast<double>(q + m + static_cast<int64_t>(na + nb) + 2) * std::ldexp(1.0, -53) * s_a * (s_a + s_b);
}

// Low-rank targets: per row segment, the difference of the two sides as U·Vᵀ with shared
// factors merged, its norm from Grams or (under cancellation) one thin QR; side A's norm,
// the inner product of the sides and the bounds of side B's rounding on the same Grams.
// False (with `message`) on non-finite factors; an error on a broken invariant.
Result<bool> low_rank_errors(const Side& a, const Side& b, int64_t rows, Sums& s, std::string& message) {
  if (!check_factors(a, b, s, message)) return false;
  // Down rows are compared by value: a hash of each row's first values, computed once per
  // part; rows with equal hashes are compared in full.
  std::vector<std::vector<uint64_t>> down_hashes[2];
  for (int side = 0; side < 2; ++side)
    for (const FactorMap& d : (side == 0 ? a : b).downs) {
      std::vector<uint64_t> h(static_cast<size_t>(d.rows()));
      for (Eigen::Index r = 0; r < d.rows(); ++r)
        h[static_cast<size_t>(r)] = hash_values(d.row(r).data(), std::min<Eigen::Index>(d.cols(), 64), 1);
      down_hashes[side].push_back(std::move(h));
    }
  GramCache cache;
  std::vector<Term> terms;
  const std::vector<int64_t> cut = segment_cuts(rows, a.parts, b.parts);
  for (size_t c = 0; c + 1 < cut.size(); ++c) {
    const int64_t s0 = cut[c], s1 = cut[c + 1], q = s1 - s0;
    size_t a_count = 0;
    int64_t m = -1;
    LV_TRY(segment_terms(a, b, down_hashes, s0, s1, terms, a_count, m));
    if (terms.empty()) continue;
    // Side A's own norm, from its columns alone (no cancellation between sides).
    double norm_seg2 = 0;
    if (a_count > 0) {
      std::vector<Column> ua, va;
      for (size_t j = 0; j < a_count; ++j) {
        ua.push_back({{terms[j].up.p, terms[j].up.stride, terms[j].coef}});
        va.push_back({{terms[j].down, 1, 1.0}});
      }
      norm_seg2 = std::max(0.0, product_norm2(cache, q, m, ua, va));
      s.norm_a2 += norm_seg2;
    }
    const std::vector<Group> by_down = group_terms(terms, false, q, m), by_up = group_terms(terms, true, q, m);
    std::vector<Column> ucols, vcols;
    merged_difference(terms, by_down, by_up, ucols, vcols);
    double s_diff = 0;
    s.err2 += std::max(0.0, product_norm2(cache, q, m, ucols, vcols, &s_diff));
    s.err_error += 16.0 * static_cast<double>(q + m + static_cast<int64_t>(ucols.size()) + 1) * std::ldexp(1.0, -53) * s_diff;
    segment_bounds(cache, terms, a_count, side_a_match(by_down, terms.size(), a_count),
                   side_a_match(by_up, terms.size(), a_count), q, m, norm_seg2, s);
  }
  return true;
}

// Marks the columns of `rank`-wide rows [r0, r0+q) that hold a non-zero bit pattern; false
// when a value is not finite. The bits of each column are OR-ed row by row (contiguous,
// vectorized), then tested once.
template <typename U>
bool live_columns(const uint8_t* data, int64_t r0, int64_t q, int64_t rank, U exp_mask, std::vector<uint8_t>& live) {
  std::vector<U> bits(static_cast<size_t>(rank), 0);
  U bad = 0;
  for (int64_t t = 0; t < q; ++t) {
    const uint8_t* row = data + static_cast<size_t>((r0 + t) * rank) * sizeof(U);
    for (int64_t c = 0; c < rank; ++c) {
      const U x = st::load_bits<U>(row + static_cast<size_t>(c) * sizeof(U));
      bits[static_cast<size_t>(c)] |= x;
      bad |= static_cast<U>((x & exp_mask) == exp_mask);
    }
  }
  for (int64_t c = 0; c < rank; ++c) live[static_cast<size_t>(c)] |= bits[static_cast<size_t>(c)] != 0;
  return bad == 0;
}

// A hash of `n` bytes, 8 at a time in four independent lanes (no serial multiply chain).
uint64_t hash_bytes(const uint8_t* p, size_t n) {
  uint64_t h[4] = {0xcbf29ce484222325ull, 0x84222325cbf29ce4ull, 0x9e3779b97f4a7c15ull, 0xc2b2ae3d27d4eb4full};
  size_t k = 0;
  for (; k + 8 <= n; k += 8) {
    uint64_t& lane = h[(k >> 3) & 3];
    lane = (lane ^ st::load_bits<uint64_t>(p + k)) * 0x100000001b3ull;
  }
  for (; k < n; ++k) h[0] = (h[0] ^ p[k]) * 0x100000001b3ull;
  return ((h[0] ^ (h[1] >> 7)) * 0xff51afd7ed558ccdull) ^ ((h[2] ^ (h[3] >> 11)) * 0xc4ceb9fe1a85ec53ull);
}

// A hash per row of a row-major matrix; false when a value is not finite.
template <typename U>
bool row_hashes(const uint8_t* data, uint64_t rows, uint64_t cols, U exp_mask, std::vector<uint64_t>& out) {
  out.resize(static_cast<size_t>(rows));
  const size_t row_bytes = static_cast<size_t>(cols) * sizeof(U);
  for (uint64_t r = 0; r < rows; ++r) out[static_cast<size_t>(r)] = hash_bytes(data + r * row_bytes, row_bytes);
  U bad = 0;
  for (uint64_t i = 0; i < rows * cols; ++i) {
    const U x = st::load_bits<U>(data + i * sizeof(U));
    bad |= static_cast<U>((x & exp_mask) == exp_mask);
  }
  return bad == 0;
}

template <typename U>
bool same_column(const uint8_t* a, size_t a_stride, const uint8_t* b, size_t b_stride, int64_t q) {
  for (int64_t t = 0; t < q; ++t)
    if (st::load_bits<U>(a + static_cast<size_t>(t) * a_stride) != st::load_bits<U>(b + static_cast<size_t>(t) * b_stride)) return false;
  return true;
}

// A low-rank part of bytes_cancel: its dtypes' bit layouts and a hash per down row. When
// the target's parts differ in scale or dtype, its terms are compared by value, each down
// row as 2^e·v̂ (v̂: the row over the power of two of its first non-zero value, exact).
struct PartBytes {
  const Part* p;
  st::IeeeBits up, down;
  size_t down_cols, down_row_bytes;
  std::vector<uint64_t> down_hash;  // per down row (of v̂ by value)
  bool by_value;
  std::vector<double> down_hat;             // by value: v̂ per row, rank × cols
  std::vector<int> down_exp;                // by value: e per row
  mutable std::vector<double> up_values;    // by value: the up decoded, on first need
};

// x·f for every x, f a power of two: false when a product is not exact (a non-finite value,
// an overflow, or a non-zero result below double's normal range). Branch-free, vectorized.
LV_CPU_CLONES bool scale_exactly(double* v, size_t n, double f) {
  int bad = 0;
  for (size_t i = 0; i < n; ++i) {
    const double x = v[i], y = x * f, m = std::fabs(y);
    bad |= static_cast<int>(x != 0.0) & static_cast<int>(m < std::numeric_limits<double>::min());
    bad |= static_cast<int>(!(m <= std::numeric_limits<double>::max()));
    v[i] = y;
  }
  return bad == 0;
}

// 2^-e for a value's exponent e (x = m·2^e, 0.5 ≤ |m| < 1), or 0 when out of a safe range.
double unscale_of(double x, int& e) {
  std::frexp(x, &e);
  return e >= -1000 && e <= 1000 ? std::ldexp(1.0, -e) : 0.0;
}

// The part's down rows as 2^e·v̂ in double, every v̂ exact, and a hash per v̂ (of its first
// values; equal hashes are compared in full). False when a value is not finite or a row's
// range does not fit (the numerical path decides).
bool normalized_down_rows(const Part& p, PartBytes& b) {
  const size_t rank = static_cast<size_t>(p.down->shape[0]), cols = b.down_cols;
  b.down_hat.resize(rank * cols);
  b.down_exp.assign(rank, 0);
  b.down_hash.resize(rank);
  st::decode_to_double(p.down->dtype, p.down->data, b.down_hat.size(), b.down_hat.data());
  for (size_t r = 0; r < rank; ++r) {
    double* row = b.down_hat.data() + r * cols;
    const double* nz = std::find_if(row, row + cols, [](double x) { return x != 0.0; });
    const double f = nz == row + cols ? 1.0 : unscale_of(*nz, b.down_exp[r]);
    if (f == 0.0 || !scale_exactly(row, cols, f)) return false;
    b.down_hash[r] = hash_values(row, std::min<int64_t>(static_cast<int64_t>(cols), 64), 1);
  }
  return true;
}

// A non-zero column of a part's up on a segment of bytes_cancel.
struct ByteTerm {
  const PartBytes* b;
  int64_t r0;  // the part's own row of the segment's first row
  int64_t col;
  bool used;
};

// The up columns of two terms equal on the segment's q rows.
bool same_up_column(const ByteTerm& ta, const ByteTerm& tb, int64_t q) {
  const PartBytes &ba = *ta.b, &bb = *tb.b;
  const size_t es = ba.up.bytes;
  const size_t ra = static_cast<size_t>(ba.p->up->shape[1]), rb = static_cast<size_t>(bb.p->up->shape[1]);
  const uint8_t* a0 = ba.p->up->data + (static_cast<size_t>(ta.r0) * ra + static_cast<size_t>(ta.col)) * es;
  const uint8_t* b0 = bb.p->up->data + (static_cast<size_t>(tb.r0) * rb + static_cast<size_t>(tb.col)) * es;
  return st::with_bits(ba.up.bytes, [&](auto u) { return same_column<decltype(u)>(a0, ra * es, b0, rb * es, q); });
}

// Bytes: the same scale, dtypes and down-row bytes (the terms cancel if their up columns
// are equal). By value: the same v̂ (the rest is same_term_by_value's).
bool same_down(const ByteTerm& ta, const ByteTerm& tb) {
  const PartBytes &ba = *ta.b, &bb = *tb.b;
  if (ba.by_value != bb.by_value || ba.down_cols != bb.down_cols) return false;
  if (ba.by_value) {
    const size_t n = ba.down_cols;
    return std::memcmp(ba.down_hat.data() + static_cast<size_t>(ta.col) * n,
                       bb.down_hat.data() + static_cast<size_t>(tb.col) * n, n * sizeof(double)) == 0;
  }
  return ba.p->scale == bb.p->scale && ba.p->up->dtype == bb.p->up->dtype && ba.p->down->dtype == bb.p->down->dtype &&
         std::memcmp(ba.p->down->data + static_cast<size_t>(ta.col) * ba.down_row_bytes,
                     bb.p->down->data + static_cast<size_t>(tb.col) * bb.down_row_bytes, ba.down_row_bytes) == 0;
}

const double* up_values(const PartBytes& b) {
  if (b.up_values.empty()) {
    b.up_values.resize(static_cast<size_t>(b.p->up->numel));
    st::decode_to_double(b.p->up->dtype, b.p->up->data, b.up_values.size(), b.up_values.data());
  }
  return b.up_values.data();
}

// By value, for terms with the same v̂ (down rows 2^ea·v̂ and 2^eb·v̂) whose up columns on
// the segment are u_b = 2^k·u_a: the coefficients agree exactly, s_b·2^(k + eb) = s_a·2^ea;
// then s_a·u_a·v_aᵀ = s_b·u_b·v_bᵀ.
bool coefficients_agree(const ByteTerm& ta, const ByteTerm& tb, int k) {
  const PartBytes &ba = *ta.b, &bb = *tb.b;
  const int shift = k + bb.down_exp[static_cast<size_t>(tb.col)] - ba.down_exp[static_cast<size_t>(ta.col)];
  if (shift < -1000 || shift > 1000) return false;
  const double c = bb.p->scale * std::ldexp(1.0, shift);
  return c == ba.p->scale && std::isfinite(c) && (c == 0.0 || std::fabs(c) >= std::numeric_limits<double>::min());
}

// By value: B's up column is 2^k times A's on the segment's q rows (k = 0 when their bytes
// are equal) and the coefficients agree.
bool same_term_by_value(const ByteTerm& ta, const ByteTerm& tb, int64_t q) {
  const PartBytes &ba = *ta.b, &bb = *tb.b;
  if (ba.p->up->dtype == bb.p->up->dtype && same_up_column(ta, tb, q)) return coefficients_agree(ta, tb, 0);
  const size_t ra = static_cast<size_t>(ba.p->up->shape[1]), rb = static_cast<size_t>(bb.p->up->shape[1]);
  const double* a = up_values(ba) + static_cast<size_t>(ta.r0) * ra + static_cast<size_t>(ta.col);
  const double* b = up_values(bb) + static_cast<size_t>(tb.r0) * rb + static_cast<size_t>(tb.col);
  int64_t t0 = 0;
  while (t0 < q && a[static_cast<size_t>(t0) * ra] == 0.0 && b[static_cast<size_t>(t0) * rb] == 0.0) ++t0;
  if (t0 == q || a[static_cast<size_t>(t0) * ra] == 0.0 || b[static_cast<size_t>(t0) * rb] == 0.0) return false;
  int ea = 0, eb = 0;
  std::frexp(a[static_cast<size_t>(t0) * ra], &ea);
  std::frexp(b[static_cast<size_t>(t0) * rb], &eb);
  const int k = eb - ea;
  if (k < -1000 || k > 1000) return false;
  const double f = std::ldexp(1.0, k);
  for (int64_t t = 0; t < q; ++t) {
    const double x = a[static_cast<size_t>(t) * ra], y = x * f;
    // x·f is exact unless it falls below the normal range: then nothing is shown.
    if (y != b[static_cast<size_t>(t) * rb] || (x != 0.0 && std::fabs(y) < std::numeric_limits<double>::min())) return false;
  }
  return coefficients_agree(ta, tb, k);
}

// The up columns of every pair equal on the segment's q rows, in one pass over the rows
// (row-major storage: each row of every up is read once, not once per column). Pairs of
// adjacent columns of the same two parts compare as one run of bytes per row.
bool up_columns_equal(const std::vector<std::pair<const ByteTerm*, const ByteTerm*>>& pairs, int64_t q) {
  struct Run {
    const ByteTerm *a, *b;
    int64_t len;
  };
  std::vector<Run> runs;
  for (const auto& [a, b] : pairs) {
    Run* last = runs.empty() ? nullptr : &runs.back();
    if (last && last->a->b == a->b && last->b->b == b->b && a->col == last->a->col + last->len &&
        b->col == last->b->col + last->len)
      ++last->len;
    else
      runs.push_back({a, b, 1});
  }
  const auto at = [](const ByteTerm& x, int64_t t) {
    const st::TensorView& up = *x.b->p->up;
    return up.data + (static_cast<size_t>(x.r0 + t) * up.shape[1] + static_cast<size_t>(x.col)) * x.b->up.bytes;
  };
  for (int64_t t = 0; t < q; ++t)
    for (const Run& r : runs)
      if (std::memcmp(at(*r.a, t), at(*r.b, t), static_cast<size_t>(r.len) * r.a->b->up.bytes) != 0) return false;
  return true;
}

// Pairs every term of side B with an unused term of side A equal to it (first candidate in
// hash order): the same down row (by value: v̂) and an equal up column on the segment's q
// rows. With `check_up`, each candidate's column as it is tried (by value: up to a power of
// two); without, the pairs chosen on the downs alone (by value: with the ups taken as
// copies) and all their columns compared at the end in one pass over the rows (the same
// pairs when it succeeds; a failure is "not shown", and the caller tries again with check_up).
bool pair_terms(std::vector<ByteTerm> (&terms)[2], int64_t q, bool check_up) {
  std::unordered_multimap<uint64_t, size_t> by_hash;
  for (size_t i = 0; i < terms[0].size(); ++i) {
    terms[0][i].used = false;
    by_hash.emplace(terms[0][i].b->down_hash[static_cast<size_t>(terms[0][i].col)], i);
  }
  std::vector<std::pair<const ByteTerm*, const ByteTerm*>> pairs;
  for (const ByteTerm& tb : terms[1]) {
    const ByteTerm* match = nullptr;
    auto [lo, hi] = by_hash.equal_range(tb.b->down_hash[static_cast<size_t>(tb.col)]);
    for (auto it = lo; it != hi && !match; ++it) {
      ByteTerm& ta = terms[0][it->second];
      if (ta.used || !same_down(ta, tb)) continue;
      // By value without check_up: the up columns are taken as copies (k = 0), checked below.
      const bool by_value = ta.b->by_value;
      if (by_value && !check_up && (ta.b->p->up->dtype != tb.b->p->up->dtype || !coefficients_agree(ta, tb, 0))) continue;
      if (check_up && !(by_value ? same_term_by_value(ta, tb, q) : same_up_column(ta, tb, q))) continue;
      ta.used = true;
      match = &ta;
    }
    if (!match) return false;
    pairs.emplace_back(match, &tb);
  }
  if (check_up || pairs.empty()) return true;
  return up_columns_equal(pairs, q);
}

// Scales a power of two apart (or equal): only then can a factor folded with their ratio
// be exact.
bool power_of_two_apart(double a, double b) {
  if (a == b) return true;
  if (!std::isfinite(a) || !std::isfinite(b) || a == 0 || b == 0) return false;
  int ea = 0, eb = 0;
  return std::frexp(std::fabs(a), &ea) == std::frexp(std::fabs(b), &eb);
}

// Whether a low-rank part of `other` may pair with p's terms: the same scale and dtypes
// (bytes) or a scale a power of two apart (by value).
bool has_counterpart(const Part& p, const std::vector<const Part*>& other, bool by_value) {
  return std::any_of(other.begin(), other.end(), [&](const Part* o) {
    return o->form == PartForm::kLowRank &&
           (by_value ? power_of_two_apart(o->scale, p.scale)
                     : o->scale == p.scale && o->up->dtype == p.up->dtype && o->down->dtype == p.down->dtype);
  });
}

// A part's dtypes and a hash per down row, of its bytes or (by value) of its row v̂; false:
// not shown (another dtype, a non-finite value, a row whose range does not fit).
bool part_bytes(const Part* p, bool by_value, PartBytes& b) {
  b = PartBytes{p, st::ieee_bits(p->up->dtype), st::ieee_bits(p->down->dtype), 0, 0, {}, by_value, {}, {}, {}};
  const uint64_t rank = p->down->shape[0];
  if (!b.up.bytes || !b.down.bytes || rank == 0) return false;
  b.down_cols = static_cast<size_t>(p->down->numel / rank);
  b.down_row_bytes = b.down_cols * b.down.bytes;
  if (by_value) return normalized_down_rows(*p, b);
  return st::with_bits(b.down.bytes, [&](auto u) {
    using U = decltype(u);
    return row_hashes<U>(p->down->data, rank, b.down_cols, static_cast<U>(b.down.exp_mask), b.down_hash);
  });
}

// The terms of each side on rows [s0, s1): every column of an up that is non-zero there;
// false: not shown (a non-finite value, rows not contiguous).
bool segment_byte_terms(const std::vector<PartBytes> (&sides)[2], int64_t s0, int64_t s1, std::vector<ByteTerm> (&terms)[2],
                        std::vector<uint8_t>& live) {
  const int64_t q = s1 - s0;
  for (int side = 0; side < 2; ++side) {
    terms[side].clear();
    for (const PartBytes& b : sides[side]) {
      const Part& p = *b.p;
      if (p.row_end <= s0 || p.row_begin >= s1) continue;
      const int64_t r0 = local_row(p, s0);
      if (local_row(p, s1 - 1) != r0 + q - 1) return false;
      const int64_t rank = static_cast<int64_t>(p.up->shape[1]);
      live.assign(static_cast<size_t>(rank), 0);
      const bool finite = st::with_bits(b.up.bytes, [&](auto u) {
        using U = decltype(u);
        return live_columns<U>(p.up->data, r0, q, rank, static_cast<U>(b.up.exp_mask), live);
      });
      if (!finite) return false;
      for (int64_t col = 0; col < rank; ++col)
        if (live[static_cast<size_t>(col)]) terms[side].push_back({&b, r0, col, false});
    }
  }
  return true;
}

// Exact cancellation shown without arithmetic that rounds: the common case of a conversion
// that copies factors bit for bit (rename, shared-down, alpha-rewrite, splitting back), or
// that folds a scale into a factor, or splits it between both, where it only moves
// exponents (alpha/rank a power of two, as kohya's alpha = rank/2 → diffusers). On every
// row segment, each term (a column of an up that is non-zero there, with its down row)
// pairs one to one with a term of the other side equal to it: the same scale and bytes
// when every part has one scale and dtype (nothing is decoded); else by value, down rows
// equal up to a power of two, up columns too, and the scales making up the difference
// exactly. The terms of ΔW_A − ΔW_B then cancel exactly. False means "not shown" (a dtype
// other than F16/BF16/F32/F64, a fold that rounds, a non-finite value, a real difference):
// the numerical path decides.
bool bytes_cancel(const std::vector<const Part*>& pa, const std::vector<const Part*>& pb, int64_t rows) {
  const Part* first = nullptr;
  bool by_value = false;  // some parts differ in scale or dtype
  for (const auto* list : {&pa, &pb})
    for (const Part* p : *list) {
      if (p->form == PartForm::kBiasOnly) continue;
      if (p->form != PartForm::kLowRank) return false;
      if (!first) first = p;
      by_value |= p->scale != first->scale || p->down->dtype != first->down->dtype || p->up->dtype != first->up->dtype;
    }
  // A part with no possible counterpart and a non-zero bit in its up is shown not to cancel
  // before anything is hashed (a fold that rounds, another dtype: the common numerical cases).
  for (int side = 0; side < 2; ++side)
    for (const Part* p : side == 0 ? pa : pb) {
      if (p->form == PartForm::kBiasOnly || has_counterpart(*p, side == 0 ? pb : pa, by_value)) continue;
      const std::span<const uint8_t> up = p->up->bytes();
      if (std::any_of(up.begin(), up.end(), [](uint8_t x) { return x != 0; })) return false;
    }
  std::vector<PartBytes> sides[2];
  for (int side = 0; side < 2; ++side)
    for (const Part* p : side == 0 ? pa : pb) {
      if (p->form == PartForm::kBiasOnly) continue;
      if (!part_bytes(p, by_value, sides[side].emplace_back())) return false;
    }
  const std::vector<int64_t> cut = segment_cuts(rows, pa, pb);
  std::vector<uint8_t> live;
  std::vector<ByteTerm> terms[2];
  for (size_t c = 0; c + 1 < cut.size(); ++c) {
    if (!segment_byte_terms(sides, cut[c], cut[c + 1], terms, live) || terms[0].size() != terms[1].size()) return false;
    const int64_t q = cut[c + 1] - cut[c];
    if (!pair_terms(terms, q, false) && !pair_terms(terms, q, true)) return false;
  }
  return true;
}

// Targets with LoKr / LoHa / dense parts: evaluated densely, row by row.
bool dense_errors(const std::vector<const Part*>& pa, const std::vector<const Part*>& pb, int64_t rows, int64_t cols,
                  Sums& s, std::string& message) {
  double norm_b2 = 0;
  std::vector<PartRows> ea, eb;
  for (const Part* p : pa) ea.emplace_back(*p);
  for (const Part* p : pb) eb.emplace_back(*p);
  std::vector<double> ra(static_cast<size_t>(cols)), rb(static_cast<size_t>(cols)), tmp(static_cast<size_t>(cols));
  auto row_of = [&](const std::vector<const Part*>& ps, const std::vector<PartRows>& ev, int64_t t, std::vector<double>& out) {
    std::fill(out.begin(), out.end(), 0.0);
    for (size_t i = 0; i < ps.size(); ++i) {
      const Part& p = *ps[i];
      if (t < p.row_begin || t >= p.row_end || p.form == PartForm::kBiasOnly) continue;
      ev[i].row(local_row(p, t), tmp.data());
      for (int64_t j = 0; j < cols; ++j) out[static_cast<size_t>(j)] += tmp[static_cast<size_t>(j)];
    }
  };
  for (int64_t t = 0; t < rows; ++t) {
    row_of(pa, ea, t, ra);
    row_of(pb, eb, t, rb);
    for (int64_t j = 0; j < cols; ++j) {
      const double x = ra[static_cast<size_t>(j)], y = rb[static_cast<size_t>(j)];
      if (!std::isfinite(x) || !std::isfinite(y)) {
        message = "non-finite values in the delta of row " + std::to_string(t);
        return false;
      }
      s.err2 += (x - y) * (x - y);
      s.norm_a2 += x * x;
      s.inner += x * y;
      norm_b2 += y * y;
    }
  }
  // Dense deltas have no factor norms: K = 1 (rounding of the values themselves).
  s.k_a = std::sqrt(s.norm_a2);
  s.k_b = std::sqrt(norm_b2);
  return true;
}

// The errors, gain and tolerances of a target from its sums (method: equivalence.h).
void weigh(ModuleResult& r, const Sums& s, bool dense, bool exact, double u, const CompareOptions& opt) {
  r.norm_a = std::sqrt(s.norm_a2);
  r.abs_error = std::sqrt(s.err2);
  r.relative_error = rel(r.abs_error, r.norm_a);
  r.gain = r.norm_a > 0 && !exact ? s.inner / s.norm_a2 : 1.0;
  const double off = r.gain - 1;
  r.residual = std::isfinite(r.relative_error) ? std::sqrt(std::max(0.0, r.relative_error * r.relative_error - off * off))
                                               : r.relative_error;
  if (exact) {
    r.tolerance = r.gain_tolerance = 0;  // nothing was rounded
  } else if (dense) {
    const double k = r.norm_a > 0 ? std::max(s.k_a, s.k_b) / r.norm_a : 1.0;
    r.tolerance = r.gain_tolerance = 4 * u * std::max(1.0, k);
  } else if (r.norm_a > 0) {
    // The Gram path gives err² to 2⁻²⁰ of itself; err_error bounds the QR path's rounding.
    r.tolerance = (std::sqrt(s.round2) + s.err_error) * (1 + std::ldexp(1.0, -18)) / r.norm_a;
    r.gain_tolerance = (s.gain_bound + s.inner_error) / s.norm_a2;
  }
  if (opt.tolerance_override > 0) r.tolerance = r.gain_tolerance = opt.tolerance_override;
  // The smallest scale error of this target the check is sure to catch: it moves the gain
  // past its tolerance, or the error past its.
  r.resolution = std::min(r.gain_tolerance + std::fabs(off), r.tolerance + r.relative_error);
}

// Bias deltas: each entry of side B's bias rounded once to its dtype, its scale to its
// alpha's dtype.
double bias_tolerance(const std::vector<const Part*>& pb) {
  double u = 0;
  for (const Part* p : pb)
    if (p->bias) u = std::max(u, st::dtype_unit_roundoff(p->bias->dtype) + p->scale_roundoff);
  return (u + std::ldexp(1.0, -50)) * (1 + std::ldexp(1.0, -6));
}

// A likely cause when a target's gain matches one of the common scale bugs: alpha ignored
// (a .alpha tensor or the metadata's), the scale applied twice, rsLoRA's alpha/√rank read
// as alpha/rank or the reverse, a halved or doubled strength, a flipped sign.
std::string scale_cause(double gain, double gain_tol, const std::vector<const Part*>& pa) {
  double s = 0;
  int64_t rank = 0;
  bool same = true;
  for (const Part* p : pa) {
    if (p->form != PartForm::kLowRank) continue;
    if (rank == 0) s = p->scale, rank = p->rank();
    else same = same && p->scale == s && p->rank() == rank;
  }
  char sv[32];
  std::snprintf(sv, sizeof sv, "%.4g", s);
  const std::string rk = std::to_string(rank);
  std::vector<std::pair<double, std::string>> causes = {
      {0.5, "half the strength"}, {2.0, "double the strength"}, {-1.0, "the sign flipped"}};
  if (rank > 0 && same && s != 0 && std::fabs(s - 1) > 1e-6) {
    causes.emplace_back(1 / s, std::string("alpha ignored: scale 1 instead of alpha/rank = ") + sv);
    causes.emplace_back(s, std::string("the scale applied twice: alpha/rank = ") + sv + " folded and also kept");
  }
  if (rank > 1 && same) {
    const double rt = std::sqrt(static_cast<double>(rank));
    causes.emplace_back(1 / rt, "rsLoRA's alpha/sqrt(rank) read as alpha/rank (rank " + rk + ")");
    causes.emplace_back(rt, "alpha/rank read as rsLoRA's alpha/sqrt(rank) (rank " + rk + ")");
  }
  for (const auto& [g, why] : causes)
    if (std::fabs(gain / g - 1) <= std::max(4 * gain_tol, 1e-3)) return "likely " + why;
  return "";
}

// The status and message of a target from what held: a scale error is named (with its
// likely cause), other differences say which delta differs.
void judge(ModuleResult& r, bool weight_ok, bool gain_ok, bool bias_ok, bool magnitude_ok, const std::string& magnitude_message,
           const std::vector<const Part*>& pa, const std::vector<const Part*>& pb) {
  if (weight_ok && gain_ok && bias_ok && magnitude_ok) {
    r.status = ModuleStatus::kEquivalent;
  } else if (pb.empty()) {
    r.status = ModuleStatus::kMissingInB;
    r.message = "the converted side has no delta for this module";
  } else if (pa.empty()) {
    r.status = ModuleStatus::kMissingInA;
    r.message = "the converted side changes a module the source does not";
  } else {
    r.status = ModuleStatus::kDifferent;
    // A scale error: the gain is off and what is left beside it is within the rounding.
    r.scale_error = !gain_ok && r.residual <= r.tolerance;
    if (r.scale_error) {
      r.scale_cause = scale_cause(r.gain, r.gain_tolerance, pa);
      r.message = "applies " + gain_text(r.gain) + " the source's delta" +
                  (r.scale_cause.empty() ? "" : " (" + r.scale_cause + ")");
    }
    const auto add = [&](const std::string& m) { r.message = r.message.empty() ? m : r.message + "; " + m; };
    if (!weight_ok && !bias_ok) add("weight and bias deltas differ");
    else if (!bias_ok) add("bias delta differs (relative error " + std::to_string(r.bias_error) + ")");
    if (!magnitude_ok) add(magnitude_message);
  }
}

// One target's verdict; an error only for a broken internal invariant.
Result<ModuleResult> compare_target(const std::string& target, const std::vector<const Part*>& pa,
                                    const std::vector<const Part*>& pb, const CompareOptions& opt) {
  ModuleResult r;
  r.target = target;
  const Part& any = pa.empty() ? *pb.front() : *pa.front();
  r.rows = any.target_rows;
  r.cols = any.target_cols;
  r.parts_a = static_cast<int>(pa.size());
  r.parts_b = static_cast<int>(pb.size());
  r.ranks_a = ranks(pa);
  r.ranks_b = ranks(pb);
  const double u = roundoff(pa, pb);

  // Bit-for-bit identical sides: exactly 0.
  if (pa.size() == pb.size() &&
      std::equal(pa.begin(), pa.end(), pb.begin(), [](const Part* x, const Part* y) { return same_part(*x, *y); })) {
    bool finite = true;
    for (const Part* p : pa)
      for (const st::TensorView* t : tensors_of(*p)) finite = finite && st::scan_values(*t).nonfinite == 0;
    const Magnitudes m = magnitudes_of(pa, r.rows);
    r.dora = m.any;
    if (!finite || !m.finite) {
      r.status = ModuleStatus::kInvalid;
      r.message = "non-finite values";
      return r;
    }
    r.status = ModuleStatus::kEquivalent;
    r.tolerance = r.gain_tolerance = opt.tolerance_override > 0 ? opt.tolerance_override : 0.0;  // nothing rounded
    return r;
  }

  for (const auto* list : {&pa, &pb})
    for (const Part* p : *list)
      if (p->target_rows != r.rows || p->target_cols != r.cols) {
        r.status = ModuleStatus::kInvalid;
        r.message = "the two sides disagree on the shape of " + target + ": " + std::to_string(r.rows) + "x" +
                    std::to_string(r.cols) + " vs " + std::to_string(p->target_rows) + "x" + std::to_string(p->target_cols);
        return r;
      }

  Sums sums;
  const auto not_low_rank = [](const Part* p) { return p->form != PartForm::kLowRank && p->form != PartForm::kBiasOnly; };
  const bool dense = std::any_of(pa.begin(), pa.end(), not_low_rank) || std::any_of(pb.begin(), pb.end(), not_low_rank);
  bool ok = true, exact = false;
  if (dense) {
    ok = dense_errors(pa, pb, r.rows, r.cols, sums, r.message);
  } else if (opt.exact_bytes_shortcut && bytes_cancel(pa, pb, r.rows)) {
    exact = true;  // exactly zero: nothing was rounded, gain exactly 1
  } else {
    decode_pool.next = 0;  // this target's factors reuse the thread's buffers
    Side a, b;
    decode_side(pa, a);
    decode_side(pb, b);
    LV_TRY_ASSIGN(finite, low_rank_errors(a, b, r.rows, sums, r.message));
    ok = finite;
  }
  bool bias_finite = true;
  Eigen::VectorXd ba = bias_of(pa, r.rows, bias_finite), bb = bias_of(pb, r.rows, bias_finite);
  if (!ok || !bias_finite) {
    r.status = ModuleStatus::kInvalid;
    if (r.message.empty()) r.message = "non-finite values in a bias delta";
    return r;
  }
  weigh(r, sums, dense, exact, u, opt);
  r.bias_norm_a = ba.norm();
  const double bias_abs = (ba - bb).norm();
  r.bias_error = r.bias_norm_a > 0 ? bias_abs / r.bias_norm_a : bias_abs;
  const double bias_tol = opt.tolerance_override > 0 ? opt.tolerance_override : bias_tolerance(pb);
  const bool weight_ok = r.norm_a > 0 ? r.relative_error <= r.tolerance : r.abs_error == 0.0;
  const bool gain_ok = r.norm_a == 0 || std::fabs(r.gain - 1) <= r.gain_tolerance;
  const bool bias_ok = r.bias_norm_a > 0 ? r.bias_error <= bias_tol : bias_abs == 0.0;
  const Magnitudes ma = magnitudes_of(pa, r.rows), mb = magnitudes_of(pb, r.rows);
  r.dora = ma.any || mb.any;
  std::string magnitude_message;
  const bool magnitude_ok = !r.dora || compare_magnitudes(ma, mb, r.magnitude_error, magnitude_message);
  if (!ma.finite || !mb.finite) {
    r.status = ModuleStatus::kInvalid;
    r.message = magnitude_message;
    return r;
  }
  judge(r, weight_ok, gain_ok, bias_ok, magnitude_ok, magnitude_message, pa, pb);
  return r;
}

}  // namespace

std::string gain_text(double g) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4g\u00d7", g);
  return buf;
}

Result<CompareResult> compare_parts(const std::vector<Part>& a, const std::vector<Part>& b, const CompareOptions& opt) {
  std::map<std::string, std::pair<std::vector<const Part*>, std::vector<const Part*>>> by_target;
  for (const Part& p : a) by_target[p.target].first.push_back(&p);
  for (const Part& p : b) by_target[p.target].second.push_back(&p);
  std::vector<const std::pair<const std::string, std::pair<std::vector<const Part*>, std::vector<const Part*>>>*> work;
  for (const auto& e : by_target) work.push_back(&e);

  CompareResult out;
  out.modules.resize(work.size());
  std::vector<std::optional<Error>> broken(work.size());
  std::atomic<size_t> next{0};
  auto run = [&] {
    for (size_t i; (i = next.fetch_add(1)) < work.size();) {
      auto m = compare_target(work[i]->first, work[i]->second.first, work[i]->second.second, opt);
      if (m.ok()) out.modules[i] = std::move(m).value();
      else broken[i] = m.take_error();
    }
  };
  const int threads = std::max(1, std::min<int>(opt.threads, static_cast<int>(work.size())));
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back(run);
  run();
  for (auto& t : pool) t.join();
  for (auto& e : broken)
    if (e) return std::move(*e);

  for (const auto& m : out.modules) {
    if (m.status != ModuleStatus::kEquivalent) out.all_equivalent = false;
    if (!std::isnan(m.relative_error)) out.worst_relative_error = std::max(out.worst_relative_error, m.relative_error);
  }
  return out;
}

Result<CompareResult> compare(const LoraModel& a, const LoraModel& b, const CompareOptions& opt) {
  return compare_parts(a.parts, b.parts, opt);
}

Eigen::MatrixXd dense_delta(const std::vector<const Part*>& parts, int64_t rows, int64_t cols) {
  MatrixXd d = MatrixXd::Zero(rows, cols);
  std::vector<double> tmp(static_cast<size_t>(cols));
  for (const Part* p : parts) {
    if (p->form == PartForm::kBiasOnly) continue;
    PartRows pr(*p);
    for (int64_t t = p->row_begin; t < p->row_end; ++t) {
      pr.row(local_row(*p, t), tmp.data());
      for (int64_t j = 0; j < cols; ++j) d(t, j) += tmp[static_cast<size_t>(j)];
    }
  }
  return d;
}

}  // namespace lv::verify
