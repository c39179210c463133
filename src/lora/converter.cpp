// Reference converter: canonical parts → output modules, exact by construction
// (docs/formats.md#fusing-and-splitting). Weights are copied bit for bit wherever the strategy
// allows.
#include "lora/converter.h"

#include <algorithm>
#include <thread>
#include <optional>
#include <atomic>
#include <cmath>
#include <cstring>
#include <map>

#include "lora/delta.h"
#include "lora/keys.h"
#include "safetensors/values.h"

namespace lv {
namespace {

using st::DType;
using st::TensorView;

size_t elem_bytes(DType d) { return st::dtype_bits(d) / 8; }

// Output spelling of one module.
struct Spelling {
  std::string module;
  std::string down, up, alpha, bias;  // alpha empty: the style has no alpha (scale folded)
};

// The spelling of one output module in `style`, from the dialect it writes.
Spelling spell(Style style, const std::string& target, const std::string& diffusers_module) {
  const StyleRow& s = style_row(style);
  const DialectRow& d = dialect_row(s.writes);
  auto suffix = [](Role r, SuffixFamily f) { return std::string(suffix_for(r, f)); };
  return {module_key(d, target, diffusers_module), suffix(Role::kDown, d.factors), suffix(Role::kUp, d.factors),
          s.alpha_tensors ? suffix(Role::kAlpha, SuffixFamily::kAlpha) : "", suffix(Role::kBias, d.factors)};
}

// One part's rows as they land in an output module.
struct Contribution {
  const Part* part = nullptr;
  std::vector<int64_t> src_row;  // per output row: row of part->up (or of the bias), -1 if none
  std::vector<int64_t> cols;     // columns of B (rows of A) used; all when `full_cols`
  bool full_cols = true;
  bool identity_rows = false;    // src_row is 0..n-1 over all of B's rows
};

// Maps output-module row j to a target row, then to the part's own row (undoing swaps).
int64_t target_row(int64_t begin, int64_t end, bool swap, int64_t j) {
  int64_t len = end - begin;
  return begin + (swap ? (j + len / 2) % len : j);
}

double read_elem(const TensorView& t, uint64_t index) {
  double v = 0;
  st::decode_to_double(t.dtype, t.data + index * elem_bytes(t.dtype), 1, &v);
  return v;
}

bool same_bytes(const TensorView* a, const TensorView* b) {
  if (a == b) return true;
  return a->dtype == b->dtype && a->shape == b->shape && a->nbytes == b->nbytes &&
         std::memcmp(a->data, b->data, static_cast<size_t>(a->nbytes)) == 0;
}

DType common_dtype(const std::vector<const TensorView*>& ts) {
  bool any64 = false;
  for (auto* t : ts) any64 |= t->dtype == DType::kF64;
  for (auto* t : ts)
    if (t->dtype != ts.front()->dtype) return any64 ? DType::kF64 : DType::kF32;
  DType d = ts.front()->dtype;
  // F8 inputs are widened: lora-verify writes F32, F64, F16 and BF16 only.
  return st::dtype_is_encodable(d) ? d : DType::kF32;
}

// Rounding computed values into the output dtype, with the account a refusal needs: a
// value that was finite before rounding (or whose inputs were) must stay finite, and the
// rounding error of each segment (one part's rows of a factor, a bias, an alpha, a dense
// delta), relative in the Frobenius norm, must stay within what round-to-nearest in the
// normal range gives (u). A folded scale that pushes values into the subnormal range, or
// to zero, loses more: the module is then refused, since its output would not reproduce
// the input's delta. Parts sit on disjoint rows, so bounded segments bound the module.
class Rounder {
 public:
  // Rounds n values (scaled, in double) into `dst`. `inputs_finite`: the values were
  // computed from finite inputs only, so a non-finite value is an overflow in double.
  void emit(DType out, const double* v, size_t n, uint8_t* dst, bool inputs_finite) {
    st::encode_from_double(out, v, n, dst);
    back_.resize(n);
    st::decode_to_double(out, dst, n, back_.data());
    // One call's sums in double (d is exact, u a power of two), the segment's in long double.
    const double inv_u = 1.0 / static_cast<double>(st::dtype_unit_roundoff(out));
    double norm = 0, err = 0;
    bool nonfinite_in = false, nonfinite_out = false;
    for (size_t i = 0; i < n; ++i) {
      const bool fin_in = std::isfinite(v[i]), fin_out = std::isfinite(back_[i]);
      nonfinite_in |= !fin_in;
      nonfinite_out |= fin_in && !fin_out;
      const double x = fin_in && fin_out ? v[i] : 0.0, d = fin_in && fin_out ? (back_[i] - v[i]) * inv_u : 0.0;
      norm += x * x;
      err += d * d;
    }
    overflow_ |= nonfinite_out || (nonfinite_in && inputs_finite);
    norm2_ += norm;
    err2_ += err;
  }
  // Scales the values x of a source row into v (v = x·scale), noting a finite x whose
  // product overflows double.
  void scale_into(const double* x, size_t n, double scale, double* v) {
    for (size_t i = 0; i < n; ++i) {
      v[i] = x[i] * scale;
      overflow_ |= std::isfinite(x[i]) && !std::isfinite(v[i]);
    }
  }
  // scale_into then emit (v = x·scale rounded into `dst`), in one pass on the bits where
  // every value rounds into the normal range of F16 or BF16: the same bytes and sums.
  void emit_scaled(DType out, const double* x, size_t n, double scale, uint8_t* dst) {
    scaled_.resize(n);
    errors_.resize(n);
    if (st::scale_round_16(out, x, n, scale, dst, scaled_.data(), errors_.data())) {
      double norm = 0, err = 0;  // in emit's order: the same sums
      for (size_t i = 0; i < n; ++i) {
        norm += scaled_[i] * scaled_[i];
        err += errors_[i] * errors_[i];
      }
      norm2_ += norm;
      err2_ += err;
      return;
    }
    scale_into(x, n, scale, scaled_.data());
    emit(out, scaled_.data(), n, dst, false);
  }
  // Ends a segment: its rounding error, relative in the Frobenius norm, must be ≤ 2u.
  void close_segment() {
    lost_ |= err2_ > 4.0L * norm2_;
    norm2_ = err2_ = 0;
  }
  bool overflowed() const { return overflow_; }
  bool lost_precision() const { return lost_ || err2_ > 4.0L * norm2_; }
  void reset() { *this = Rounder(); }

 private:
  std::vector<double> back_, scaled_, errors_;
  long double norm2_ = 0, err2_ = 0;
  bool overflow_ = false, lost_ = false;
};

class ModuleBuilder {
 public:
  ModuleBuilder(const ConvertOptions& opt, Conversion& out) : opt_(opt), out_(out) {}

  // Builds one output module of `rows` rows from the contributions.
  void build(const Spelling& sp, const std::string& target, int64_t rows, int64_t cols,
             std::vector<Contribution> contribs, int zero_filled) {
    // Bias: the sum of the contributions' bias deltas at their rows.
    std::vector<const Contribution*> biased;
    for (const auto& c : contribs)
      if (c.part->bias) biased.push_back(&c);
    // Weight contributions: low-rank ones that still have columns after compaction.
    std::vector<Contribution> w;
    for (auto& c : contribs)
      if (c.part->form == PartForm::kLowRank && !c.cols.empty()) w.push_back(c);

    ModuleOut mod{sp.module, target, Strategy::kRename, 0, static_cast<int>(w.size()), zero_filled};
    std::vector<const TensorView*> dtypes_in;
    for (const auto& c : w) {
      dtypes_in.push_back(c.part->down);
      dtypes_in.push_back(c.part->up);
    }
    for (const auto* c : biased) dtypes_in.push_back(c->part->bias);
    if (dtypes_in.empty()) return;  // every contribution is zero: nothing to write
    const DType out = opt_.dtype.value_or(common_dtype(dtypes_in));

    if (!w.empty()) {
      bool same_scale = std::all_of(w.begin(), w.end(), [&](auto& c) { return c.part->scale == w[0].part->scale; });
      bool shared_down = same_scale && w.size() > 1 && disjoint_rows(w, rows) &&
                         std::all_of(w.begin(), w.end(), [&](auto& c) {
                           return same_bytes(c.part->down, w[0].part->down) && c.cols == w[0].cols;
                         });
      const bool has_alpha = !sp.alpha.empty();
      double scale = w[0].part->scale;
      if (!same_scale) scale = 1.0;  // folded below
      // Scale folded into the downs when the style has no alpha or the scales differ.
      const bool fold = !same_scale || (!has_alpha && scale != 1.0);
      std::vector<double> fold_scale(w.size(), 1.0);
      for (size_t i = 0; i < w.size(); ++i) fold_scale[i] = fold ? w[i].part->scale : 1.0;
      if (fold) scale = 1.0;

      int64_t rank = 0;
      if (shared_down) {
        rank = static_cast<int64_t>(w[0].cols.size());
        mod.strategy = Strategy::kSharedDown;
        out_.tensors.push_back(make_down(sp.module + sp.down, {&w[0]}, {fold_scale[0]}, cols, out));
        out_.tensors.push_back(make_up(sp.module + sp.up, w, rows, rank, out, /*stack=*/false));
      } else {
        std::vector<const Contribution*> all;
        for (auto& c : w) {
          all.push_back(&c);
          rank += static_cast<int64_t>(c.cols.size());
        }
        mod.strategy = w.size() == 1 && !fold ? Strategy::kRename : (fold ? Strategy::kFolded : Strategy::kAlphaRewrite);
        out_.tensors.push_back(make_down(sp.module + sp.down, all, fold_scale, cols, out));
        out_.tensors.push_back(make_up(sp.module + sp.up, w, rows, rank, out, /*stack=*/true));
      }
      mod.rank = rank;
      if (has_alpha) out_.tensors.push_back(scalar_f32(sp.module + sp.alpha, scale * static_cast<double>(rank)));
    } else {
      mod.strategy = Strategy::kBiasOnly;
    }

    if (!biased.empty()) {
      // Bias-only modules are written as diff_b in every style: a lora_B.bias needs factors.
      std::string suffix = w.empty() ? ".diff_b" : sp.bias;
      out_.tensors.push_back(make_bias(sp.module + suffix, biased, rows, out));
    }
    out_.modules.push_back(mod);
  }

 // A dense `.diff` module: the sum of every part's delta on the module's rows, computed in
  // double and rounded once. For adapter forms (LoKr, LoHa) that cannot be split into
  // parts or renamed 1:1.
  void build_dense(const Spelling& sp, const std::string& target, int64_t begin, int64_t end, bool swap, int64_t cols,
                   const std::vector<const Part*>& parts, std::vector<Contribution> contribs, int zero_filled) {
    const int64_t rows = end - begin;
    std::vector<const TensorView*> dtypes_in;
    for (const auto& c : contribs) {
      for (const TensorView* t : {c.part->up, c.part->diff, c.part->w1, c.part->w1_a, c.part->w2, c.part->w2_a,
                                  c.part->hada_w1_a, c.part->bias})
        if (t) dtypes_in.push_back(t);
    }
    const DType out = opt_.dtype.value_or(dtypes_in.empty() ? DType::kF32 : common_dtype(dtypes_in));
    OutTensor t;
    t.name = sp.module + ".diff";
    t.dtype = out;
    t.shape = {static_cast<uint64_t>(rows), static_cast<uint64_t>(cols)};
    t.owned.resize(static_cast<size_t>(rows * cols) * elem_bytes(out));
    std::vector<double> acc(static_cast<size_t>(cols)), tmp(static_cast<size_t>(cols));
    std::vector<PartRows> evals;
    bool inputs_finite = true;
    for (const Part* p : parts) {
      evals.emplace_back(*p);
      inputs_finite = inputs_finite && std::isfinite(p->scale);
      for (const TensorView* f : {p->up, p->down, p->diff, p->w1, p->w1_a, p->w1_b, p->w2, p->w2_a, p->w2_b,
                                  p->hada_w1_a, p->hada_w1_b, p->hada_w2_a, p->hada_w2_b})
        inputs_finite = inputs_finite && (!f || st::scan_values(*f).nonfinite == 0);
    }
    for (int64_t j = 0; j < rows; ++j) {
      std::fill(acc.begin(), acc.end(), 0.0);
      const int64_t tr = target_row(begin, end, swap, j);
      for (size_t i = 0; i < parts.size(); ++i) {
        const Part& p = *parts[i];
        if (tr < p.row_begin || tr >= p.row_end || p.form == PartForm::kBiasOnly) continue;
        const int64_t plen = p.row_end - p.row_begin;
        int64_t k = tr - p.row_begin;
        if (p.swap_halves) k = (k + plen / 2) % plen;
        evals[i].row(k, tmp.data());
        for (int64_t c = 0; c < cols; ++c) acc[static_cast<size_t>(c)] += tmp[static_cast<size_t>(c)];
      }
      rounder_.emit(out, acc.data(), acc.size(), t.owned.data() + static_cast<size_t>(j * cols) * elem_bytes(out),
                    inputs_finite);
    }
    rounder_.close_segment();
    const uint64_t bytes = t.owned.size();
    out_.tensors.push_back(std::move(t));
    std::vector<const Contribution*> biased;
    for (const auto& c : contribs)
      if (c.part->bias) biased.push_back(&c);
    if (!biased.empty()) out_.tensors.push_back(make_bias(sp.module + ".diff_b", biased, rows, out));
    out_.modules.push_back({sp.module, target, Strategy::kDense, 0, static_cast<int>(parts.size()), zero_filled});
    out_.notes.push_back({"convert.dense", Severity::kInfo, sp.module,
                          "written as a dense .diff of " + std::to_string(rows) + "x" + std::to_string(cols) + " (" +
                              std::to_string(bytes) + " bytes): its LoKr/LoHa delta does not split into parts"});
  }

 private:
  static bool disjoint_rows(const std::vector<Contribution>& w, int64_t rows) {
    std::vector<uint8_t> used(static_cast<size_t>(rows), 0);
    for (const auto& c : w)
      for (int64_t j = 0; j < rows; ++j)
        if (c.src_row[static_cast<size_t>(j)] >= 0 && used[static_cast<size_t>(j)]++) return false;
    return true;
  }

  // Stacked downs: for each contribution its selected rows of A, times its folded scale.
  OutTensor make_down(const std::string& name, const std::vector<const Contribution*>& cs,
                      const std::vector<double>& scales, int64_t cols, DType out) {
    OutTensor t;
    t.name = name;
    t.dtype = out;
    int64_t rank = 0;
    for (auto* c : cs) rank += static_cast<int64_t>(c->cols.size());
    t.shape = {static_cast<uint64_t>(rank), static_cast<uint64_t>(cols)};
    const TensorView& a0 = *cs[0]->part->down;
    if (cs.size() == 1 && cs[0]->full_cols && a0.dtype == out && scales[0] == 1.0) {
      t.view = a0.bytes();  // untouched: bit-exact, no copy
      return t;
    }
    const size_t out_rb = static_cast<size_t>(cols) * elem_bytes(out);
    t.owned.resize(static_cast<size_t>(rank) * out_rb);
    std::vector<double> x(static_cast<size_t>(cols));
    uint64_t row = 0;
    for (size_t i = 0; i < cs.size(); ++i) {
      const TensorView& a = *cs[i]->part->down;
      const size_t in_rb = static_cast<size_t>(cols) * elem_bytes(a.dtype);
      for (int64_t r : cs[i]->cols) {
        uint8_t* dst = t.owned.data() + row * out_rb;
        const uint8_t* src = a.data + static_cast<size_t>(r) * in_rb;
        if (a.dtype == out && scales[i] == 1.0) {
          std::memcpy(dst, src, out_rb);
        } else {
          st::decode_to_double(a.dtype, src, x.size(), x.data());
          rounder_.emit_scaled(out, x.data(), x.size(), scales[i], dst);
        }
        ++row;
      }
      rounder_.close_segment();
    }
    return t;
  }

  // Ups: block-diagonal (`stack`: each contribution its own columns) or sharing columns.
  OutTensor make_up(const std::string& name, const std::vector<Contribution>& w, int64_t rows, int64_t rank, DType out,
                    bool stack) {
    OutTensor t;
    t.name = name;
    t.dtype = out;
    t.shape = {static_cast<uint64_t>(rows), static_cast<uint64_t>(rank)};
    const TensorView& b0 = *w[0].part->up;
    if (w.size() == 1 && w[0].identity_rows && w[0].full_cols && b0.dtype == out && b0.shape[0] == static_cast<uint64_t>(rows)) {
      t.view = b0.bytes();
      return t;
    }
    const size_t es = elem_bytes(out);
    t.owned.assign(static_cast<size_t>(rows * rank) * es, 0);  // zero bytes are +0.0 in every float dtype
    int64_t col0 = 0;
    std::vector<double> x, v;
    for (const auto& c : w) {
      const TensorView& b = *c.part->up;
      const size_t r_in = static_cast<size_t>(b.shape[1]), in_es = elem_bytes(b.dtype);
      x.resize(r_in);
      v.resize(c.cols.size());
      for (int64_t j = 0; j < rows; ++j) {
        int64_t src = c.src_row[static_cast<size_t>(j)];
        if (src < 0) continue;
        const uint8_t* in_row = b.data + static_cast<size_t>(src) * r_in * in_es;
        uint8_t* dst = t.owned.data() + static_cast<size_t>(j * rank + col0) * es;
        if (b.dtype == out && c.full_cols) {
          std::memcpy(dst, in_row, r_in * es);
        } else if (b.dtype == out) {
          for (size_t q = 0; q < c.cols.size(); ++q)
            std::memcpy(dst + q * es, in_row + static_cast<size_t>(c.cols[q]) * es, es);
        } else {
          st::decode_to_double(b.dtype, in_row, r_in, x.data());
          for (size_t q = 0; q < c.cols.size(); ++q) v[q] = x[static_cast<size_t>(c.cols[q])];
          rounder_.emit(out, v.data(), v.size(), dst, false);
        }
      }
      rounder_.close_segment();
      if (stack) col0 += static_cast<int64_t>(c.cols.size());
    }
    return t;
  }

  OutTensor make_bias(const std::string& name, const std::vector<const Contribution*>& cs, int64_t rows, DType out) {
    OutTensor t;
    t.name = name;
    t.dtype = out;
    t.shape = {static_cast<uint64_t>(rows)};
    const Contribution& c0 = *cs[0];
    if (cs.size() == 1 && c0.identity_rows && c0.part->bias_scale == 1.0 && c0.part->bias->dtype == out &&
        c0.part->bias->numel == static_cast<uint64_t>(rows)) {
      t.view = c0.part->bias->bytes();
      return t;
    }
    std::vector<double> sum(static_cast<size_t>(rows), 0.0);
    bool inputs_finite = true;
    for (auto* c : cs) {
      inputs_finite = inputs_finite && std::isfinite(c->part->bias_scale);
      for (int64_t j = 0; j < rows; ++j) {
        int64_t src = c->src_row[static_cast<size_t>(j)];
        if (src < 0) continue;
        const double x = read_elem(*c->part->bias, static_cast<uint64_t>(src));
        inputs_finite = inputs_finite && std::isfinite(x);
        sum[static_cast<size_t>(j)] += c->part->bias_scale * x;
      }
    }
    t.owned.resize(static_cast<size_t>(rows) * elem_bytes(out));
    rounder_.emit(out, sum.data(), sum.size(), t.owned.data(), inputs_finite);
    rounder_.close_segment();
    return t;
  }

  OutTensor scalar_f32(std::string name, double v) {
    OutTensor t;
    t.name = std::move(name);
    t.dtype = DType::kF32;
    t.owned.resize(4);
    rounder_.emit(DType::kF32, &v, 1, t.owned.data(), true);
    rounder_.close_segment();
    return t;
  }

  const ConvertOptions& opt_;
  Conversion& out_;
  // The rounding account of the target being built: the conversion is refused instead
  // of writing infinities or values that lost their precision.
  Rounder rounder_;

 public:
  Rounder& rounder() { return rounder_; }
};

// The contribution of `p` to an output module covering target rows [m0, m1) (swapped when
// `mswap`). Compacts B's columns when only some of its rows are used, so splitting a
// block-diagonal fused up gives each part only its own columns.
Contribution contribute(const Part& p, int64_t m0, int64_t m1, bool mswap) {
  Contribution c;
  c.part = &p;
  const int64_t n = m1 - m0;
  c.src_row.assign(static_cast<size_t>(n), -1);
  int64_t covered = 0;
  bool identity = true;
  const int64_t plen = p.row_end - p.row_begin;
  for (int64_t j = 0; j < n; ++j) {
    int64_t t = target_row(m0, m1, mswap, j);
    if (t < p.row_begin || t >= p.row_end) {
      identity = false;
      continue;
    }
    int64_t k = t - p.row_begin;
    if (p.swap_halves) k = (k + plen / 2) % plen;
    c.src_row[static_cast<size_t>(j)] = k;
    identity = identity && k == j;
    ++covered;
  }
  c.identity_rows = identity && covered == plen && n == plen;
  if (p.form != PartForm::kLowRank) return c;
  const int64_t rank = p.rank();
  if (covered == 0) return c;  // cols stay empty: no weight contribution
  if (covered == plen) {
    for (int64_t q = 0; q < rank; ++q) c.cols.push_back(q);
    return c;
  }
  // Partial coverage: keep only the columns of B that are non-zero on the used rows.
  std::vector<uint8_t> nonzero(static_cast<size_t>(rank), 0);
  for (int64_t j = 0; j < n; ++j) {
    int64_t src = c.src_row[static_cast<size_t>(j)];
    if (src < 0) continue;
    for (int64_t q = 0; q < rank; ++q)
      if (!nonzero[static_cast<size_t>(q)] && read_elem(*p.up, static_cast<uint64_t>(src * rank + q)) != 0.0)
        nonzero[static_cast<size_t>(q)] = 1;
  }
  for (int64_t q = 0; q < rank; ++q)
    if (nonzero[static_cast<size_t>(q)]) c.cols.push_back(q);
  c.full_cols = static_cast<int64_t>(c.cols.size()) == rank;
  return c;
}

bool overlaps(const Part& p, int64_t b, int64_t e) { return p.row_begin < e && b < p.row_end; }

// Adapter forms (LoKr, LoHa, dense diff) are renamed when their rows are exactly the output
// module's; otherwise convert_target writes the module as a dense .diff (build_dense), or
// refuses it when ConvertOptions::allow_dense is false (--no-dense).
bool maps_one_to_one(const Part& p, int64_t m0, int64_t m1, bool mswap) {
  return p.row_begin == m0 && p.row_end == m1 && p.swap_halves == mswap;
}

std::string_view form_name(PartForm f) {
  switch (f) {
    case PartForm::kLoKr: return "LoKr";
    case PartForm::kLoHa: return "LoHa";
    case PartForm::kDense: return "dense diff";
    default: return "LoRA";
  }
}

Status rename_adapter(const Part& p, const Spelling& sp, Conversion& out) {
  for (const Part::Source& s : p.source_tensors) {
    const TensorView* t = s.tensor;
    if (!t) return internal_error("tensor " + s.name + " of part " + p.source_module + " has no data");
    if (s.role == Role::kDiffB || s.role == Role::kBias) continue;  // written with the module's bias
    if (s.role == Role::kMagnitude || s.role == Role::kDoraScale) continue;  // written by add_magnitude
    OutTensor o;
    o.name = sp.module + "." + std::string(role_name(s.role));
    o.dtype = t->dtype;
    o.shape = t->shape;
    o.view = t->bytes();
    out.tensors.push_back(std::move(o));
  }
  out.modules.push_back({sp.module, p.target, Strategy::kAdapterRename, 0, 1, 0});
  return {};
}

// The DoRA magnitude of one output module covering target rows [m0, m1) (swapped when
// `mswap`), written only where it is exact:
// - per-row magnitudes move with their rows: PEFT magnitude vectors of q, k, v (and mlp)
//   concatenate into the fused module, and a fused one splits, when every row of the output
//   module has one; rows without a magnitude (a part absent from the input, or a plain
//   LoRA part) would need the base weights' row norms;
// - a per-column dora_scale normalises the columns over its part's rows, so it is carried
//   only when its part is exactly the output module.
// Written as lora_magnitude_vector [rows] in the PEFT-like styles and as dora_scale
// ([rows, 1] per row, [1, cols] per column) in kohya and comfy.
Status add_magnitude(const std::vector<const Part*>& here, const Spelling& sp, Style style, const std::string& target,
                     int64_t m0, int64_t m1, bool mswap, Conversion& out) {
  std::vector<const Part*> weighted;
  const Part* dora = nullptr;
  for (const Part* p : here) {
    // A magnitude changes the weight even without a delta: such a part counts too.
    if (p->form == PartForm::kBiasOnly && !p->magnitude) continue;
    weighted.push_back(p);
    if (p->magnitude && !dora) dora = p;
  }
  if (!dora) return {};
  const std::string where = "output module " + sp.module + " (rows " + std::to_string(m0) + ".." + std::to_string(m1) +
                            " of " + target + ")";
  for (const Part* p : weighted) {
    if (!p->magnitude)
      return make_error(ErrorCode::kBadInput,
                        "refused: " + where + " would hold DoRA magnitude " + dora->magnitude->name + " and module " +
                            p->source_module + ", which has no DoRA magnitude; one magnitude for both needs the base "
                            "weights' norms of " + p->source_module + "'s rows");
    if (p->magnitude_per_row != dora->magnitude_per_row)
      return make_error(ErrorCode::kBadInput, "refused: " + where + " mixes per-row and per-column DoRA magnitudes (" +
                                                  dora->magnitude->name + ", " + p->magnitude->name + ")");
  }
  // Kohya-style factors carry LyCORIS dora_scale [rows, 1]; PEFT ones lora_magnitude_vector [rows].
  const bool kohya_like = dialect_row(style_row(style).writes).factors == SuffixFamily::kKohya;
  OutTensor t;
  if (!dora->magnitude_per_row) {
    const bool exact = dora->row_begin == m0 && dora->row_end == m1 &&
                       std::all_of(weighted.begin(), weighted.end(), [&](const Part* p) { return p->magnitude == dora->magnitude; });
    if (!exact)
      return make_error(ErrorCode::kBadInput,
                        "refused: " + dora->magnitude->name + " is a per-column DoRA scale over rows " +
                            std::to_string(dora->row_begin) + ".." + std::to_string(dora->row_end) + " of " + target + "; " +
                            where + " normalises its columns over other rows, which needs the base weights");
    t.name = sp.module + ".dora_scale";
    t.dtype = dora->magnitude->dtype;
    t.shape = dora->magnitude->shape;
    t.view = dora->magnitude->bytes();
    out.tensors.push_back(std::move(t));
    return {};
  }
  const int64_t n = m1 - m0;
  std::vector<const Part*> src(static_cast<size_t>(n), nullptr);
  std::vector<int64_t> local(static_cast<size_t>(n), 0);
  bool identity = true;
  for (int64_t j = 0; j < n; ++j) {
    const int64_t tr = target_row(m0, m1, mswap, j);
    for (const Part* p : weighted) {
      if (tr < p->row_begin || tr >= p->row_end) continue;
      const Part*& s = src[static_cast<size_t>(j)];
      if (s && s->magnitude != p->magnitude)
        return make_error(ErrorCode::kBadInput, "refused: row " + std::to_string(tr) + " of " + target +
                                                    " has two DoRA magnitudes (" + s->magnitude->name + ", " +
                                                    p->magnitude->name + ")");
      s = p;
    }
    const Part* p = src[static_cast<size_t>(j)];
    if (!p)
      return make_error(ErrorCode::kBadInput,
                        "refused: " + where + " holds DoRA magnitude " + dora->magnitude->name + ", but row " +
                            std::to_string(tr) + " has no delta in the input; its magnitude would need the base "
                            "weights' row norm");
    const int64_t plen = p->row_end - p->row_begin;
    int64_t k = tr - p->row_begin;
    if (p->swap_halves) k = (k + plen / 2) % plen;
    local[static_cast<size_t>(j)] = k;
    identity = identity && p->magnitude == dora->magnitude && k == j;
  }
  t.name = sp.module + std::string(kohya_like ? suffix_for(Role::kDoraScale, SuffixFamily::kDora) : suffix_for(Role::kMagnitude, SuffixFamily::kDora));
  t.shape = kohya_like ? std::vector<uint64_t>{static_cast<uint64_t>(n), 1} : std::vector<uint64_t>{static_cast<uint64_t>(n)};
  if (identity && dora->magnitude->numel == static_cast<uint64_t>(n)) {
    t.dtype = dora->magnitude->dtype;
    t.view = dora->magnitude->bytes();
  } else {
    std::vector<const TensorView*> mags;
    for (const Part* p : weighted) mags.push_back(p->magnitude);
    t.dtype = common_dtype(mags);  // a widening at most: exact
    std::vector<double> v(static_cast<size_t>(n));
    for (int64_t j = 0; j < n; ++j)
      v[static_cast<size_t>(j)] = read_elem(*src[static_cast<size_t>(j)]->magnitude, static_cast<uint64_t>(local[static_cast<size_t>(j)]));
    t.owned.resize(static_cast<size_t>(n) * elem_bytes(t.dtype));
    st::encode_from_double(t.dtype, v.data(), v.size(), t.owned.data());
  }
  out.tensors.push_back(std::move(t));
  return {};
}

}  // namespace

std::vector<OutputModule> output_modules(const flux::Layout& layout, const std::string& target, OutputLayout to) {
  std::vector<OutputModule> out;
  const auto maps = flux::parts_of_target(layout, target);
  if (to == OutputLayout::kBfl) {
    if (auto t = flux::find_target(layout, target)) out.push_back({"", 0, t->rows, false});
    return out;
  }
  for (const auto& pm : maps) out.push_back({pm.diffusers, pm.row_begin, pm.row_end, pm.swap_halves});
  return out;
}

bool adapter_renamed(const LoraModel& model, const Part& p, OutputLayout to) {
  for (const OutputModule& m : output_modules(model.layout, p.target, to)) {
    if (!maps_one_to_one(p, m.begin, m.end, m.swap)) continue;
    return std::none_of(model.parts.begin(), model.parts.end(),
                        [&](const Part& o) { return &o != &p && o.target == p.target && overlaps(o, m.begin, m.end); });
  }
  return false;
}

std::string_view strategy_name(Strategy s) {
  switch (s) {
    case Strategy::kRename: return "rename";
    case Strategy::kSharedDown: return "shared-down";
    case Strategy::kAlphaRewrite: return "alpha-rewrite";
    case Strategy::kFolded: return "folded";
    case Strategy::kBiasOnly: return "bias-only";
    case Strategy::kAdapterRename: return "adapter-rename";
    case Strategy::kDense: return "dense";
  }
  return "?";
}

uint64_t Conversion::bytes() const {
  uint64_t n = 0;
  for (const auto& t : tensors) n += t.data().size();
  return n;
}

namespace {

using TargetParts = std::pair<const std::string, std::vector<const Part*>>;

// Converts one target into `out` (its modules, in the layout's order).
Status convert_target(const LoraModel& model, const ConvertOptions& opt, const std::string& target,
                      std::vector<const Part*> parts, ModuleBuilder& builder, Conversion& out) {
  // Row order, so fused factors list q, k, v, mlp as the target does.
  std::stable_sort(parts.begin(), parts.end(), [](const Part* a, const Part* b) { return a->row_begin < b->row_begin; });
  const Part& first = *parts.front();
  auto maps = flux::parts_of_target(model.layout, target);
  struct Module {
    Spelling sp;
    int64_t begin, end;
    bool swap;
  };
  std::vector<Module> modules;
  for (const OutputModule& om : output_modules(model.layout, target, opt.to))
    modules.push_back({spell(opt.style, target, om.diffusers), om.begin, om.end, om.swap});
  if (modules.empty()) return internal_error("target " + target + " has no modules in the layout");

  for (const Module& m : modules) {
    std::vector<Contribution> contribs;
    std::vector<const Part*> here, adapters;
    for (const Part* p : parts) {
      if (!overlaps(*p, m.begin, m.end)) continue;
      here.push_back(p);
      contribs.push_back(contribute(*p, m.begin, m.end, m.swap));
      if (p->form != PartForm::kLowRank && p->form != PartForm::kBiasOnly) adapters.push_back(p);
    }
    // Diffusers parts of this module's rows that the input leaves out: zero delta.
    int zero_filled = 0;
    for (const auto& pm : maps) {
      if (pm.row_end <= m.begin || pm.row_begin >= m.end) continue;
      bool any = std::any_of(parts.begin(), parts.end(), [&](const Part* p) { return overlaps(*p, pm.row_begin, pm.row_end); });
      zero_filled += any ? 0 : 1;
    }
    LV_TRY(add_magnitude(here, m.sp, opt.style, target, m.begin, m.end, m.swap, out));
    if (adapters.empty()) {
      builder.build(m.sp, target, m.end - m.begin, first.target_cols, std::move(contribs), zero_filled);
      continue;
    }
    // One adapter alone on exactly this module: renamed, bit for bit.
    const bool alone = here.size() == 1 && maps_one_to_one(*adapters[0], m.begin, m.end, m.swap);
    if (alone) {
      LV_TRY(rename_adapter(*adapters[0], m.sp, out));
      if (adapters[0]->bias) builder.build(m.sp, target, m.end - m.begin, first.target_cols, std::move(contribs), 0);
      continue;
    }
    if (!opt.allow_dense)
      return make_error(ErrorCode::kBadInput,
                        "refused: module " + adapters[0]->source_module + " is a " + std::string(form_name(adapters[0]->form)) +
                            " delta on rows " + std::to_string(adapters[0]->row_begin) + ".." +
                            std::to_string(adapters[0]->row_end) + " of " + target + "; output module " + m.sp.module +
                            " would need a dense .diff of " + std::to_string(m.end - m.begin) + "x" +
                            std::to_string(first.target_cols) + " values, and dense output is not allowed");
    builder.build_dense(m.sp, target, m.begin, m.end, m.swap, first.target_cols, here, std::move(contribs), zero_filled);
  }
  if (builder.rounder().overflowed())
    return make_error(ErrorCode::kBadInput, "refused: writing " + target +
                                                " with its scale folded overflows the output dtype; choose a wider --dtype (F32 or F64)");
  if (builder.rounder().lost_precision())
    return make_error(ErrorCode::kBadInput,
                      "refused: writing " + target +
                          " with its scale folded pushes its values below the normal range of the output dtype, "
                          "losing more than rounding; choose a wider --dtype (F32 or F64)");
  builder.rounder().reset();
  return {};
}

// The targets [begin, end) of `work` into one Conversion.
Result<Conversion> convert_targets(const LoraModel& model, const ConvertOptions& opt, const std::vector<const TargetParts*>& work,
                                   size_t begin, size_t end) {
  Conversion out;
  ModuleBuilder builder(opt, out);
  for (size_t i = begin; i < end; ++i) LV_TRY(convert_target(model, opt, work[i]->first, work[i]->second, builder, out));
  return out;
}

// Every target, in target order, on up to opt.threads threads: contiguous runs of targets
// balanced by their input bytes, each into its own Conversion, joined in order (the output
// is the same bytes whatever the thread count; the first error in target order wins).
Result<Conversion> convert_all_targets(const LoraModel& model, const ConvertOptions& opt) {
  std::map<std::string, std::vector<const Part*>> by_target;
  for (const Part& p : model.parts) by_target[p.target].push_back(&p);
  std::vector<const TargetParts*> work;
  std::vector<uint64_t> weight;
  uint64_t total = 0;
  for (const auto& e : by_target) {
    work.push_back(&e);
    uint64_t w = 1;
    for (const Part* p : e.second)
      for (const st::TensorView* t : {p->down, p->up, p->diff}) w += t ? t->nbytes : 0;
    weight.push_back(w);
    total += w;
  }
  const size_t chunks = std::max<size_t>(1, std::min<size_t>(static_cast<size_t>(std::max(1, opt.threads)) * 4, work.size()));
  std::vector<size_t> cut = {0};
  uint64_t acc = 0;
  for (size_t i = 0; i < work.size(); ++i) {
    acc += weight[i];
    if (cut.size() < chunks && acc * chunks >= total * cut.size()) cut.push_back(i + 1);
  }
  if (cut.back() != work.size()) cut.push_back(work.size());
  std::vector<std::optional<Result<Conversion>>> parts(cut.size() - 1);
  std::atomic<size_t> next{0};
  auto run = [&] {
    for (size_t c; (c = next.fetch_add(1)) < parts.size();) parts[c] = convert_targets(model, opt, work, cut[c], cut[c + 1]);
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < std::min<int>(opt.threads, static_cast<int>(parts.size())); ++t) pool.emplace_back(run);
  run();
  for (auto& t : pool) t.join();
  Conversion out;
  for (auto& r : parts) {
    if (!r->ok()) return r->take_error();
    Conversion c = std::move(*r).value();
    for (auto& t : c.tensors) out.tensors.push_back(std::move(t));
    for (auto& m : c.modules) out.modules.push_back(std::move(m));
    for (auto& n : c.notes) out.notes.push_back(std::move(n));
  }
  return out;
}

}  // namespace

Result<Conversion> convert(const LoraModel& model, const ConvertOptions& opt) {
  if (opt.to != style_layout(opt.style))
    return make_error(ErrorCode::kUsage, "style " + std::string(style_name(opt.style)) + " does not write the " +
                                             std::string(layout_name(opt.to)) + " layout");
  if (opt.dtype && !st::dtype_is_encodable(*opt.dtype))
    return make_error(ErrorCode::kUsage, "output dtype " + std::string(st::dtype_name(*opt.dtype)) +
                                             " is not one of F32, F64, F16, BF16");
  LV_TRY_ASSIGN(out, convert_all_targets(model, opt));

  for (const PassThrough& pt : model.passthrough) {
    const TensorView* t = model.file->find(pt.tensor);
    if (!t) return internal_error("pass-through tensor " + pt.tensor + " vanished");
    out.tensors.push_back({t->name, t->dtype, t->shape, {}, t->bytes()});
    ++out.passthrough;
  }

  // Metadata: the source's, minus what the conversion made wrong, plus what was done.
  for (const auto& [k, v] : model.file->metadata())
    if (k != "lora_adapter_metadata" && k.rfind("lora_verify.", 0) != 0) out.metadata[k] = v;
  if (model.file->metadata().count("lora_adapter_metadata"))
    out.notes.push_back({"convert.metadata.dropped", Severity::kInfo, "lora_adapter_metadata",
                         "lora_adapter_metadata not copied: its scales are folded into the output"});
  out.metadata["format"] = "pt";
  out.metadata["lora_verify.version"] = LV_VERSION;
  out.metadata["lora_verify.source_dialect"] = model.dialect.name();
  out.metadata["lora_verify.layout"] = std::string(layout_name(opt.to));
  out.metadata["lora_verify.style"] = std::string(style_name(opt.style));
  // The model family the file was read as: a later read of this output can tell FLUX.1 from
  // FLUX.2 [klein] 4B even where its shapes alone cannot (src/lora/detect.cpp).
  if (!model.family.empty()) out.metadata["lora_verify.model"] = model.family;
  if (!opt.source_name.empty()) out.metadata["lora_verify.source"] = opt.source_name;
  return out;
}

std::vector<st::TensorToWrite> tensors_to_write(const Conversion& c) {
  std::vector<st::TensorToWrite> v;
  v.reserve(c.tensors.size());
  for (const auto& t : c.tensors) v.push_back({t.name, t.dtype, t.shape, t.data()});
  return v;
}

}  // namespace lv
