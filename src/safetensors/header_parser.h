// SAX parse of a safetensors JSON header into tensor entries, without exceptions or a DOM.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"
#include "safetensors/dtype.h"
#include "safetensors/limits.h"

namespace lv::st {

struct HeaderEntry {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<uint64_t> shape;
  uint64_t begin = 0;
  uint64_t end = 0;
};

struct ParsedHeader {
  std::vector<HeaderEntry> entries;            // in header order
  std::map<std::string, std::string> metadata;  // __metadata__ (empty when absent or null)
  bool has_metadata = false;
};

// Parses the header text (the N bytes after the length prefix). Checks JSON syntax, UTF-8,
// depth, schema, duplicates, unsigned-only numbers. Does not check offsets against data:
// that is the reader's job. Error messages name the tensor and the offending value.
Result<ParsedHeader> parse_header_json(std::string_view text, const Limits& limits = kDefaultLimits);

}  // namespace lv::st
