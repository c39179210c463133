// The equivalence engine: exact zero for identical sides, accuracy far below √ε when the
// sides nearly agree, agreement with a dense reference, statuses and tolerances.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

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
