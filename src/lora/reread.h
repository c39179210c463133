// A conversion as a reader sees it: serialized, read back and loaded in the layout of the
// model it came from (a conversion changes names, not shapes). The one "convert, serialize,
// re-read" step of the pipeline, the matrix, the fuzzers and the tests.
#pragma once

#include <memory>
#include <string>

#include "core/result.h"
#include "lora/converter.h"
#include "lora/model.h"

namespace lv {

struct Reread {
  std::shared_ptr<const st::SafetensorsFile> file;
  LoraModel model;
};

// Frees a conversion tensor's buffer once its bytes are written or serialized.
void free_tensor(OutTensor& t);

// Loads a converter's output file in `layout`; a file with no LoRA tensor is an empty model.
Result<LoraModel> load_converted(std::shared_ptr<const st::SafetensorsFile> file, const flux::Layout& layout);

// Serializes `conv` and reads the image back (the first half of reread()).
Result<std::shared_ptr<const st::SafetensorsFile>> serialize_and_read(Conversion& conv, bool free_written = false,
                                                                     const std::string& name = "(converted in memory)");

// Serializes `conv`, reads the image back and loads it. With `free_written`, each tensor's
// buffer is freed once its bytes are in the image (the conversion's tensors are then spent;
// its notes, modules and counts are not), so memory holds the output once. A file that does
// not read back is an internal error: the converter wrote what its own reader cannot read.
Result<Reread> reread(Conversion& conv, const flux::Layout& layout, bool free_written = false,
                      const std::string& name = "(converted in memory)");

// convert() then reread(): the conversion (its tensors intact) and the output as read back.
struct ConvertedAndReread {
  Conversion conversion;
  Reread out;
};
Result<ConvertedAndReread> convert_and_reread(const LoraModel& in, const ConvertOptions& options,
                                              const std::string& name = "(converted in memory)");

}  // namespace lv
