#include "matrix/source.h"

#include "lora/loader.h"

namespace lv::matrix {

Source Source::read(std::shared_ptr<const st::SafetensorsFile> file, const flux::Family* family) {
  Source s;
  s.file = file;
  s.family = family;
  LoadOptions lo;
  lo.family = family;
  auto m = load_lora(std::move(file), lo);
  if (m.ok()) s.model = std::move(m).value();
  else s.error = m.error();
  return s;
}

Result<const LoraModel*> Source::get() const {
  if (!model) return error;
  return &*model;
}

}  // namespace lv::matrix
