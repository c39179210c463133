// Fuzzes the whole pipeline: bytes → reader → loader → converter → re-read → compare →
// loader verdicts → every report renderer. The JSON report must parse back. Each input runs
// one of three pipelines, chosen by a hash of its bytes (the same bytes always run the same
// one, so a finding replays): the default layout, --to diffusers, or --for LOADER
// --drop-unsupported, whose output must load in LOADER.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <vector>

#include <nlohmann/json.hpp>

#include "loaders/profile.h"
#include "report/pipeline.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto f = lv::st::SafetensorsFile::from_bytes(std::vector<uint8_t>(data, data + size), "fuzz.safetensors");
  if (!f.ok()) return 0;
  auto file = std::make_shared<const lv::st::SafetensorsFile>(std::move(f).value());
  const auto profiles = lv::loaders::profiles();
  uint64_t hash = 1469598103934665603ull;  // FNV-1a
  for (size_t i = 0; i < size; ++i) hash = (hash ^ data[i]) * 1099511628211ull;
  {
    const int variant = static_cast<int>(hash % 3);
    lv::report::PipelineOptions opt;
    opt.threads = 1;
    if (variant == 1) opt.to = lv::OutputLayout::kDiffusers;
    // The file written for a loader (tensors it cannot take left out) must load in it.
    if (variant == 2) {
      opt.for_loader = std::string(profiles[(hash / 3) % profiles.size()].name);
      opt.drop_unsupported = true;
    }
    auto r = lv::report::run_verify(file, opt);
    if (!r.ok()) {
      if (r.error().code == lv::ErrorCode::kInternal) std::abort();
      return 0;
    }
    if (variant == 2) {
      for (const auto& l : r->loaders)
        if (l.loader == opt.for_loader && l.output && (l.output->outcome == "drops" || l.output->outcome == "rejects")) {
          std::fprintf(stderr, "the output written for %s %s: %s\n", l.loader.c_str(), l.output->outcome.c_str(),
                       l.output->message.c_str());
          std::abort();
        }
    }
    (void)lv::report::render_text(*r, true);
    (void)lv::report::render_markdown(*r);
    auto j = nlohmann::json::parse(lv::report::render_json(*r), nullptr, false);
    if (j.is_discarded()) {
      std::fprintf(stderr, "the JSON report does not parse\n");
      std::abort();
    }
  }
  return 0;
}
