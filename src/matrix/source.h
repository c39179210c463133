// A matrix row's input, read once: every cell of the row (style columns, round trip,
// converter columns, loader view) starts from the same model.
#pragma once

#include <memory>
#include <optional>

#include "core/result.h"
#include "flux/family.h"
#include "lora/model.h"

namespace lv::matrix {

struct Source {
  std::shared_ptr<const st::SafetensorsFile> file;
  const flux::Family* family = nullptr;  // the family it is read as (nullptr: detected)
  std::optional<LoraModel> model;        // empty when it cannot be read …
  Error error;                           // … and why

  static Source read(std::shared_ptr<const st::SafetensorsFile> file, const flux::Family* family);
  // The model, or the error: for the cells that need it.
  Result<const LoraModel*> get() const;
};

}  // namespace lv::matrix
