// Writes one of the shared fixture key sets (../shared/fixtures/NAME.json) as a safetensors
// file with the same seeded random values the tests use, for end-to-end timing:
//   build/bench/lv_fixture NAME OUT.safetensors [SEED]
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include "support/lora_support.h"

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: lv_fixture NAME OUT.safetensors [SEED]\n");
    return 64;
  }
  const uint64_t seed = argc > 3 ? std::strtoull(argv[3], nullptr, 10) : 42;
  std::vector<uint8_t> bytes = lv::test::fixture_file(argv[1], seed, lv::st::DType::kBF16);
  if (bytes.empty()) return 65;
  std::ofstream out(argv[2], std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  return out ? 0 : 74;
}
