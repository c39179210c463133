// Value checks on an input LoRA: NaN/Inf counted per tensor with the first bad element,
// all-zero factors (−0.0 included), mixed dtypes — in every float dtype lora-verify writes.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "support/lora_support.h"
#include "verify/checks.h"

namespace lv {
namespace {

const flux::Layout kTiny = flux::Layout::tiny();
const uint64_t H = static_cast<uint64_t>(kTiny.hidden);
const std::string kQ = "transformer.transformer_blocks.0.attn.to_q.";

LoraModel model_with(std::vector<double> down, std::vector<double> up, st::DType dtype) {
  std::vector<test::Tensor> ts = {{kQ + "lora_A.weight", {1, H}, std::move(down), dtype},
                                  {kQ + "lora_B.weight", {H, 1}, std::move(up), dtype}};
  return test::load_or_die(test::file_from_bytes(test::build_file(ts)), kTiny);
}

std::vector<Finding> with_id(const std::vector<Finding>& fs, const std::string& id) {
  std::vector<Finding> out;
  for (const auto& f : fs)
    if (f.id == id) out.push_back(f);
  return out;
}

class ValueChecks : public ::testing::TestWithParam<st::DType> {};

TEST_P(ValueChecks, CountsNonFiniteValuesAndNamesTheFirst) {
  const st::DType d = GetParam();
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  std::vector<double> down = test::random_values(H, 1), up = test::random_values(H, 2);
  down[3] = nan;
  down[5] = -inf;
  auto fs = with_id(verify::check_values(model_with(down, up, d)), "lora.value.nonfinite");
  ASSERT_EQ(fs.size(), 1u);
  EXPECT_EQ(fs[0].tensor, kQ + "lora_A.weight");
  EXPECT_NE(fs[0].message.find("2 of 8 values"), std::string::npos) << fs[0].message;
  EXPECT_NE(fs[0].message.find("first at element 3"), std::string::npos) << fs[0].message;
  EXPECT_EQ(fs[0].severity, Severity::kError);
}

TEST_P(ValueChecks, FiniteExtremesAreNotFlagged) {
  const st::DType d = GetParam();
  std::vector<double> down = test::random_values(H, 1), up = test::random_values(H, 2);
  down[0] = d == st::DType::kF16 ? 65504.0 : 1e30;
  down[1] = -down[0];
  down[2] = 0.0;
  EXPECT_TRUE(with_id(verify::check_values(model_with(down, up, d)), "lora.value.nonfinite").empty());
}

TEST_P(ValueChecks, AnAllZeroFactorIsAWarningEvenWithNegativeZeros) {
  const st::DType d = GetParam();
  std::vector<double> zeros(H, 0.0);
  zeros[2] = -0.0;
  auto fs = with_id(verify::check_values(model_with(test::random_values(H, 1), zeros, d)), "lora.delta.zero");
  ASSERT_EQ(fs.size(), 1u);
  EXPECT_EQ(fs[0].tensor, kQ + "lora_B.weight");
  EXPECT_EQ(fs[0].severity, Severity::kWarning);
  std::vector<double> tiny(H, 0.0);
  tiny[7] = 1e-7;  // one non-zero value: not all zero
  EXPECT_TRUE(with_id(verify::check_values(model_with(test::random_values(H, 1), tiny, d)), "lora.delta.zero").empty());
}

INSTANTIATE_TEST_SUITE_P(Dtypes, ValueChecks,
                         ::testing::Values(st::DType::kF32, st::DType::kF64, st::DType::kF16, st::DType::kBF16),
                         [](const auto& info) { return std::string(st::dtype_name(info.param)); });

TEST(ValueChecks, MixedDtypesAreReported) {
  std::vector<test::Tensor> ts = {{kQ + "lora_A.weight", {1, H}, test::random_values(H, 1), st::DType::kF32},
                                  {kQ + "lora_B.weight", {H, 1}, test::random_values(H, 2), st::DType::kBF16}};
  auto fs = with_id(verify::check_values(test::load_or_die(test::file_from_bytes(test::build_file(ts)), kTiny)),
                    "lora.dtype.mixed");
  ASSERT_EQ(fs.size(), 1u);
  EXPECT_NE(fs[0].message.find("BF16, F32"), std::string::npos) << fs[0].message;
}

}  // namespace
}  // namespace lv
