// The inspect report (see inspect.h).
#include "report/inspect.h"

#include <map>
#include <set>

#include "report/loader_rows.h"
#include "report/pipeline.h"
#include "safetensors/dtype.h"

namespace lv::report {

Inspection inspect(const st::SafetensorsFile& f, const Result<LoraModel>& model,
                   const std::function<void(const char*, double)>& progress) {
  Inspection out;
  nlohmann::ordered_json& j = out.json;
  std::map<std::string, std::pair<int64_t, uint64_t>> by_dtype;
  for (const auto& t : f.tensors()) {
    auto& e = by_dtype[std::string(st::dtype_name(t.dtype))];
    e.first++;
    e.second += t.nbytes;
  }
  j["file"] = f.path();
  j["valid"] = true;
  j["file_bytes"] = f.file_bytes();
  j["header_bytes"] = f.header_bytes();
  j["tensors"] = f.tensors().size();
  for (const auto& [d, e] : by_dtype) j["dtypes"][d] = {{"tensors", e.first}, {"bytes", e.second}};
  j["metadata"] = nlohmann::ordered_json::object();
  for (const auto& [k, v] : f.metadata()) j["metadata"][k] = v;
  if (model.ok()) {
    if (!model->family.empty())
      j["model"] = {{"family", model->family}, {"display", model->family_display}, {"evidence", model->family_evidence}};
    j["dialect"] = model->dialect.name();
    for (const auto& [d, n] : model->dialect_counts) j["dialect_evidence"].push_back({{"dialect", d.name()}, {"tensors", n}});
    j["deltas"] = model->parts.size();
    j["passed_through"] = model->passthrough.size();
    std::vector<std::string> unknown;
    for (const auto& fd : model->findings)
      if (fd.id == "lora.tensor.unknown" || fd.id == "lora.module.unknown") unknown.push_back(fd.tensor);
    j["unrecognised_tensors"] = unknown;
    // Modules, ranks and alphas as the file holds them; the value checks (NaN/Inf, zero deltas).
    std::set<std::string> modules, targets;
    std::set<double> alphas;
    int64_t rank_min = 0, rank_max = 0;
    for (const auto& p : model->parts) {
      modules.insert(p.source_module);
      targets.insert(p.target);
      if (p.form == PartForm::kLowRank) {
        rank_min = rank_min ? std::min(rank_min, p.rank()) : p.rank();
        rank_max = std::max(rank_max, p.rank());
      }
      for (const auto& name : p.source_names()) {
        const auto* t = f.find(name);
        if (!t || name.size() < 6 || name.compare(name.size() - 6, 6, ".alpha") != 0 || t->numel != 1 ||
            !st::dtype_is_decodable(t->dtype))
          continue;
        double v = 0;
        st::decode_to_double(t->dtype, t->data, 1, &v);
        alphas.insert(v);
      }
    }
    j["modules"] = modules.size();
    j["targets"] = targets.size();
    j["ranks"] = rank_max ? nlohmann::ordered_json{{"min", rank_min}, {"max", rank_max}} : nlohmann::ordered_json();
    j["alphas"] = std::vector<double>(alphas.begin(), alphas.end());
    nlohmann::ordered_json nonfinite = nlohmann::ordered_json::array(), fs = nlohmann::ordered_json::array();
    if (progress) progress("checking values", 0.33);
    for (const auto& fd : input_findings(*model)) {
      if (fd.severity == Severity::kInfo || fd.id == "lora.tensor.unknown" || fd.id == "lora.module.unknown")
        continue;
      if (fd.id == "lora.value.nonfinite") nonfinite.push_back(fd.tensor);
      fs.push_back({{"id", fd.id}, {"severity", severity_name(fd.severity)}, {"tensor", fd.tensor},
                    {"message", fd.message}});
    }
    j["nonfinite_tensors"] = std::move(nonfinite);
    j["findings"] = std::move(fs);
  } else {
    j["dialect"] = nullptr;
    j["not_a_flux1_lora"] = model.error().message;
  }
  Report& loaders = out.loaders;
  if (model.ok()) {
    if (progress) progress("loaders", 0.67);
    loaders.loaders = loader_rows(*model, nullptr, AdviceContext{});
    j["loaders"] = loaders_json(loaders);
  }
  return out;
}

}  // namespace lv::report
