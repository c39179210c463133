// `compare` against deliberately wrong conversions: every classic converter bug must be
// caught, and correct conversions (every strategy, style and dtype) must pass. The wrong
// files are built here by an independent, plain fusion written with Eigen.
#include <gtest/gtest.h>

#include <Eigen/Dense>
#include <functional>
#include <map>

#include "lora/converter.h"
#include "report/pipeline.h"
#include "safetensors/writer.h"
#include "support/lora_support.h"

using namespace lv;

namespace {

const flux::Layout kTiny = flux::Layout::tiny();

// One fused BFL module as a plain converter would write it (kohya style).
struct Fused {
  std::string target;
  Eigen::MatrixXd down, up;  // R × cols, rows × R
  double alpha = 0;          // written as .alpha
  Eigen::VectorXd bias;      // empty: none
};

Eigen::MatrixXd decode(const st::TensorView& t) {
  std::vector<double> v(t.numel);
  st::decode_to_double(t.dtype, t.data, t.numel, v.data());
  Eigen::MatrixXd m(t.shape[0], t.numel / t.shape[0]);
  for (Eigen::Index i = 0; i < m.rows(); ++i)
    for (Eigen::Index j = 0; j < m.cols(); ++j) m(i, j) = v[static_cast<size_t>(i * m.cols() + j)];
  return m;
}

// The textbook general construction: downs stacked with their scales folded, ups placed
// block-diagonally at their rows (norm_out halves swapped on B), alpha = rank.
std::map<std::string, Fused> reference_fuse(const LoraModel& m) {
  std::map<std::string, Fused> out;
  std::map<std::string, std::vector<const Part*>> by_target;
  for (const auto& p : m.parts) by_target[p.target].push_back(&p);
  for (auto& [target, parts] : by_target) {
    Fused f;
    f.target = target;
    int64_t rank = 0;
    for (auto* p : parts) rank += p->rank();
    f.down.setZero(rank, parts[0]->target_cols);
    f.up.setZero(parts[0]->target_rows, rank);
    int64_t c = 0;
    for (auto* p : parts) {
      Eigen::MatrixXd a = decode(*p->down), b = decode(*p->up);
      f.down.middleRows(c, a.rows()) = p->scale * a;
      const int64_t len = p->row_end - p->row_begin;
      for (int64_t k = 0; k < len; ++k) {
        int64_t dst = p->row_begin + (p->swap_halves ? (k + len / 2) % len : k);
        f.up.block(dst, c, 1, b.cols()) = b.row(k);
      }
      if (p->bias) {
        if (f.bias.size() == 0) f.bias.setZero(parts[0]->target_rows);
        Eigen::MatrixXd bv = decode(*p->bias);
        for (int64_t k = 0; k < len; ++k)
          f.bias(p->row_begin + (p->swap_halves ? (k + len / 2) % len : k)) += p->bias_scale * bv(k, 0);
      }
      c += a.rows();
    }
    f.alpha = static_cast<double>(rank);
    out[target] = f;
  }
  return out;
}

std::vector<double> flat(const Eigen::MatrixXd& m) {
  std::vector<double> v;
  for (Eigen::Index i = 0; i < m.rows(); ++i)
    for (Eigen::Index j = 0; j < m.cols(); ++j) v.push_back(m(i, j));
  return v;
}

std::shared_ptr<const st::SafetensorsFile> write_kohya(const std::map<std::string, Fused>& mods, st::DType dtype = st::DType::kF32) {
  std::vector<test::Tensor> ts;
  for (auto& [target, f] : mods) {
    std::string n = "lora_unet_" + target;
    std::replace(n.begin(), n.end(), '.', '_');
    ts.push_back({n + ".lora_down.weight", {(uint64_t)f.down.rows(), (uint64_t)f.down.cols()}, flat(f.down), dtype});
    ts.push_back({n + ".lora_up.weight", {(uint64_t)f.up.rows(), (uint64_t)f.up.cols()}, flat(f.up), dtype});
    ts.push_back({n + ".alpha", {}, {f.alpha}, st::DType::kF32});
    if (f.bias.size()) ts.push_back({n + ".diff_b", {(uint64_t)f.bias.size()}, std::vector<double>(f.bias.data(), f.bias.data() + f.bias.size()), dtype});
  }
  return test::file_from_bytes(test::build_file(ts), "wrong.safetensors");
}

report::Report compare(std::shared_ptr<const st::SafetensorsFile> a, std::shared_ptr<const st::SafetensorsFile> b) {
  report::PipelineOptions o;
  o.layout = kTiny;
  auto r = report::run_compare(a, b, o);
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message);
  return r.ok() ? std::move(r).value() : report::Report{};
}

struct Source {
  std::shared_ptr<const st::SafetensorsFile> file;
  LoraModel model;
};

Source source(bool per_part_alpha = true, bool bias = true) {
  GenSpec s;
  s.layout = kTiny;
  s.rank = 3;
  s.dtype = st::DType::kF32;
  s.seed = 5;
  s.alpha = 2;
  s.per_part_alpha = per_part_alpha;
  s.bias = bias;
  auto f = test::generated(s);
  return {f, test::load_or_die(f, kTiny)};
}

// Applies `bug` to a correct reference conversion and expects compare to fail on `target`.
void expect_caught(const std::string& what, const std::string& target, const std::function<void(std::map<std::string, Fused>&)>& bug,
                   const Source& src) {
  SCOPED_TRACE(what);
  auto mods = reference_fuse(src.model);
  auto good = compare(src.file, write_kohya(mods));
  ASSERT_TRUE(good.pass) << "the reference conversion itself must pass: " << good.verdict;
  bug(mods);
  auto bad = compare(src.file, write_kohya(mods));
  EXPECT_FALSE(bad.pass) << what;
  bool flagged = false;
  for (const auto& m : bad.modules)
    if (m.target == target) flagged = m.status != "equivalent";
  EXPECT_TRUE(flagged) << what << ": " << target << " not flagged";
}

}  // namespace

TEST(CompareCatches, PartInTheWrongRowSlot) {
  auto src = source();
  expect_caught("k and v rows exchanged", "double_blocks.0.img_attn.qkv", [](auto& m) {
    auto& up = m["double_blocks.0.img_attn.qkv"].up;
    const int64_t H = kTiny.hidden;
    Eigen::MatrixXd k = up.middleRows(H, H);
    up.middleRows(H, H) = up.middleRows(2 * H, H);
    up.middleRows(2 * H, H) = k;
  }, src);
}

TEST(CompareCatches, AMissingPart) {
  auto src = source();
  expect_caught("proj_mlp rows dropped", "single_blocks.1.linear1", [](auto& m) {
    m["single_blocks.1.linear1"].up.bottomRows(kTiny.mlp).setZero();
  }, src);
}

TEST(CompareCatches, ADroppedModule) {
  auto src = source();
  expect_caught("module dropped", "double_blocks.1.txt_mlp.2", [](auto& m) { m.erase("double_blocks.1.txt_mlp.2"); }, src);
}

TEST(CompareCatches, AnExtraModule) {
  GenSpec s;
  s.layout = kTiny;
  s.rank = 2;
  s.dtype = st::DType::kF32;
  s.skip = {"ff.net.2"};
  auto f = test::generated(s);
  Source src{f, test::load_or_die(f, kTiny)};
  expect_caught("module added", "double_blocks.0.img_mlp.2", [](auto& m) {
    Fused extra;
    extra.down = Eigen::MatrixXd::Random(2, kTiny.mlp);
    extra.up = Eigen::MatrixXd::Random(kTiny.hidden, 2);
    extra.alpha = 2;
    m["double_blocks.0.img_mlp.2"] = extra;
  }, src);
}

TEST(CompareCatches, NormOutSwapMissing) {
  auto src = source();
  expect_caught("swap missing", "final_layer.adaLN_modulation.1", [](auto& m) {
    auto& f = m["final_layer.adaLN_modulation.1"];
    const int64_t h = f.up.rows() / 2;
    Eigen::MatrixXd top = f.up.topRows(h);
    f.up.topRows(h) = f.up.bottomRows(h);
    f.up.bottomRows(h) = top;  // undo the (correct) swap
  }, src);
}

TEST(CompareCatches, NormOutSwapAppliedToAAsWell) {
  auto src = source();
  expect_caught("A swapped too", "final_layer.adaLN_modulation.1", [](auto& m) {
    // Swapping "halves" of A permutes its rank axis: swap(B)·swap(A) ≠ swap(B·A).
    auto& f = m["final_layer.adaLN_modulation.1"];
    Eigen::MatrixXd reversed = f.down.colwise().reverse();
    f.down = reversed;
  }, src);
}

TEST(CompareCatches, ScaleNotFolded) {
  auto src = source();
  expect_caught("scales ignored", "single_blocks.0.linear1", [&](auto& m) {
    auto& f = m["single_blocks.0.linear1"];
    int64_t c = 0;
    for (const auto& p : src.model.parts)
      if (p.target == "single_blocks.0.linear1") {
        f.down.middleRows(c, p.rank()) /= p.scale;
        c += p.rank();
      }
  }, src);
}

TEST(CompareCatches, AlphaKeptFromOnePartAfterFusing) {
  auto src = source(/*per_part_alpha=*/false);
  expect_caught("alpha of one part", "double_blocks.0.txt_attn.qkv", [&](auto& m) {
    // Alpha rewrite done wrong: raw downs, and the per-part alpha (not s·Σr).
    auto& f = m["double_blocks.0.txt_attn.qkv"];
    double s = 0;
    int64_t r = 0;
    for (const auto& p : src.model.parts)
      if (p.target == "double_blocks.0.txt_attn.qkv") {
        s = p.scale;
        r = p.rank();
      }
    f.down /= s;
    f.alpha = s * static_cast<double>(r);
  }, src);
}

TEST(CompareCatches, IdentityInsteadOfZeroForAMissingPart) {
  GenSpec s;
  s.layout = kTiny;
  s.rank = 2;
  s.dtype = st::DType::kF32;
  s.proj_mlp = false;
  auto f = test::generated(s);
  Source src{f, test::load_or_die(f, kTiny)};
  expect_caught("identity for proj_mlp", "single_blocks.0.linear1", [](auto& m) {
    auto& fm = m["single_blocks.0.linear1"];
    const int64_t H = kTiny.hidden, R = fm.down.rows();
    Eigen::MatrixXd down(R + H, H), up = Eigen::MatrixXd::Zero(fm.up.rows(), R + H);
    down << fm.down, Eigen::MatrixXd::Identity(H, H);  // reference alpha = rank: scale stays 1
    up.leftCols(R) = fm.up;
    up.block(3 * H, R, H, H) = Eigen::MatrixXd::Identity(H, H);
    fm.down = down;
    fm.up = up;
    fm.alpha = static_cast<double>(R + H);
  }, src);
}

TEST(CompareCatches, ABiasDeltaLost) {
  auto src = source();
  expect_caught("bias lost", "double_blocks.0.img_attn.qkv", [](auto& m) { m["double_blocks.0.img_attn.qkv"].bias.resize(0); }, src);
}

TEST(CompareAccepts, EveryStyleAndStrategyAndDtype) {
  for (bool per_part : {false, true}) {
    auto src = source(per_part);
    for (Style style : {Style::kKohya, Style::kComfy, Style::kPeft, Style::kBfl})
      for (st::DType d : {st::DType::kF32, st::DType::kF16, st::DType::kBF16}) {
        SCOPED_TRACE(std::string(style_name(style)) + " " + std::string(st::dtype_name(d)) + (per_part ? " per-part" : ""));
        ConvertOptions o;
        o.style = style;
        o.dtype = d;
        auto c = convert(src.model, o);
        ASSERT_TRUE(c.ok());
        auto bytes = st::serialize(tensors_to_write(*c), c->metadata);
        ASSERT_TRUE(bytes.ok());
        auto r = compare(src.file, test::file_from_bytes(std::move(bytes).value(), "good.safetensors"));
        EXPECT_TRUE(r.pass) << r.verdict;
      }
  }
}

TEST(CompareAccepts, TheReferenceFusionRoundedToBf16) {
  auto src = source();
  auto r = compare(src.file, write_kohya(reference_fuse(src.model), st::DType::kBF16));
  EXPECT_TRUE(r.pass) << r.verdict;
  EXPECT_GT(r.summary.worst_relative_error, 0.0);
}
