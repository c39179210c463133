// Small accessors of the canonical model.
#include "lora/model.h"

namespace lv {

int64_t Part::rank() const {
  if (form != PartForm::kLowRank || down == nullptr || down->shape.empty()) return 0;
  return static_cast<int64_t>(down->shape[0]);
}

}  // namespace lv
