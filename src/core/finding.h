// Findings: valid-but-suspicious facts about an input, with stable IDs. They never stop a run.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace lv {

enum class Severity { kInfo, kWarning, kError };

inline std::string_view severity_name(Severity s) {
  switch (s) {
    case Severity::kInfo: return "info";
    case Severity::kWarning: return "warning";
    case Severity::kError: return "error";
  }
  return "error";
}

struct Finding {
  std::string id;       // stable, e.g. "lora.rank.mismatch"
  Severity severity = Severity::kWarning;
  std::string tensor;   // tensor or module the finding is about ("" for the file)
  std::string message;  // lower-case, names the numbers
  // When one finding covers several tensors of a module (reports group the loader's
  // per-tensor findings): all of them, `tensor` being the first. Empty otherwise.
  std::vector<std::string> tensors{};
};

}  // namespace lv
