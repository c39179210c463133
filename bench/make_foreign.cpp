// Writes what another tool's conversion typically looks like: every low-rank factor under
// its own name, as F32, with the scale folded into the up (B·scale, rounded once to F32),
// no alpha tensors and no metadata — numerically equal to the input, never bit-equal.
// `lora-verify compare IN OUT` then takes the numerical path on every module.
//   build/bench/lv_foreign IN.safetensors OUT.safetensors
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "lora/loader.h"
#include "safetensors/dtype.h"
#include "safetensors/reader.h"
#include "safetensors/writer.h"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: lv_foreign IN.safetensors OUT.safetensors\n");
    return 64;
  }
  auto file = lv::st::SafetensorsFile::open(argv[1]);
  if (!file.ok()) {
    std::fprintf(stderr, "error: %s\n", file.error().message.c_str());
    return 66;
  }
  auto shared = std::make_shared<const lv::st::SafetensorsFile>(std::move(file).value());
  auto model = lv::load_lora(shared);
  if (!model.ok()) {
    std::fprintf(stderr, "error: %s\n", model.error().message.c_str());
    return 65;
  }
  std::vector<std::vector<uint8_t>> buffers;
  std::vector<lv::st::TensorToWrite> out;
  std::vector<double> v;
  auto add = [&](const lv::st::TensorView& t, double scale) {
    v.resize(static_cast<size_t>(t.numel));
    lv::st::decode_to_double(t.dtype, t.data, v.size(), v.data());
    for (double& x : v) x *= scale;
    std::vector<uint8_t> b(v.size() * 4);
    lv::st::encode_from_double(lv::st::DType::kF32, v.data(), v.size(), b.data());
    buffers.push_back(std::move(b));
    out.push_back({t.name, lv::st::DType::kF32, t.shape, {}});
  };
  for (const lv::Part& p : model->parts) {
    if (p.form != lv::PartForm::kLowRank) continue;
    add(*p.down, 1.0);
    add(*p.up, p.scale);
  }
  for (size_t i = 0; i < out.size(); ++i) out[i].data = buffers[i];
  auto st = lv::st::write_file(argv[2], out, {}, {argv[1]});
  if (!st.ok()) {
    std::fprintf(stderr, "error: %s\n", st.error().message.c_str());
    return 74;
  }
  return 0;
}
