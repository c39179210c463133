// The equivalence engine: exact zero for identical sides, accuracy far below √ε when the
// sides nearly agree, agreement with a dense reference, statuses and tolerances.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>

#include "lora/converter.h"
#include "lora/reread.h"
#include "safetensors/writer.h"
#include "support/lora_support.h"
#include "verify/equivalence.h"

using namespace lv;
using test::Tensor;

namespace {

const flux::Layout kTiny = flux::Layout::tiny();
const uint64_t H = static_cast<uint64_t>(kTiny.hidden);

// A diffusers LoRA on the img qkv of block 0 (q and v, rank 3) in `dtype`, with B scaled.
LoraModel qv(uint64_t seed, double b_scale = 1.0, st::DType dtype = st::DType::kF64, double poison = 0) {
  auto bq = test::random_values(3 * H, seed + 1);
  for (auto& x : bq) x *= b_scale;
  if (poison != 0) bq[0] = poison;
  std::vector<Tensor> ts = {
      {"transformer.transformer_blocks.0.attn.to_q.lora_A.weight", {3, H}, test::random_values(3 * H, seed), dtype},
      {"transformer.transformer_blocks.0.attn.to_q.lora_B.weight", {H, 3}, bq, dtype},
      {"transformer.transformer_blocks.0.attn.to_v.lora_A.weight", {3, H}, test::random_values(3 * H, seed + 2), dtype},
      {"transformer.transformer_blocks.0.attn.to_v.lora_B.weight", {H, 3}, test::random_values(3 * H, seed + 3), dtype},
  };
  return test::load_or_die(test::file_from_bytes(test::build_file(ts)), kTiny);
}

verify::ModuleResult only(const LoraModel& a, const LoraModel& b) {
  auto r = verify::compare(a, b);
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(r->modules.size(), 1u);
  return r->modules.at(0);
}

}  // namespace

TEST(Equivalence, IdenticalSidesReportExactlyZero) {
  auto a = qv(1), b = qv(1);
  auto m = only(a, b);
  EXPECT_EQ(m.status, verify::ModuleStatus::kEquivalent);
  EXPECT_EQ(m.relative_error, 0.0);
}

TEST(Equivalence, NearlyEqualSidesAreMeasuredAccuratelyNotAtTheSqrtEpsilonFloor) {
  auto a = qv(1);
  for (double eps : {1e-6, 1e-10, 1e-13}) {
    auto b = qv(1, 1.0 + eps);  // q's B scaled by 1+eps
    auto m = only(a, b);
    // ΔW_q is about half of ΔW by norm; the error must be of order eps, not 1e-8 noise.
    EXPECT_GT(m.relative_error, eps * 0.2) << eps;
    EXPECT_LT(m.relative_error, eps * 1.2) << eps;
  }
}

TEST(Equivalence, AgreesWithADenseReference) {
  auto a = qv(1), b = qv(7);
  auto m = only(a, b);
  std::vector<const Part*> pa, pb;
  for (const auto& p : a.parts) pa.push_back(&p);
  for (const auto& p : b.parts) pb.push_back(&p);
  Eigen::MatrixXd da = verify::dense_delta(pa, m.rows, m.cols), db = verify::dense_delta(pb, m.rows, m.cols);
  const double dense = (da - db).norm() / da.norm();
  EXPECT_NEAR(m.relative_error, dense, 1e-12 * dense);
  EXPECT_EQ(m.status, verify::ModuleStatus::kDifferent);
}

TEST(Equivalence, NonFiniteValuesAreInvalidNeverAPass) {
  auto a = qv(1, 1.0, st::DType::kF64, std::numeric_limits<double>::quiet_NaN());
  auto m = only(a, a);
  EXPECT_EQ(m.status, verify::ModuleStatus::kInvalid);
  auto b = qv(1, 1.0, st::DType::kF64, std::numeric_limits<double>::infinity());
  EXPECT_EQ(only(qv(1), b).status, verify::ModuleStatus::kInvalid);
}

TEST(Equivalence, ToleranceFollowsTheCoarsestDtype) {
  auto f64 = qv(1), bf16 = qv(1, 1.0, st::DType::kBF16);
  auto m64 = only(f64, qv(1));
  auto m16 = only(f64, bf16);
  EXPECT_GT(m16.tolerance, 100 * m64.tolerance);
  EXPECT_EQ(m16.status, verify::ModuleStatus::kEquivalent) << m16.relative_error << " vs " << m16.tolerance;
  EXPECT_GT(m16.relative_error, 0.0);
}

TEST(Equivalence, MissingAndExtraModules) {
  LoraModel empty;
  empty.layout = kTiny;
  auto a = qv(1);
  auto r = verify::compare(a, empty);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->modules.at(0).status, verify::ModuleStatus::kMissingInB);
  auto e = verify::compare(empty, a);
  EXPECT_EQ(e->modules.at(0).status, verify::ModuleStatus::kMissingInA);
  EXPECT_TRUE(std::isinf(e->modules.at(0).relative_error));
  EXPECT_FALSE(e->all_equivalent);
}

// The byte-level shortcut (factors that cancel bit for bit) agrees with the numerical path
// on every module of every conversion of a generated LoRA, in every style, both ways; and
// where it reports exactly 0 the numerical error is below 1e-15.
TEST(Equivalence, ByteShortcutAgreesWithTheNumericalPath) {
  for (lv::Style style : {lv::Style::kKohya, lv::Style::kComfy, lv::Style::kPeft, lv::Style::kBfl}) {
    for (auto dtype : {lv::st::DType::kBF16, lv::st::DType::kF32}) {
      lv::GenSpec spec;
      spec.layout = lv::flux::Layout::tiny();
      spec.rank = 3;
      spec.dtype = dtype;
      spec.mixed_ranks = true;
      const auto in = lv::test::load_or_die(lv::test::generated(spec), spec.layout);
      lv::ConvertOptions co;
      co.style = style;
      auto conv = lv::convert_and_reread(in, co);
      ASSERT_TRUE(conv.ok()) << conv.error().message;
      const lv::LoraModel& out = conv->out.model;
      for (const auto& [a, b] : {std::pair{&in, &out}, std::pair{&out, &in}}) {
        lv::verify::CompareOptions fast, slow;
        slow.exact_bytes_shortcut = false;
        auto rf = lv::verify::compare(*a, *b, fast);
        auto rs = lv::verify::compare(*a, *b, slow);
        ASSERT_TRUE(rf.ok() && rs.ok());
        ASSERT_EQ(rf->modules.size(), rs->modules.size());
        int zero = 0;
        for (size_t i = 0; i < rf->modules.size(); ++i) {
          EXPECT_EQ(rf->modules[i].status, rs->modules[i].status) << rf->modules[i].target;
          if (rf->modules[i].relative_error == 0) {
            ++zero;
            EXPECT_LE(rs->modules[i].relative_error, 1e-15) << rf->modules[i].target;
          }
        }
        EXPECT_GT(zero, 0) << lv::style_name(style);
      }
    }
  }
}

// A single flipped bit in a converted up is not hidden by the shortcut.
TEST(Equivalence, ByteShortcutDoesNotHideAFlippedBit) {
  lv::GenSpec spec;
  spec.layout = lv::flux::Layout::tiny();
  spec.rank = 3;
  spec.dtype = lv::st::DType::kBF16;
  auto in = lv::test::load_or_die(lv::test::generated(spec), spec.layout);
  lv::ConvertOptions co;
  co.style = lv::Style::kBfl;
  auto conv = lv::convert(in, co);
  ASSERT_TRUE(conv.ok());
  bool flipped = false;
  for (auto& t : conv->tensors)
    if (t.name == "double_blocks.0.img_attn.qkv.lora_B.weight") {
      std::vector<uint8_t> b(t.data().begin(), t.data().end());
      b[5] ^= 0x40;  // an exponent bit of a BF16 value
      t.view = {};
      t.owned = std::move(b);
      flipped = true;
    }
  ASSERT_TRUE(flipped);
  auto bytes = lv::st::serialize(lv::tensors_to_write(*conv), conv->metadata);
  ASSERT_TRUE(bytes.ok());
  auto out = lv::test::load_or_die(lv::test::file_from_bytes(std::move(bytes).value()), spec.layout);
  auto r = lv::verify::compare(in, out);
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->all_equivalent);
  for (const auto& m : r->modules)
    EXPECT_EQ(m.status == lv::verify::ModuleStatus::kEquivalent, m.target != "double_blocks.0.img_attn.qkv") << m.target;
}

namespace {

// A rank-4 BF16 kohya LoRA on the tiny layout with `alpha` (scale alpha/4).
LoraModel kohya_tiny(double alpha) {
  GenSpec spec;
  spec.layout = kTiny;
  spec.dialect = "kohya";
  spec.rank = 4;
  spec.alpha = alpha;
  spec.dtype = st::DType::kBF16;
  return test::load_or_die(test::generated(spec), kTiny);
}

// Conversion to diffusers: kohya's scale folds into the split downs.
ConvertOptions to_diffusers() {
  ConvertOptions co;
  co.to = OutputLayout::kDiffusers;
  co.style = Style::kDiffusers;
  return co;
}

}  // namespace

// kohya with alpha = rank/2 or 2·rank → diffusers: the scale folds into the downs by moving
// exponents only, so the shortcut shows every module exactly equal (error and tolerance 0:
// nothing was rounded), in both directions, and the numerical path agrees.
TEST(Equivalence, APowerOfTwoFoldIsShownExactAndTheNumericalPathAgrees) {
  for (double alpha : {2.0, 8.0}) {
    const auto in = kohya_tiny(alpha);
    auto conv = lv::convert_and_reread(in, to_diffusers());
    ASSERT_TRUE(conv.ok()) << conv.error().message;
    ASSERT_NE(in.parts.at(0).scale, 1.0);
    const lv::LoraModel* out = &conv->out.model;
    for (const auto& [a, b] : {std::pair{&in, out}, std::pair{out, &in}}) {
      lv::verify::CompareOptions slow;
      slow.exact_bytes_shortcut = false;
      auto rf = lv::verify::compare(*a, *b), rs = lv::verify::compare(*a, *b, slow);
      ASSERT_TRUE(rf.ok() && rs.ok());
      ASSERT_EQ(rf->modules.size(), rs->modules.size());
      for (size_t i = 0; i < rf->modules.size(); ++i) {
        const auto &f = rf->modules[i], &n = rs->modules[i];
        EXPECT_EQ(f.status, lv::verify::ModuleStatus::kEquivalent) << f.target;
        EXPECT_EQ(n.status, f.status) << f.target;
        EXPECT_EQ(f.relative_error, 0.0) << f.target << " alpha " << alpha;
        EXPECT_EQ(f.tolerance, 0.0) << f.target;
        EXPECT_LE(n.relative_error, 1e-15) << f.target;
      }
    }
  }
}

// The same power-of-two fold with one bit of one folded down flipped: that module, and only
// it, is not equivalent. A fold that rounds (scale 0.375) is not shown exact: the numerical
// path gives its tolerance.
TEST(Equivalence, AFoldIsExactOnlyWhenNothingRounded) {
  const auto in = kohya_tiny(2);
  auto conv = lv::convert(in, to_diffusers());
  ASSERT_TRUE(conv.ok());
  std::string flipped;
  for (auto& t : conv->tensors)
    if (flipped.empty() && t.name.ends_with("attn.to_k.lora_A.weight")) {
      std::vector<uint8_t> b(t.data().begin(), t.data().end());
      b[7] ^= 0x01;  // the lowest mantissa bit of a BF16 value
      t.view = {};
      t.owned = std::move(b);
      flipped = t.name;
    }
  ASSERT_FALSE(flipped.empty());
  auto bytes = lv::st::serialize(lv::tensors_to_write(*conv), conv->metadata);
  ASSERT_TRUE(bytes.ok());
  auto out = lv::test::load_or_die(lv::test::file_from_bytes(std::move(bytes).value()), kTiny);
  auto r = lv::verify::compare(in, out);
  ASSERT_TRUE(r.ok());
  int different = 0;
  for (const auto& m : r->modules) different += m.status != lv::verify::ModuleStatus::kEquivalent;
  EXPECT_EQ(different, 1) << flipped;

  const auto in2 = kohya_tiny(1.5);  // scale 0.375: folding it rounds in BF16
  auto conv2 = lv::convert_and_reread(in2, to_diffusers());
  ASSERT_TRUE(conv2.ok());
  auto r2 = lv::verify::compare(in2, conv2->out.model);
  ASSERT_TRUE(r2.ok());
  EXPECT_TRUE(r2->all_equivalent);
  int rounded = 0;
  for (const auto& m : r2->modules) rounded += m.tolerance > 0 && m.relative_error > 0;
  EXPECT_GT(rounded, 0);
}

// Random conversions of a kohya qkv module with the scale carried every way: in alpha,
// folded into either factor, split between both in powers of two (sd-scripts), by an
// arbitrary power of two each, or by a scale that rounds; into the same, a wider or a
// narrower dtype; some with a factor's value nudged, the alpha nudged, doubled or negated
// (a power of two or a sign away: only the scales show it). Wherever the
// exact path shows the sides equal, the numerical path measures at most 1e-15, and the two
// paths always give the same status.
TEST(Equivalence, TheExactPathAgreesWithTheNumericalPathOnRandomFolds) {
  std::mt19937_64 rng(42);
  const uint64_t rank = 4, rows = 3 * H;
  const char* m = "lora_unet_double_blocks_0_img_attn_qkv";
  const std::vector<st::DType> dtypes = {st::DType::kBF16, st::DType::kF16, st::DType::kF32};
  int exact = 0, trials = 0;
  for (int trial = 0; trial < 300; ++trial) {
    const st::DType src = dtypes[rng() % 3], out = rng() % 3 == 0 ? dtypes[rng() % 3] : src;
    const double alpha = rng() % 4 == 0 ? 0.37 * rank : std::ldexp(static_cast<double>(rank), static_cast<int>(rng() % 7) - 4);
    const double s = alpha / rank;
    double s_down = 1, s_up = 1, alpha_b = alpha;
    switch (rng() % 5) {
      case 0: break;                                      // alpha kept
      case 1: s_down = s, alpha_b = rank; break;          // folded into the down
      case 2: s_up = s, alpha_b = rank; break;            // into the up
      case 3:                                             // sd-scripts' split
        s_down = s, alpha_b = rank;
        while (s_down * 2 < s_up) s_down *= 2, s_up /= 2;
        break;
      default: {                                          // 2^a into the down, s/2^a into the up
        const int a = static_cast<int>(rng() % 5) - 2;
        s_down = std::ldexp(1.0, a), s_up = s / s_down, alpha_b = rank;
      }
    }
    auto down = test::random_values(rank * H, 100 + trial, 0.05), up = test::random_values(rows * rank, 200 + trial, 0.02);
    for (auto* v : {&down, &up}) {  // the source's own values
      std::vector<uint8_t> bytes(v->size() * st::dtype_bits(src) / 8);
      st::encode_from_double(src, v->data(), v->size(), bytes.data());
      st::decode_to_double(src, bytes.data(), v->size(), v->data());
    }
    auto down_b = down, up_b = up;
    for (double& x : down_b) x *= s_down;
    for (double& x : up_b) x *= s_up;
    const int harm = static_cast<int>(rng() % 8);
    if (harm == 0) down_b[rng() % down_b.size()] *= 1.0 + std::ldexp(1.0, -6);
    if (harm == 1) up_b[rng() % up_b.size()] *= 1.0 - std::ldexp(1.0, -6);
    if (harm == 2) alpha_b *= 1.01;
    if (harm == 3) alpha_b *= 2;  // double the strength: a power of two too many
    if (harm == 4) alpha_b = -alpha_b;
    const auto file = [&](const std::vector<double>& d, const std::vector<double>& u, double al, st::DType dt) {
      std::vector<Tensor> ts = {{std::string(m) + ".lora_down.weight", {rank, H}, d, dt},
                                {std::string(m) + ".lora_up.weight", {rows, rank}, u, dt},
                                {std::string(m) + ".alpha", {}, {al}, st::DType::kF32}};
      return test::load_or_die(test::file_from_bytes(test::build_file(ts)), kTiny);
    };
    const LoraModel a = file(down, up, alpha, src), b = file(down_b, up_b, alpha_b, out);
    verify::CompareOptions slow;
    slow.exact_bytes_shortcut = false;
    const auto rf = verify::compare(a, b), rs = verify::compare(a, b, slow);
    ASSERT_TRUE(rf.ok() && rs.ok());
    const auto &f = rf->modules.at(0), &n = rs->modules.at(0);
    SCOPED_TRACE("trial " + std::to_string(trial));
    EXPECT_EQ(f.status, n.status) << f.relative_error << " vs " << n.relative_error << " (tolerance " << n.tolerance << ")";
    if (f.relative_error == 0 && f.tolerance == 0) {
      ++exact;
      EXPECT_LE(n.relative_error, 1e-15);
    }
    ++trials;
  }
  // Both kinds occur: the exact path is taken, and it is not taken for everything.
  EXPECT_GT(exact, trials / 5);
  EXPECT_LT(exact, trials * 4 / 5);
}

namespace {

// Every module of `in` against its conversion `out`: each error agrees with the dense
// reference ‖ΔW_A − ΔW_B‖_F / ‖ΔW_A‖_F. Returns how many modules had a non-zero error.
int expect_dense_agreement(const LoraModel& in, const LoraModel& out, double rel) {
  lv::verify::CompareOptions o;
  o.exact_bytes_shortcut = false;
  auto r = lv::verify::compare(in, out, o);
  EXPECT_TRUE(r.ok());
  if (!r.ok()) return 0;
  int nonzero = 0;
  for (const auto& m : r->modules) {
    std::vector<const Part*> pa, pb;
    for (const auto& p : in.parts)
      if (p.target == m.target) pa.push_back(&p);
    for (const auto& p : out.parts)
      if (p.target == m.target) pb.push_back(&p);
    const Eigen::MatrixXd da = verify::dense_delta(pa, m.rows, m.cols), db = verify::dense_delta(pb, m.rows, m.cols);
    const double dense = (da - db).norm() / da.norm();
    EXPECT_NEAR(m.relative_error, dense, rel * dense + 1e-300) << m.target;
    EXPECT_EQ(m.status, verify::ModuleStatus::kEquivalent) << m.target << " " << m.relative_error << " vs " << m.tolerance;
    nonzero += m.relative_error > 0;
  }
  return nonzero;
}

double bf16(double x) {
  uint8_t b[2];
  st::encode_from_double(st::DType::kBF16, &x, 1, b);
  st::decode_to_double(st::DType::kBF16, b, 1, &x);
  return x;
}

LoraModel converted(const LoraModel& in, const lv::ConvertOptions& co) {
  auto c = lv::convert_and_reread(in, co);
  EXPECT_TRUE(c.ok()) << c.error().message;
  return c.ok() ? std::move(c->out.model) : LoraModel{};
}

}  // namespace

// Scales folded into the downs (kohya with alphas → diffusers; diffusers → BFL with per-part
// alphas): the ups are shared, and the error comes from the downs' difference. It matches
// the dense reference, in BF16 and F32 output.
TEST(Equivalence, SharedUpsFoldedScalesAgreeWithTheDenseReference) {
  for (auto out_dtype : {st::DType::kBF16, st::DType::kF32}) {
    GenSpec spec;
    spec.layout = kTiny;
    spec.dialect = "kohya";
    spec.rank = 4;
    spec.alpha = 1.7;  // scale 0.425: not exact in F32 either
    spec.dtype = st::DType::kBF16;
    auto in = test::load_or_die(test::generated(spec), kTiny);
    ConvertOptions co;
    co.to = OutputLayout::kDiffusers;
    co.style = Style::kDiffusers;
    co.dtype = out_dtype;
    EXPECT_GT(expect_dense_agreement(in, converted(in, co), 1e-9), 0);

    GenSpec d;
    d.layout = kTiny;
    d.rank = 4;
    d.alpha = 1.3;
    d.per_part_alpha = true;
    auto din = test::load_or_die(test::generated(d), kTiny);
    ConvertOptions bfl;
    bfl.style = Style::kPeft;
    bfl.dtype = out_dtype;
    EXPECT_GT(expect_dense_agreement(din, converted(din, bfl), 1e-9), 0);
  }
}

// Another tool's conversion: F32, scales folded into the ups, downs equal in value (F32
// holds every BF16 exactly): the downs are shared, the error comes from the ups.
TEST(Equivalence, SharedDownsScalesInTheUpsAgreeWithTheDenseReference) {
  const double s = 0.37;
  auto qv_scaled = [&](st::DType dtype, double up_scale) {
    std::vector<Tensor> ts;
    for (const char* m : {"to_q", "to_v"}) {
      const std::string base = std::string("transformer.transformer_blocks.0.attn.") + m;
      auto a = test::random_values(3 * H, m[3] == 'q' ? 11 : 12), b = test::random_values(3 * H, m[3] == 'q' ? 13 : 14);
      for (auto& x : a) x = bf16(x);
      for (auto& x : b) x = bf16(x) * up_scale;
      ts.push_back({base + ".lora_A.weight", {3, H}, a, dtype});
      ts.push_back({base + ".lora_B.weight", {H, 3}, b, dtype});
    }
    std::map<std::string, std::string> meta;
    if (up_scale == 1.0) meta["lora_adapter_metadata"] = R"({"r": 3, "lora_alpha": )" + std::to_string(3 * s) + "}";
    return test::load_or_die(test::file_from_bytes(test::build_file(ts, meta)), kTiny);
  };
  auto a = qv_scaled(st::DType::kBF16, 1.0), b = qv_scaled(st::DType::kF32, s);
  ASSERT_NE(a.parts.at(0).scale, 1.0);
  EXPECT_EQ(expect_dense_agreement(a, b, 1e-9), 1);
}

// Nearly equal sides that share no factor (B·M and M⁻¹·A, one entry of A nudged): the
// Gram formula would lose the error to cancellation; the result still matches the dense
// reference to many digits (the thin-QR fallback), at every size of the nudge.
TEST(Equivalence, NearlyEqualSidesWithoutASharedFactorStayAccurate) {
  const Eigen::Matrix3d mix = (Eigen::Matrix3d() << 2, 1, 0, 0.5, 1.5, 0.25, 0, 0.75, 1).finished();
  const Eigen::Matrix3d inv = mix.inverse();
  auto model = [&](bool mixed, double nudge) {
    std::vector<Tensor> ts;
    for (const char* m : {"to_q", "to_v"}) {
      const std::string base = std::string("transformer.transformer_blocks.0.attn.") + m;
      auto av = test::random_values(3 * H, m[3] == 'q' ? 21 : 22), bv = test::random_values(3 * H, m[3] == 'q' ? 23 : 24);
      if (mixed) {
        Eigen::Map<Eigen::Matrix<double, 3, Eigen::Dynamic, Eigen::RowMajor>> a(av.data(), 3, static_cast<Eigen::Index>(H));
        Eigen::Map<Eigen::Matrix<double, Eigen::Dynamic, 3, Eigen::RowMajor>> b(bv.data(), static_cast<Eigen::Index>(H), 3);
        Eigen::Matrix<double, 3, Eigen::Dynamic, Eigen::RowMajor> a2 = inv * a;
        Eigen::Matrix<double, Eigen::Dynamic, 3, Eigen::RowMajor> b2 = b * mix;
        a = a2;
        b = b2;
        if (m[3] == 'q') av[5] += nudge;
      }
      ts.push_back({base + ".lora_A.weight", {3, H}, av, st::DType::kF64});
      ts.push_back({base + ".lora_B.weight", {H, 3}, bv, st::DType::kF64});
    }
    return test::load_or_die(test::file_from_bytes(test::build_file(ts)), kTiny);
  };
  auto a = model(false, 0);
  for (double nudge : {1e-3, 1e-7, 1e-10}) {
    auto b = model(true, nudge);
    auto m = only(a, b);
    std::vector<const Part*> pa, pb;
    for (const auto& p : a.parts) pa.push_back(&p);
    for (const auto& p : b.parts) pb.push_back(&p);
    const Eigen::MatrixXd da = verify::dense_delta(pa, m.rows, m.cols), db = verify::dense_delta(pb, m.rows, m.cols);
    const double dense = (da - db).norm() / da.norm();
    // The dense reference itself carries ε‖ΔW‖ of rounding: ≈1e-16 / nudge relative.
    EXPECT_NEAR(m.relative_error, dense, dense * std::max(1e-9, 1e-13 / nudge)) << nudge;
    EXPECT_GT(m.relative_error, 0.0);
  }
}
