// Builds the loaders section of a report from the profile table (src/loaders/).
#include "report/loader_rows.h"

#include <filesystem>
#include <map>

#include "verify/equivalence.h"

namespace lv::report {
namespace {

std::string shell_quote(const std::string& s) {
  bool plain = !s.empty() && s.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.,/+=:@%") ==
                                 std::string::npos;
  if (plain) return s;
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

LoaderOutcome view(const loaders::Verdict& v, const LoraModel& model, int threads) {
  LoaderOutcome o;
  o.outcome = std::string(loaders::outcome_name(v.outcome));
  o.message = v.message;
  for (const auto& d : v.dropped) o.dropped.push_back(d.tensor);
  for (loaders::Kind k : v.unknown) o.unknown.emplace_back(loaders::kind_name(k));
  if (v.outcome == loaders::Outcome::kDrops) o.lost = lost_delta(model, v.dropped, threads);
  return o;
}

}  // namespace

std::vector<LoaderOutcome::Lost> lost_delta(const LoraModel& model, const std::vector<loaders::DroppedTensor>& dropped,
                                            int threads) {
  std::vector<LoaderOutcome::Lost> out;
  if (dropped.empty()) return out;
  LoraModel kept = loaders::without(model, dropped);
  verify::CompareOptions o;
  o.threads = threads;
  auto cmp = verify::compare(model, kept, o);
  if (!cmp.ok()) return out;
  std::map<std::string, bool> touched;
  for (const auto& d : dropped)
    if (!d.target.empty()) touched[d.target] = true;
  for (const auto& m : cmp->modules) {
    if (!touched.count(m.target)) continue;
    // A target that lost everything is "missing" on the kept side: all of its delta is lost.
    const bool gone = m.status == verify::ModuleStatus::kMissingInB;
    out.push_back({m.target, gone ? 1.0 : m.relative_error, gone && m.bias_norm_a > 0 ? 1.0 : m.bias_error});
  }
  return out;
}

std::string convert_command(const std::string& input, std::string_view loader, bool drop_unsupported) {
  std::string stem = std::filesystem::path(input).filename().string();
  if (stem.size() > 12 && stem.substr(stem.size() - 12) == ".safetensors") stem.resize(stem.size() - 12);
  if (stem.empty() || stem == "-") stem = "lora";
  std::string cmd = "lora-verify convert " + shell_quote(input) + " -o " + shell_quote(stem + "." + std::string(loader) + ".safetensors") +
                    " --for " + std::string(loader);
  if (drop_unsupported) cmd += " --drop-unsupported";
  return cmd;
}

std::vector<LoaderRow> loader_rows(const LoraModel& in, const LoraModel* out, const std::string& output_path,
                                   int threads) {
  std::vector<LoaderRow> rows;
  const loaders::Description din = loaders::describe(in);
  const loaders::Description dout = out ? loaders::describe(*out) : loaders::Description{};
  for (const loaders::Profile& p : loaders::profiles()) {
    LoaderRow row;
    row.loader = std::string(p.name);
    row.display = std::string(p.display);
    row.established = std::string(p.established);
    const loaders::Verdict vin = loaders::evaluate(p, din);
    row.input = view(vin, in, threads);
    if (out) row.output = view(loaders::evaluate(p, dout), *out, threads);
    if (vin.outcome != loaders::Outcome::kLoads) {
      if (row.output && row.output->outcome == "loads" && !output_path.empty()) {
        row.advice = "the converted file " + output_path + " loads completely";
      } else if (auto choice = loaders::choose_form(p, in)) {
        const std::string input = in.file ? in.file->path() : "IN";
        switch (choice->verdict.outcome) {
          case loaders::Outcome::kLoads: row.advice = convert_command(input, p.name, false); break;
          case loaders::Outcome::kUnknown:
            row.advice = convert_command(input, p.name, false) + "  (" + choice->verdict.message + ")";
            break;
          default:
            row.advice = "no form " + std::string(p.display) + " reads takes everything (" + choice->verdict.message +
                         "); " + convert_command(input, p.name, true) + " writes a file it loads without those tensors";
        }
      } else {
        row.advice = "none: no output form lora-verify writes is established for " + std::string(p.display) +
                     " (facts: " + std::string(p.established) + ")";
      }
    }
    rows.push_back(std::move(row));
  }
  return rows;
}

}  // namespace lv::report
