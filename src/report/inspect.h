// `inspect`: what a file holds — container, metadata, dtypes, dialect, model family, modules,
// ranks, alphas, value checks and each loader's verdict — as one JSON value shared by the CLI
// (text and --json) and the Python module.
#pragma once

#include <functional>

#include <nlohmann/json.hpp>

#include "core/result.h"
#include "lora/model.h"
#include "report/report.h"

namespace lv::report {

struct Inspection {
  nlohmann::ordered_json json;  // the fields of `inspect --json`
  Report loaders;               // only its loaders section is set (for the text renderer)
};

// `model` is load_lora's result for `file` (an error: the file is valid but not a FLUX LoRA).
// `progress(phase, fraction)` is called between phases when given.
Inspection inspect(const st::SafetensorsFile& file, const Result<LoraModel>& model,
                   const std::function<void(const char*, double)>& progress = {});

}  // namespace lv::report
