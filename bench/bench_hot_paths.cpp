// Micro-benchmarks of lora-verify's hot paths. Run: build/bench/lv_bench
#include <benchmark/benchmark.h>

#include <memory>
#include <random>
#include <string>
#include <vector>

#include "lora/converter.h"
#include "lora/generate.h"
#include "lora/loader.h"
#include "lora/reread.h"
#include "safetensors/header_parser.h"
#include "safetensors/reader.h"
#include "safetensors/writer.h"
#include "verify/equivalence.h"

namespace {

// A header of n small F32 tensors, as the writer lays it out.
std::string header_text(int n) {
  std::vector<std::vector<uint8_t>> bufs(static_cast<size_t>(n), std::vector<uint8_t>(4));
  std::vector<lv::st::TensorToWrite> ts;
  for (int i = 0; i < n; ++i)
    ts.push_back({"transformer.single_transformer_blocks." + std::to_string(i) + ".attn.to_q.lora_A.weight",
                  lv::st::DType::kF32, {1}, bufs[static_cast<size_t>(i)]});
  auto bytes = lv::st::serialize(ts, {{"format", "pt"}});
  uint64_t len = 0;
  for (int i = 7; i >= 0; --i) len = (len << 8) | (*bytes)[static_cast<size_t>(i)];
  return std::string(bytes->begin() + 8, bytes->begin() + 8 + static_cast<long>(len));
}

void BM_HeaderParse(benchmark::State& state) {
  const std::string h = header_text(static_cast<int>(state.range(0)));
  for (auto _ : state) benchmark::DoNotOptimize(lv::st::parse_header_json(h));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * h.size()));
}
BENCHMARK(BM_HeaderParse)->Arg(2000)->Unit(benchmark::kMicrosecond);

void BM_DecodeBf16(benchmark::State& state) {
  const size_t n = static_cast<size_t>(state.range(0));
  std::vector<uint8_t> in(2 * n);
  std::mt19937 rng(1);
  for (auto& b : in) b = static_cast<uint8_t>(rng());
  std::vector<double> out(n);
  for (auto _ : state) {
    lv::st::decode_to_double(lv::st::DType::kBF16, in.data(), n, out.data());
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * in.size()));
}
BENCHMARK(BM_DecodeBf16)->Arg(1 << 20);

// One single block (linear1 fused from q, k, v, mlp) at FLUX.1 shapes.
std::shared_ptr<const lv::st::SafetensorsFile> single_block(int64_t rank) {
  lv::GenSpec s;
  s.rank = rank;
  s.embedders = false;
  s.max_double = 0;
  s.max_single = 1;
  s.skip = {"proj_out", "norm.linear"};
  auto bytes = lv::generate_lora(s);
  return std::make_shared<const lv::st::SafetensorsFile>(std::move(lv::st::SafetensorsFile::from_bytes(std::move(bytes).value(), "b")).value());
}

void BM_FuseLinear1(benchmark::State& state) {
  auto file = single_block(state.range(0));
  auto model = lv::load_lora(file).value();
  lv::ConvertOptions o;
  for (auto _ : state) benchmark::DoNotOptimize(lv::convert(model, o));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * file->file_bytes()));
}
BENCHMARK(BM_FuseLinear1)->Arg(16)->Arg(64)->Unit(benchmark::kMillisecond);

std::shared_ptr<const lv::st::SafetensorsFile> file_of(std::vector<uint8_t> bytes) {
  return std::make_shared<const lv::st::SafetensorsFile>(std::move(lv::st::SafetensorsFile::from_bytes(std::move(bytes), "b")).value());
}

// Equivalence of one single block's linear1 (21504 × 3072 from q, k, v, mlp), one thread,
// on the numerical path, at rank r. Counter "ns_per_elem": time per value of side A's
// factors, (rows + cols)·r summed over its parts — flat when the cost is linear in it.
void run_equivalence(benchmark::State& state, const lv::LoraModel& in, const lv::LoraModel& out) {
  lv::verify::CompareOptions co;
  co.threads = 1;
  for (auto _ : state) benchmark::DoNotOptimize(lv::verify::compare(in, out, co));
  double elems = 0;
  for (const auto& p : in.parts)
    if (p.form == lv::PartForm::kLowRank) elems += static_cast<double>(p.down->numel + p.up->numel);
  state.counters["ns_per_elem"] = benchmark::Counter(elems * 1e-9, benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
}

// Shared ups: the fused, folded conversion (diffusers parts → BFL linear1, peft style, F32:
// scales folded into the stacked downs, ups copied in value).
void BM_EquivalenceLinear1(benchmark::State& state) {
  auto file = single_block(state.range(0));
  auto in = lv::load_lora(file).value();
  lv::ConvertOptions o;
  o.style = lv::Style::kPeft;
  o.dtype = lv::st::DType::kF32;  // forces new values: no shared bytes to cancel
  auto c = lv::convert_and_reread(in, o).value();
  run_equivalence(state, in, c.out.model);
}
BENCHMARK(BM_EquivalenceLinear1)->RangeMultiplier(2)->Range(4, 128)->Unit(benchmark::kMillisecond);

// Shared downs: another tool's conversion of the same parts (F32, scale folded into the ups).
void BM_EquivalenceLinear1SharedDowns(benchmark::State& state) {
  auto file = single_block(state.range(0));
  auto in = lv::load_lora(file).value();
  std::vector<std::vector<uint8_t>> bufs;
  std::vector<lv::st::TensorToWrite> ts;
  std::vector<double> v;
  auto add = [&](const lv::st::TensorView& t, double scale) {
    v.resize(static_cast<size_t>(t.numel));
    lv::st::decode_to_double(t.dtype, t.data, v.size(), v.data());
    for (double& x : v) x *= scale;
    bufs.emplace_back(v.size() * 4);
    lv::st::encode_from_double(lv::st::DType::kF32, v.data(), v.size(), bufs.back().data());
    ts.push_back({t.name, lv::st::DType::kF32, t.shape, {}});
  };
  for (const auto& p : in.parts) {
    add(*p.down, 1.0);
    add(*p.up, 0.37 * p.scale);  // a scale no binary float holds exactly
  }
  for (size_t i = 0; i < ts.size(); ++i) ts[i].data = bufs[i];
  auto out = lv::load_lora(file_of(lv::st::serialize(ts, {}).value())).value();
  for (auto& p : in.parts) p.scale *= 0.37;
  run_equivalence(state, in, out);
}
BENCHMARK(BM_EquivalenceLinear1SharedDowns)->RangeMultiplier(2)->Range(4, 128)->Unit(benchmark::kMillisecond);

// No shared factor, sides far apart (two seeds): U and V stack both sides (2r columns),
// the Gram value is accepted by its rounding bound.
void BM_EquivalenceLinear1Stacked(benchmark::State& state) {
  auto in = lv::load_lora(single_block(state.range(0))).value();
  lv::GenSpec s;
  s.rank = state.range(0);
  s.seed = 99;
  s.embedders = false;
  s.max_double = 0;
  s.max_single = 1;
  s.skip = {"proj_out", "norm.linear"};
  auto other = lv::load_lora(file_of(lv::generate_lora(s).value())).value();
  run_equivalence(state, in, other);
}
BENCHMARK(BM_EquivalenceLinear1Stacked)->RangeMultiplier(2)->Range(4, 128)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
