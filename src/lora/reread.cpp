// Convert, serialize, re-read: see reread.h.
#include "lora/reread.h"

#include "lora/loader.h"
#include "safetensors/writer.h"

namespace lv {

void free_tensor(OutTensor& t) {
  std::vector<uint8_t>().swap(t.owned);
  t.view = {};
}

Result<LoraModel> load_converted(std::shared_ptr<const st::SafetensorsFile> file, const flux::Layout& layout) {
  LoadOptions lo;
  lo.layout = layout;
  lo.allow_empty = true;
  return load_lora(std::move(file), lo);
}

Result<std::shared_ptr<const st::SafetensorsFile>> serialize_and_read(Conversion& conv, bool free_written,
                                                                     const std::string& name) {
  auto free_one = [&](size_t i) { free_tensor(conv.tensors[i]); };
  LV_TRY_ASSIGN(bytes, st::serialize(tensors_to_write(conv), conv.metadata,
                                     free_written ? std::function<void(size_t)>(free_one) : std::function<void(size_t)>()));
  auto file = st::SafetensorsFile::from_bytes(std::move(bytes), name);
  if (!file.ok()) return internal_error("the converter wrote an invalid file: " + file.error().message);
  return std::make_shared<const st::SafetensorsFile>(std::move(file).value());
}

Result<Reread> reread(Conversion& conv, const flux::Layout& layout, bool free_written, const std::string& name) {
  Reread r;
  LV_TRY_ASSIGN(file, serialize_and_read(conv, free_written, name));
  r.file = std::move(file);
  auto model = load_converted(r.file, layout);
  if (!model.ok()) return internal_error("the converter's output does not read back: " + model.error().message);
  r.model = std::move(model).value();
  return r;
}

Result<ConvertedAndReread> convert_and_reread(const LoraModel& in, const ConvertOptions& options, const std::string& name) {
  LV_TRY_ASSIGN(conv, convert(in, options));
  LV_TRY_ASSIGN(out, reread(conv, in.layout, false, name));
  return ConvertedAndReread{std::move(conv), std::move(out)};
}

}  // namespace lv
