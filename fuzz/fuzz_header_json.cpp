// Fuzzes the SAX header parser with arbitrary text (depth, numbers, escapes, duplicates).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <set>
#include <string_view>

#include "safetensors/header_parser.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto h = lv::st::parse_header_json(text);
  if (!h.ok()) {
    if (h.error().message.empty()) std::abort();
    return 0;
  }
  std::set<std::string> names;
  for (const auto& e : h->entries) {
    if (e.name.empty() || e.name == "__metadata__" || !names.insert(e.name).second) {
      std::fprintf(stderr, "parser accepted a bad or duplicate name\n");
      std::abort();
    }
  }
  return 0;
}
