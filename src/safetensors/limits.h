// Every limit lora-verify applies to an untrusted safetensors file, in one place.
#pragma once

#include <cstdint>

namespace lv::st {

struct Limits {
  uint64_t max_header_bytes = 100'000'000;  // the spec's N limit
  uint32_t max_json_depth = 128;            // nesting depth of the header JSON
  uint64_t max_tensors = 1'000'000;         // tensors in one file
  uint64_t max_name_bytes = 4096;           // bytes in a tensor name
  uint64_t max_dims = 16;                   // rank of a tensor shape
  uint64_t max_metadata_entries = 100'000;  // __metadata__ entries
  uint64_t max_stream_bytes = 64ull << 30;  // a file read from standard input is held in memory
};

inline constexpr Limits kDefaultLimits{};

}  // namespace lv::st
