// Placement of parsed modules on BFL rows (see placement.h).
#include "lora/placement.h"

namespace lv {

namespace {

std::optional<Placement> xlabs_placement(const flux::Layout& l, const std::string& module) {
  // XLabs names exist for FLUX.1-shaped models only; none is known for FLUX.2
  // (docs/formats.md#prefixes-and-dialect-ids).
  if (!(l.arch & (flux::kArchFlux1 | flux::kArchChroma))) return std::nullopt;
  size_t at = module.find(".processor.");
  std::string block = module.substr(0, at);
  std::string tail = module.substr(at + 11);
  std::string target;
  int64_t rows_limit = -1;
  bool single = block.rfind("single_blocks.", 0) == 0;
  if (!single && tail == "qkv_lora1") target = block + ".img_attn.qkv";
  else if (!single && tail == "qkv_lora2") target = block + ".txt_attn.qkv";
  else if (!single && tail == "proj_lora1") target = block + ".img_attn.proj";
  else if (!single && tail == "proj_lora2") target = block + ".txt_attn.proj";
  else if (single && tail == "qkv_lora") {
    target = block + ".linear1";
    rows_limit = 3 * l.hidden;  // covers only the q, k, v rows of linear1
  } else return std::nullopt;
  auto t = flux::find_target(l, target);
  if (!t) return std::nullopt;
  return Placement{t->name, t->rows, t->cols, 0, rows_limit < 0 ? t->rows : rows_limit, false};
}

}  // namespace

std::optional<Placement> place(const flux::Layout& l, const ParsedKey& k) {
  switch (k.naming) {
    case Naming::kDiffusers: {
      auto pm = flux::find_diffusers(l, k.module);
      auto t = pm ? flux::find_target(l, pm->target) : std::nullopt;
      if (!pm || !t) return std::nullopt;
      return Placement{t->name, t->rows, t->cols, pm->row_begin, pm->row_end, pm->swap_halves};
    }
    case Naming::kBfl: {
      auto t = flux::find_target(l, k.module);
      if (!t) return std::nullopt;
      if (k.split_index < 0) return Placement{t->name, t->rows, t->cols, 0, t->rows, false};
      auto parts = flux::parts_of_target(l, t->name);
      if (k.split_index >= static_cast<int>(parts.size())) return std::nullopt;
      const auto& pm = parts[static_cast<size_t>(k.split_index)];
      return Placement{t->name, t->rows, t->cols, pm.row_begin, pm.row_end, false};
    }
    case Naming::kXlabs:
      return xlabs_placement(l, k.module);
  }
  return std::nullopt;
}


}  // namespace lv
