// The equivalence engine: for every BFL target, the relative Frobenius error between the
// weight deltas of two canonical models, computed exactly from the factors in double
// precision without materialising ΔW.
//
// Method. On each row segment of a target (the row ranges where the set of parts covering
// the rows is constant), the difference ΔW_A − ΔW_B restricted to those rows is U·Vᵀ with
// U = [s·B_rows of A's parts, −s·B_rows of B's parts] (all-zero columns dropped) and
// V = [the matching downs, transposed]. Terms whose down rows are equal in value share one
// V column and their up columns are summed in double; terms whose up columns are equal
// share one U column and their down rows are summed (the shared-factor cases: a factor
// copied, split, or converted to a wider dtype, the scale folded into the other one). The
// difference of the two sides is thus formed elementwise before any product, and U, V
// carry one side's rank; only when no factor is shared do they stack both sides.
// ‖U Vᵀ‖_F² = Σ (UᵀU) ∘ (VᵀV) from two symmetric rank-k updates, O((q + m)·n²), cached per
// target (a part's downs serve every segment, and the same columns serve side A's norm).
// The value is kept when its rounding bound (q + m + n² + 1)·ε·(Σ_j ‖u_j‖‖v_j‖)² is below
// 2⁻²⁰ of it; otherwise — the sides cancel inside the product, as nearly equal sides that
// share no factor do — it is recomputed from one thin Householder QR of the factor with
// fewer rows, ‖R·Vᵀ‖ or ‖U·Rᵀ‖: backward stable, so nearly equal sides give a small,
// accurate error (the Gram formula alone would lose everything below √ε ≈ 1e-8 there).
// Sides whose parts are bit for bit identical report exactly 0, and so do targets whose
// terms cancel exactly: each up column equal byte for byte to one of the other side, with
// the same s·(down row) — equal bytes and scale (the usual bit-exact conversion: nothing is
// decoded), or equal exact products in double (a scale folded into the downs where it only
// moves exponents, as alpha = rank/2). Nothing was rounded there, so both report the
// tolerance 0. LoKr, LoHa and dense-diff
// parts have no factors: a target holding one is evaluated densely, row by row.
//
// Tolerance: the rounding that actually happened. Side B (the converted file) is taken as
// side A's delta written with every factor entry rounded once to its dtype (round to
// nearest: it moves by at most u·|entry|) and its scale to its alpha tensor's dtype. A B
// term s·ũ·ṽᵀ whose up column (or down row) equals one of A's bit for bit after widening
// was not rounded there and contributes nothing; only the re-rounded factors count. With
// E = ΔW_B − ΔW_A under that model, per term d = |s|(ū_u + ū_v + ū_uū_v + u_s(1+ū_u)(1+ū_v)):
//   ‖E‖_F ≤ ‖Σ d·|ũ||ṽ|ᵀ‖_F        (from the Grams of the absolute factors),
//   |⟨E, ΔW_A⟩| ≤ Σ |s|(ū_u‖ũ‖‖ΔW_A ṽ‖ + ū_v‖ṽ‖‖ΔW_Aᵀũ‖ + ū_uū_v‖ũ‖‖ṽ‖‖ΔW_A‖ + u_s|ũᵀΔW_A ṽ|)
// (the norms from the Grams of A's factors and the cross products V_A·ṽ, U_Aᵀ·ũ, which are
// columns of A's Grams when the factor is shared). Both bounds are rigorous under the model,
// plus the double-precision error of computing them. The first bounds the relative error
// (tolerance); the second bounds how far the gain g = ⟨ΔW_B, ΔW_A⟩/‖ΔW_A‖² may sit from 1
// (gain_tolerance). The elementwise bound is loose by about √rank·2/π against random
// rounding (BF16, scale folded into one factor, rank 16: tolerance ≈ 1.2%, error ≈ 0.2%);
// the gain's is tight when a factor's rows are nearly orthogonal, as trained factors' are
// (≈ 1.0–1.1 u: 0.39–0.43% at BF16). A scale error moves the gain and leaves the residual
// ‖ΔW_B − g·ΔW_A‖ small; the module fails with the gain named. The resolution of a target is
// the smallest scale error it is sure to catch: gain_tolerance + |g − 1| (or the error's
// margin, if smaller). Bias deltas: each entry rounded once, u of B's bias dtype plus its
// scale's. Dense targets keep 4·u·max(1, K), K = Σ|s|‖B‖_F‖A‖_F / ‖ΔW_A‖_F, for both.
//
// DoRA. The merged weight needs the base weights, so the check covers what the file
// holds: the factors (as above) and the magnitudes, which must sit on the same rows (per
// row) or the same part rows (per column) on both sides, equal within 4·u of their dtype.
#pragma once

#include <Eigen/Dense>
#include <cstdint>
#include <string>
#include <vector>

#include "core/result.h"
#include "lora/model.h"

namespace lv::verify {

struct CompareOptions {
  int threads = 2;
  double tolerance_override = -1;  // > 0 replaces the computed tolerance
  // Targets whose terms cancel exactly (bytes copied, or a fold that only moved exponents)
  // report 0 without the numerical path; off only to cross-check that path in tests and
  // fuzzing.
  bool exact_bytes_shortcut = true;
};

enum class ModuleStatus { kEquivalent, kDifferent, kMissingInB, kMissingInA, kInvalid };

struct ModuleResult {
  std::string target;
  int64_t rows = 0, cols = 0;
  ModuleStatus status = ModuleStatus::kEquivalent;
  double norm_a = 0, abs_error = 0, relative_error = 0, tolerance = 0;
  // Gain g = ⟨ΔW_B, ΔW_A⟩/‖ΔW_A‖² (1 when A's delta is zero), its tolerance from B's
  // rounding, the residual ‖ΔW_B − g·ΔW_A‖/‖ΔW_A‖, and the resolution: the smallest scale
  // error of this target the check is sure to catch.
  double gain = 1, gain_tolerance = 0, residual = 0, resolution = 0;
  bool scale_error = false;  // different, and the difference is the gain alone
  std::string scale_cause;   // "likely alpha ignored: …" when the gain matches a common bug
  double bias_norm_a = 0, bias_error = 0;  // bias_error is relative (absolute when A's bias is 0)
  // DoRA magnitudes (when either side has one): relative error over the rows (per-row
  // magnitudes) and part row ranges (per-column ones) both sides cover the same way.
  bool dora = false;
  double magnitude_error = 0;
  std::vector<int64_t> ranks_a, ranks_b;
  int parts_a = 0, parts_b = 0;
  std::string message;
};

struct CompareResult {
  std::vector<ModuleResult> modules;  // sorted by target name
  bool all_equivalent = true;
  double worst_relative_error = 0;
};

// A gain as "1.005×" (four significant digits: a 0.5% scale error shows).
std::string gain_text(double gain);

Result<CompareResult> compare(const LoraModel& a, const LoraModel& b, const CompareOptions& options = {});
Result<CompareResult> compare_parts(const std::vector<Part>& a, const std::vector<Part>& b, const CompareOptions& options = {});

// Dense reference of a target's delta (tests only, small shapes).
Eigen::MatrixXd dense_delta(const std::vector<const Part*>& parts, int64_t rows, int64_t cols);

}  // namespace lv::verify
