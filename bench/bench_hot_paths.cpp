// Micro-benchmarks of lora-verify's hot paths. Run: build/bench/lv_bench
#include <benchmark/benchmark.h>

#include <memory>
#include <random>
#include <string>
#include <vector>

#include "lora/converter.h"
#include "lora/generate.h"
#include "lora/loader.h"
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

// Equivalence of linear1 (21504 × 3072): diffusers parts against the fused, folded
// conversion (the QR path, no exact cancellation).
void BM_EquivalenceLinear1(benchmark::State& state) {
  auto file = single_block(state.range(0));
  auto in = lv::load_lora(file).value();
  lv::ConvertOptions o;
  o.style = lv::Style::kPeft;
  o.dtype = lv::st::DType::kF32;  // forces new values: no shared rows to cancel
  auto conv = lv::convert(in, o).value();
  auto bytes = lv::st::serialize(lv::tensors_to_write(conv), conv.metadata).value();
  auto out_file = std::make_shared<const lv::st::SafetensorsFile>(std::move(lv::st::SafetensorsFile::from_bytes(std::move(bytes), "o")).value());
  lv::LoadOptions lo;
  lo.layout = in.layout;
  auto out = lv::load_lora(out_file, lo).value();
  lv::verify::CompareOptions co;
  co.threads = 1;
  for (auto _ : state) benchmark::DoNotOptimize(lv::verify::compare(in, out, co));
}
BENCHMARK(BM_EquivalenceLinear1)->Arg(4)->Arg(16)->Arg(64)->Arg(128)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
