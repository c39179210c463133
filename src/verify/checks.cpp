// Value checks over the tensors a LoraModel uses (st::scan_values: one pass each).
#include "verify/checks.h"

#include <map>
#include <set>
#include <string>

#include "safetensors/values.h"

namespace lv::verify {

std::vector<Finding> check_values(const LoraModel& model) {
  std::vector<Finding> out;
  std::set<const st::TensorView*> seen;
  std::map<const st::TensorView*, st::ValueScan> scans;
  std::set<std::string> dtypes;
  auto get = [&](const st::TensorView* t) -> const st::ValueScan& {
    auto it = scans.find(t);
    if (it == scans.end()) it = scans.emplace(t, st::scan_values(*t)).first;
    return it->second;
  };
  for (const Part& p : model.parts) {
    const st::TensorView* used[] = {p.down, p.up, p.diff, p.w1, p.w1_a, p.w1_b, p.w2, p.w2_a, p.w2_b,
                                    p.hada_w1_a, p.hada_w1_b, p.hada_w2_a, p.hada_w2_b, p.bias, p.magnitude};
    for (const st::TensorView* t : used) {
      if (!t || !seen.insert(t).second) continue;
      dtypes.insert(std::string(st::dtype_name(t->dtype)));
      const st::ValueScan& s = get(t);
      if (s.nonfinite)
        out.push_back({"lora.value.nonfinite", Severity::kError, t->name,
                       std::to_string(s.nonfinite) + " of " + std::to_string(t->numel) +
                           " values are NaN or Inf (first at element " + std::to_string(s.first_bad) + ")"});
    }
    if (p.form == PartForm::kLowRank) {
      const st::TensorView* zero = get(p.up).all_zero ? p.up : (get(p.down).all_zero ? p.down : nullptr);
      if (zero)
        out.push_back({"lora.delta.zero", Severity::kWarning, zero->name,
                       "all values are zero, so module " + p.source_module + " changes nothing"});
    }
  }
  if (dtypes.size() > 1) {
    std::string list;
    for (const auto& d : dtypes) list += (list.empty() ? "" : ", ") + d;
    out.push_back({"lora.dtype.mixed", Severity::kInfo, "", "factors are stored in several dtypes: " + list});
  }
  return out;
}

}  // namespace lv::verify
