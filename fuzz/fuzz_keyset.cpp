// Structure-aware fuzzer: builds a FLUX LoRA (tiny layout) from the input bytes — dialect,
// prefixes, real module names, parts present or missing, ranks (mismatched too), alphas
// (zero, negative, NaN, huge), dtypes, right and wrong shapes, duplicate and garbage keys,
// adapter metadata — then runs load → convert → re-read → compare.
// Properties: a conversion that succeeds on finite input must verify as equivalent, and
// the byte-level shortcut of the check agrees with its numerical path.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "flux/family.h"
#include "lora/converter.h"
#include "lora/loader.h"
#include "lora/reread.h"
#include "safetensors/writer.h"
#include "verify/checks.h"
#include "verify/equivalence.h"

namespace {

// Consumes the fuzz input; yields zeros once it runs out.
class Bytes {
 public:
  Bytes(const uint8_t* d, size_t n) : d_(d), n_(n) {}
  uint8_t u8() { return i_ < n_ ? d_[i_++] : 0; }
  uint32_t below(uint32_t n) { return n ? (static_cast<uint32_t>(u8()) | static_cast<uint32_t>(u8()) << 8) % n : 0; }
  bool flag() { return u8() & 1; }
  bool empty() const { return i_ >= n_; }
  double value() {
    switch (below(16)) {
      case 0: return 0.0;
      case 1: return std::numeric_limits<double>::quiet_NaN();
      case 2: return std::numeric_limits<double>::infinity();
      case 3: return -1.0;
      case 4: return 1e30;
      default: return (static_cast<double>(below(2001)) - 1000.0) / 250.0;
    }
  }

 private:
  const uint8_t* d_;
  size_t n_;
  size_t i_ = 0;
};

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "property broken: %s\n", what.c_str());
  std::abort();
}

const lv::st::DType kDtypes[] = {lv::st::DType::kF32, lv::st::DType::kF16, lv::st::DType::kBF16, lv::st::DType::kF64,
                                 lv::st::DType::kI32, lv::st::DType::kF8E4M3};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace lv;
  Bytes in(data, size);
  // The last byte picks the family's tables (FLUX.1 or FLUX.2, tiny) and whether the loader is
  // told the layout or must detect the family itself; the rest of the input keeps its meaning.
  const uint8_t tail = size ? data[size - 1] : 0;
  const flux::Layout layout = tail % 4 == 3 ? flux::layout_of(*flux::find_family("flux2-tiny")) : flux::Layout::tiny();
  const bool detect = tail % 8 >= 4;
  const auto diff_map = flux::diffusers_map(layout);
  const auto targets = flux::bfl_targets(layout);
  const char* prefixes_diff[] = {"transformer.", "base_model.model.", "", "lora_transformer_"};
  const char* prefixes_bfl[] = {"diffusion_model.", "lora_unet_", "", "transformer.", "base_model.model."};
  const char* suffixes[][3] = {{".lora_A.weight", ".lora_B.weight", ".lora_B.bias"},
                               {".lora_down.weight", ".lora_up.weight", ".diff_b"},
                               {".lora.down.weight", ".lora.up.weight", ".lora_B.bias"},
                               {".lora_A.default.weight", ".lora_B.default.weight", ".lora_B.bias"}};

  std::vector<std::vector<uint8_t>> buffers;
  std::vector<st::TensorToWrite> tensors;
  std::map<std::string, std::string> meta;
  auto add = [&](std::string name, std::vector<uint64_t> shape, st::DType dt) {
    uint64_t n = 1;
    for (auto d : shape) n *= d;
    if (n > 4096) return;
    std::vector<uint8_t> bytes(n * st::dtype_bits(dt) / 8);
    if (st::dtype_is_encodable(dt)) {
      std::vector<double> v(n);
      for (auto& x : v) x = in.value();
      st::encode_from_double(dt, v.data(), n, bytes.data());
    } else {
      for (auto& b : bytes) b = in.u8();
    }
    buffers.push_back(std::move(bytes));
    tensors.push_back({std::move(name), dt, std::move(shape), {}});
  };

  const int modules = 1 + static_cast<int>(in.below(12));
  for (int m = 0; m < modules && !in.empty(); ++m) {
    std::string module;
    int64_t rows = 0, cols = 0;
    const bool bfl = in.flag();
    if (bfl) {
      const auto& t = targets[in.below(static_cast<uint32_t>(targets.size()))];
      module = t.name;
      rows = t.rows;
      cols = t.cols;
      std::string p = prefixes_bfl[in.below(5)];
      if (p == "lora_unet_")
        for (char& c : module)
          if (c == '.') c = '_';
      if (in.below(4) == 0 && (module.find("qkv") != std::string::npos || module.find("linear1") != std::string::npos)) {
        int idx = static_cast<int>(in.below(4));
        module += "." + std::to_string(idx);
        rows = idx == 3 ? layout.mlp : layout.hidden;
      }
      module = p + module;
    } else {
      const auto& pm = diff_map[in.below(static_cast<uint32_t>(diff_map.size()))];
      module = pm.diffusers;
      rows = pm.row_end - pm.row_begin;
      cols = flux::find_target(layout, pm.target)->cols;
      std::string p = prefixes_diff[in.below(4)];
      if (p == "lora_transformer_")
        for (char& c : module)
          if (c == '.') c = '_';
      module = p + module;
    }
    // Garbage or near-duplicate names now and then.
    switch (in.below(16)) {
      case 0: module += "x"; break;
      case 1: module = module.substr(0, in.below(static_cast<uint32_t>(module.size()) + 1)); break;
      case 2: module = "double_blocks.99999.img_attn.qkv"; break;
      default: break;
    }
    const auto& suf = suffixes[in.below(4)];
    const uint64_t rank = 1 + in.below(4);
    const uint64_t rank_up = in.below(8) == 0 ? rank + 1 : rank;
    const uint64_t r_rows = in.below(8) == 0 ? static_cast<uint64_t>(rows) + 1 : static_cast<uint64_t>(rows);
    const st::DType dt = kDtypes[in.below(8) == 0 ? in.below(6) : in.below(3)];
    if (in.below(8) != 0) add(module + suf[0], {rank, static_cast<uint64_t>(cols)}, dt);
    if (in.below(8) != 0) add(module + suf[1], {r_rows, rank_up}, dt);
    if (in.below(4) == 0) add(module + suf[2], {static_cast<uint64_t>(rows)}, dt);
    if (in.below(3) == 0) add(module + ".alpha", {}, in.flag() ? st::DType::kF32 : dt);
    if (in.below(16) == 0) add(module + ".dora_scale", {1, static_cast<uint64_t>(cols)}, dt);
    if (in.below(16) == 0) add(module + ".lokr_w1", {2, 2}, dt);
  }
  if (in.below(8) == 0) add("lora_te1_text_model_encoder_layers_0_mlp_fc1.lora_down.weight", {2, 4}, st::DType::kF32);
  if (in.below(8) == 0) {
    static const char* metas[] = {"{\"transformer.r\": 2, \"transformer.lora_alpha\": 4}", "{\"r\": 0}", "[[[[[[[[", "{\"transformer\": {\"r\": 2, \"lora_alpha\": -1, \"use_rslora\": true, \"rank_pattern\": {\"to_q\": 3}}}", "not json"};
    meta["lora_adapter_metadata"] = metas[in.below(5)];
  }
  for (size_t i = 0; i < tensors.size(); ++i) tensors[i].data = buffers[i];
  auto bytes = st::serialize(tensors, meta);
  if (!bytes.ok()) return 0;  // e.g. duplicate names: the writer refuses them
  auto file = st::SafetensorsFile::from_bytes(std::move(bytes).value(), "fuzz-keyset.safetensors");
  if (!file.ok()) die("the writer produced an invalid file: " + file.error().message);
  LoadOptions lo;
  if (!detect) lo.layout = layout;
  auto model = load_lora(std::make_shared<const st::SafetensorsFile>(std::move(file).value()), lo);
  if (!model.ok()) return 0;
  bool finite = true;
  for (const auto& f : verify::check_values(*model)) finite &= f.id != "lora.value.nonfinite";
  for (const auto& p : model->parts) finite &= std::isfinite(p.scale) && std::isfinite(p.bias_scale);

  ConvertOptions co;
  co.to = in.flag() ? OutputLayout::kBfl : OutputLayout::kDiffusers;
  co.style = co.to == OutputLayout::kDiffusers ? Style::kDiffusers : static_cast<Style>(in.below(4));
  if (in.below(4) == 0) co.dtype = st::DType::kF64;
  auto conv = convert(*model, co);
  if (!conv.ok()) {
    if (conv.error().code == ErrorCode::kInternal) die(conv.error().message);
    return 0;
  }
  auto back = reread(*conv, model->layout, false, "converted");  // as the pipeline reads it
  if (!back.ok()) die("the converter's output does not read back: " + back.error().message);
  const LoraModel& out_model = back->model;
  verify::CompareOptions vo;
  vo.threads = 1;
  auto cmp = verify::compare(*model, out_model, vo);
  if (!cmp.ok()) die("compare failed: " + cmp.error().message);
  if (finite && !cmp->all_equivalent) {
    for (const auto& m : cmp->modules)
      if (m.status != verify::ModuleStatus::kEquivalent)
        std::fprintf(stderr, "%s: relative error %g tolerance %g %s\n", m.target.c_str(), m.relative_error, m.tolerance,
                     m.message.c_str());
    die("a successful conversion of finite input is not equivalent");
  }
  // The byte-level shortcut must agree with the numerical path on every module's verdict
  // (numerically, terms that cancel byte for byte may leave a rounding residue when
  // several share one down row, so the errors themselves may differ by that).
  vo.exact_bytes_shortcut = false;
  auto slow = verify::compare(*model, out_model, vo);
  if (!slow.ok()) die("compare (numerical path) failed: " + slow.error().message);
  if (slow->modules.size() != cmp->modules.size()) die("the two compare paths see different modules");
  for (size_t i = 0; i < cmp->modules.size(); ++i) {
    const auto& fast = cmp->modules[i];
    const auto& num = slow->modules[i];
    if (fast.status != num.status)
      die("byte shortcut and numerical path disagree on " + fast.target + ": " + std::to_string(fast.relative_error) +
          " vs " + std::to_string(num.relative_error));
  }
  return 0;
}
