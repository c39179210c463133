// Fuzzes the container reader with raw bytes; valid files must round-trip through the writer.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "safetensors/reader.h"
#include "safetensors/writer.h"

namespace {
[[noreturn]] void die(const char* what) {
  std::fprintf(stderr, "invariant broken: %s\n", what);
  std::abort();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto f = lv::st::SafetensorsFile::from_bytes(std::vector<uint8_t>(data, data + size), "fuzz.safetensors");
  if (!f.ok()) {
    if (f.error().code != lv::ErrorCode::kBadInput || f.error().message.empty()) die("reader error is not a bad-input error");
    return 0;
  }
  const auto& ts = f->tensors();
  std::vector<lv::st::TensorToWrite> out;
  for (size_t i = 0; i < ts.size(); ++i) {
    const auto& t = ts[i];
    if (i && !(ts[i - 1].name < t.name)) die("tensors not sorted by name");
    if (t.nbytes * 8 != t.numel * lv::st::dtype_bits(t.dtype)) die("nbytes does not match numel");
    out.push_back({t.name, t.dtype, t.shape, t.bytes()});
  }
  auto bytes = lv::st::serialize(out, f->metadata());
  if (!bytes.ok()) die("a valid file's tensors do not serialize");
  auto again = lv::st::SafetensorsFile::from_bytes(std::move(bytes).value(), "rewritten");
  if (!again.ok()) die("the writer's output does not read back");
  if (again->tensors().size() != ts.size() || again->metadata() != f->metadata()) die("round trip changed the file");
  for (size_t i = 0; i < ts.size(); ++i) {
    const auto& a = ts[i];
    const auto& b = again->tensors()[i];
    if (a.name != b.name || a.dtype != b.dtype || a.shape != b.shape || a.nbytes != b.nbytes ||
        (a.nbytes && std::memcmp(a.data, b.data, a.nbytes) != 0))
      die("round trip changed a tensor");
  }
  return 0;
}
