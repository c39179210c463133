// `lora-verify corpus DIR`: writes every built-in matrix variant as a .safetensors file and a
// manifest.json describing each (targets, row ranges, parts present, expected outcome, the
// profiled loaders' verdicts), so other tools' test suites can use the same grid.
#include "cli/corpus_cmd.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <map>
#include <optional>

#include <nlohmann/json.hpp>

#include "flux/layout.h"
#include "loaders/verdict.h"
#include "lora/loader.h"
#include "cli/messages.h"
#include "matrix/loader_cells.h"
#include "matrix/variants.h"
#include "safetensors/writer.h"

namespace {

namespace mx = lv::matrix;
using lv::cli::fail;
using lv::cli::usage;
using lv::ErrorCode;
using J = nlohmann::ordered_json;


// The targets of a model: for each, its shape and every part the layout defines for it,
// with the part's rows and whether the file has it.
J targets_json(const lv::LoraModel& model) {
  std::map<std::string, std::vector<const lv::Part*>> by_target;
  for (const auto& p : model.parts) by_target[p.target].push_back(&p);
  J out = J::array();
  for (const auto& [target, parts] : by_target) {
    J t;
    t["target"] = target;
    t["rows"] = parts[0]->target_rows;
    t["cols"] = parts[0]->target_cols;
    J list = J::array();
    auto layout_parts = lv::flux::parts_of_target(model.layout, target);
    if (layout_parts.empty()) {  // a 1:1 module with no diffusers name
      lv::flux::PartMap whole;
      whole.diffusers = "";
      whole.target = target;
      whole.row_begin = 0;
      whole.row_end = parts[0]->target_rows;
      layout_parts.push_back(whole);
    }
    int present = 0;
    for (const auto& lp : layout_parts) {
      const lv::Part* found = nullptr;
      for (const lv::Part* p : parts)
        if (p->row_begin == lp.row_begin && p->row_end == lp.row_end) found = p;
      J e;
      e["part"] = lp.diffusers.empty() ? target : lp.diffusers;
      e["row_begin"] = lp.row_begin;
      e["row_end"] = lp.row_end;
      e["present"] = found != nullptr;
      if (lp.swap_halves) e["swap_halves"] = true;
      if (found) {
        ++present;
        e["rank"] = found->rank();
        e["tensors"] = found->source_names();
      }
      list.push_back(std::move(e));
    }
    t["parts"] = std::move(list);
    t["zero_filled"] = static_cast<int64_t>(layout_parts.size()) - present;
    out.push_back(std::move(t));
  }
  return out;
}

J loaders_json(const lv::LoraModel& model) {
  J out = J::array();
  for (const auto& c : mx::matrix_loader_cells(model)) {
    J e;
    e["loader"] = c.loader;
    e["established"] = std::string(lv::loaders::find_profile(c.loader)->established);
    e["input"] = c.input;
    e["message"] = c.message;
    e["dropped"] = c.dropped;
    e["form"] = c.form;
    e["form_outcome"] = c.form_outcome;
    if (!c.refusal.empty()) e["refusal"] = c.refusal;
    out.push_back(std::move(e));
  }
  return out;
}

}  // namespace

int run_corpus_command(const lv::cli::Args& args) {
  if (args.positional.size() > 1)
    return usage("one DIR only, got '" + args.positional[0] + "' and '" + args.positional[1] + "'");
  std::optional<std::string> dir, filter;
  if (!args.positional.empty()) dir = args.positional[0];
  if (const std::string* v = args.value("--filter")) filter = *v;
  if (!dir) return usage("needs the output directory DIR");
  if (*dir == "-") return usage("DIR cannot be '-' (standard output cannot hold files)");

  const auto variants = mx::builtin_variants_matching(filter.value_or(""));
  if (variants.empty()) {
    std::printf("no built-in variant matches --filter '%s'; nothing written to %s\n", filter->c_str(), dir->c_str());
    return static_cast<int>(ErrorCode::kChecksFailed);
  }
  std::error_code ec;
  std::filesystem::create_directories(*dir, ec);
  if (ec || !std::filesystem::is_directory(*dir, ec))
    return fail({ErrorCode::kCannotCreate, *dir + ": cannot create the output directory" + (ec ? ": " + ec.message() : "")});

  J files = J::array();
  for (const auto& v : variants) {
    auto bytes = mx::generate_builtin(v.name);
    if (!bytes.ok()) return fail({ErrorCode::kInternal, v.name + ": " + bytes.error().message});
    const std::string path = (std::filesystem::path(*dir) / v.file).string();
    if (auto st = lv::st::write_bytes_atomic(path, {bytes->data(), bytes->size()}, {}); !st.ok()) return fail(st.error());
    const size_t size = bytes->size();
    auto file = lv::st::SafetensorsFile::from_bytes(std::move(bytes).value(), v.file);
    if (!file.ok()) return fail({ErrorCode::kInternal, v.name + ": the generated file does not read back: " + file.error().message});
    auto shared = std::make_shared<const lv::st::SafetensorsFile>(std::move(file).value());
    lv::LoadOptions lo;
    lo.family = v.family;
    auto model = lv::load_lora(shared, lo);
    if (!model.ok()) return fail({ErrorCode::kInternal, v.name + ": the generated file does not load: " + model.error().message});
    J e;
    e["file"] = v.file;
    e["variant"] = v.name;
    e["dialect"] = v.dialect;
    e["detected_dialect"] = model->dialect.name();
    e["structure"] = v.structure;
    e["dtype"] = v.dtype;
    if (v.family) e["model"] = v.family->name;
    e["bytes"] = size;
    e["tensors"] = shared->tensors().size();
    e["expected"] = {{"outcome", "equivalent"},
                     {"meaning", "a correct conversion to any layout or style verifies as equivalent with "
                                 "`lora-verify compare FILE CONVERTED`; missing parts of fused targets become zero rows"}};
    e["targets"] = targets_json(*model);
    J passthrough = J::array();
    for (const auto& p : model->passthrough) passthrough.push_back({{"tensor", p.tensor}, {"reason", p.reason}});
    e["passthrough"] = std::move(passthrough);
    e["loaders"] = loaders_json(*model);
    files.push_back(std::move(e));
  }
  J manifest;
  manifest["schema"] = "lora-verify.corpus/1";
  manifest["tool_version"] = LV_VERSION;
  manifest["filter"] = filter.value_or("");
  manifest["count"] = files.size();
  manifest["files"] = std::move(files);
  const std::string text = manifest.dump(1, ' ', false, J::error_handler_t::replace) + "\n";
  const std::string mpath = (std::filesystem::path(*dir) / "manifest.json").string();
  if (auto st = lv::st::write_bytes_atomic(mpath, {reinterpret_cast<const uint8_t*>(text.data()), text.size()}, {}); !st.ok())
    return fail(st.error());
  std::printf("wrote %zu variant files and manifest.json to %s\n", variants.size(), dir->c_str());
  return 0;
}
