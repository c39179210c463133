// Builds the loaders section of a report from the profile table (src/loaders/).
#include "report/loader_rows.h"

#include <algorithm>
#include <filesystem>
#include <map>
#include <set>

#include "lora/converter.h"
#include "report/pipeline.h"
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

// `model` null: the lost shares are filled in by the caller.
// Loaders often drop the same tensors (every loader that ignores a style drops them all):
// each distinct set is measured once per file.
using LostCache = std::map<std::vector<std::pair<int, size_t>>, std::vector<LoaderOutcome::Lost>>;

const std::vector<LoaderOutcome::Lost>& cached_lost(LostCache& cache, const LoraModel& model,
                                                    const std::vector<loaders::DroppedTensor>& dropped, int threads) {
  std::vector<std::pair<int, size_t>> key;
  key.reserve(dropped.size());
  for (const auto& d : dropped) key.emplace_back(static_cast<int>(d.piece), d.index);
  std::sort(key.begin(), key.end());
  key.erase(std::unique(key.begin(), key.end()), key.end());
  auto it = cache.find(key);
  if (it == cache.end()) it = cache.emplace(std::move(key), lost_delta(model, dropped, threads)).first;
  return it->second;
}

LoaderOutcome view(const loaders::Verdict& v, const LoraModel* model, int threads, LostCache* cache = nullptr) {
  LoaderOutcome o;
  o.outcome = std::string(loaders::outcome_name(v.outcome));
  o.message = v.message;
  o.measured = v.measured && v.outcome != loaders::Outcome::kUnknown;
  for (const auto& d : v.dropped) o.dropped.push_back(d.tensor);
  for (loaders::Kind k : v.unknown) o.unknown.emplace_back(loaders::kind_name(k));
  if (model && v.outcome == loaders::Outcome::kDrops)
    o.lost = cache ? cached_lost(*cache, *model, v.dropped, threads) : lost_delta(*model, v.dropped, threads);
  return o;
}

}  // namespace

// Per target, without recomputing what is known: a target whose weight parts all stay
// loses 0 of its weight delta, one whose parts all go loses all of it; only a target that
// keeps some of its parts is measured, with its weights alone. Bias deltas are measured on
// bias-only copies of the parts, so no factor is decoded for them.
std::vector<LoaderOutcome::Lost> lost_delta(const LoraModel& model, const std::vector<loaders::DroppedTensor>& dropped,
                                            int threads) {
  std::vector<LoaderOutcome::Lost> out;
  std::map<std::string, std::set<size_t>> gone, bias_gone;  // target → part indices
  std::set<std::string> magnitude_gone;
  for (const auto& d : dropped) {
    if (d.target.empty() || d.index >= model.parts.size()) continue;
    if (d.piece == loaders::Item::Piece::kWeights) gone[d.target].insert(d.index);
    else if (d.piece == loaders::Item::Piece::kBias) bias_gone[d.target].insert(d.index);
    else if (d.piece == loaders::Item::Piece::kMagnitude) gone[d.target], magnitude_gone.insert(d.target);
  }
  for (const auto& [t, _] : bias_gone) gone[t];
  verify::CompareOptions o;
  o.threads = threads;
  for (const auto& [target, removed] : gone) {
    std::vector<Part> all_w, kept_w, all_b, kept_b;
    for (size_t i = 0; i < model.parts.size(); ++i) {
      const Part& p = model.parts[i];
      if (p.target != target) continue;
      const bool weights_go = removed.count(i) > 0;
      const bool bias_goes = weights_go || (bias_gone.count(target) && bias_gone.at(target).count(i));
      if (p.form != PartForm::kBiasOnly) {
        Part w = p;
        w.bias = nullptr;
        w.magnitude = nullptr;
        all_w.push_back(w);
        if (!weights_go) kept_w.push_back(w);
      }
      if (p.bias) {
        Part b = p;
        b.form = PartForm::kBiasOnly;
        b.down = b.up = b.diff = nullptr;
        b.magnitude = nullptr;
        all_b.push_back(b);
        if (!bias_goes) kept_b.push_back(b);
      }
    }
    LoaderOutcome::Lost lost{target, 0, 0, magnitude_gone.count(target) > 0};
    if (!all_w.empty() && kept_w.size() != all_w.size()) {
      if (kept_w.empty()) {
        lost.weight = 1;
      } else if (auto c = verify::compare_parts(all_w, kept_w, o); c.ok() && !c->modules.empty()) {
        lost.weight = c->modules.front().relative_error;
      }
    }
    if (!all_b.empty() && kept_b.size() != all_b.size()) {
      if (kept_b.empty()) {
        lost.bias = 1;
      } else if (auto c = verify::compare_parts(all_b, kept_b, o); c.ok() && !c->modules.empty()) {
        lost.bias = c->modules.front().bias_error;
      }
    }
    out.push_back(lost);
  }
  return out;
}

std::string convert_command(const std::string& input, std::string_view loader, bool drop_unsupported,
                            const std::string& model) {
  std::string stem = std::filesystem::path(input).filename().string();
  if (stem.size() > 12 && stem.substr(stem.size() - 12) == ".safetensors") stem.resize(stem.size() - 12);
  if (stem.empty() || stem == "-") stem = "lora";
  std::string cmd = "lora-verify convert " + shell_quote(input) + " -o " + shell_quote(stem + "." + std::string(loader) + ".safetensors") +
                    " --for " + std::string(loader);
  if (!model.empty()) cmd += " --model " + model;
  if (drop_unsupported) cmd += " --drop-unsupported";
  return cmd;
}

namespace {

// The family the input was read as, when --model named it: the advised commands need it too.
std::string model_option(const LoraModel& in) {
  for (const auto& e : in.family_evidence)
    if (e.rfind("named with --model ", 0) == 0) return in.family;
  return "";
}

// Why `convert --for <profile>` would not give a file the loader loads, if it would not: the
// verdict on what is left once the tensors it cannot take are left out (names and kinds change with
// them), then the conversion of the targets that can refuse it (those holding a DoRA
// magnitude, LoKr or LoHa).
Refusal not_loading(const loaders::Profile& p, const LoraModel& in, const loaders::FormChoice& choice,
                    loaders::OutputForms& forms) {
  auto refused = [](std::string why) { return Refusal{Refusal::Kind::kRefused, "none: " + std::move(why)}; };
  // What `convert --for` keeps (plan_conversion, without measuring the loss).
  const Style style = choice.style;
  std::optional<LoraModel> without;
  if (!choice.verdict.dropped.empty()) without = loaders::without(in, choice.verdict.dropped);
  const LoraModel& kept = without ? *without : in;
  if (kept.parts.empty())
    return refused(std::string(p.display) + " takes no delta of this file in any form lora-verify writes");
  std::optional<loaders::Description> own;  // of what is left; the whole input's is cached
  const loaders::Description& d = without ? own.emplace(loaders::describe_output(kept, style)) : forms.describe(style);
  const loaders::Verdict v = loaders::evaluate(p, d);
  if (v.outcome == loaders::Outcome::kUnknown)
    return {Refusal::Kind::kUnknown, "unknown: once what " + std::string(p.display) +
                                         " cannot take is left out, how it reads the rest is not established (" +
                                         v.message + ")"};
  if (v.outcome != loaders::Outcome::kLoads)
    return refused("even without what it cannot take, " + std::string(p.display) + " " +
                   std::string(loaders::outcome_name(v.outcome)) + " the rest (" + v.message + ")");
  std::set<std::string> risky;
  for (const Part& part : kept.parts)
    if (part.magnitude || part.form != PartForm::kLowRank) risky.insert(part.target);
  if (risky.empty()) return {};
  LoraModel subset = kept.empty_copy();
  for (const Part& part : kept.parts)
    if (risky.count(part.target)) subset.parts.push_back(part);
  PipelineOptions po;
  po.style = style;
  po.to = style == Style::kDiffusers ? OutputLayout::kDiffusers : OutputLayout::kBfl;
  auto conv = convert(subset, resolve_convert_options(kept, po));
  return conv.ok() ? Refusal{} : refused(conv.error().message);
}

// The advice for a loader that does not load the input completely.
void advise(LoaderRow& row, const loaders::Profile& p, const LoraModel& in, loaders::OutputForms& forms,
            const AdviceContext& ctx) {
  const std::string display(p.display);
  if (row.output && row.output->outcome == "loads" && ctx.output_written && !ctx.output_path.empty()) {
    row.advice = ctx.output_path == kStandardOutput ? "the file written to standard output loads completely"
                                                    : "the converted file " + ctx.output_path + " loads completely";
    return;
  }
  if (ctx.wrote_file && ctx.for_loader == p.name) {  // the command just run: never advised again
    row.advice = "no better form: this output is the form " + display + " reads most completely" +
                 (row.output && !row.output->message.empty() ? " (" + row.output->message + ")" : "");
    return;
  }
  if (in.parts.empty()) {
    row.advice = "none: no delta of this file can be converted (see the findings)";
    return;
  }
  auto choice = loaders::choose_form(p, forms);
  if (!choice) {
    row.advice = "none: no output form lora-verify writes is established for " + display + " (facts: " +
                 std::string(p.established) + ")";
    return;
  }
  const loaders::Verdict& v = choice->verdict;
  if (v.outcome == loaders::Outcome::kUnknown) {
    row.advice = "unknown: how " + display + " reads the form lora-verify would write for it (" +
                 std::string(style_name(choice->style)) + ") is not established (" + v.message + ")";
    return;
  }
  if (Refusal r = convert_for_refusal(p, in, *choice, forms)) {
    row.advice = std::move(r.why);
    return;
  }
  const bool drop = v.outcome != loaders::Outcome::kLoads;  // drops, or rejects for tensors it can leave out
  const std::string input = in.file ? in.file->path() : "IN";
  row.command = convert_command(input, p.name, drop, model_option(in));
  row.advice = drop ? row.command + "  (writes a file " + display + " loads without what it cannot take: " + v.message + ")"
                    : row.command;
}

}  // namespace

Refusal convert_for_refusal(const loaders::Profile& p, const LoraModel& model, const loaders::FormChoice& choice,
                            loaders::OutputForms& forms) {
  const auto& dropped = choice.verdict.dropped;
  const size_t magnitudes = static_cast<size_t>(std::count_if(dropped.begin(), dropped.end(), [](const auto& d) {
    return d.piece == loaders::Item::Piece::kMagnitude;
  }));
  if (magnitudes > 0)
    return {Refusal::Kind::kRefused,
            "none: " + std::string(p.display) + " cannot take the " + std::to_string(magnitudes) + " DoRA magnitude" +
                (magnitudes == 1 ? "" : "s") + " in any form it reads, and lora-verify never drops one (that " +
                "changes the merged weight by an amount only the base weights tell)"};
  return not_loading(p, model, choice, forms);
}

void append_output_side(OutputSide& side, const LoraModel& out, int threads) {
  loaders::Description d = loaders::describe(out);
  // The dialect is the first group's that holds deltas; pass-through-only groups have none.
  if (side.description.dialect == Dialect::kNone) side.description.dialect = d.dialect;
  if (side.description.arch == 0) side.description.arch = d.arch;
  // File-level conditions that hold when any group has them; convert always writes its
  // lora_verify.* metadata (no ai-toolkit software entry).
  auto& conds = side.description.conditions;
  for (const std::string& c : d.conditions)
    if (!loaders::whole_file_condition(c) && std::find(conds.begin(), conds.end(), c) == conds.end())
      conds.push_back(c);
  if (std::find(conds.begin(), conds.end(), loaders::kForeignMetadata) == conds.end()) conds.emplace_back(loaders::kForeignMetadata);
  const bool had_metadata = std::any_of(side.description.items.begin(), side.description.items.end(),
                                        [](const loaders::Item& i) { return i.piece == loaders::Item::Piece::kMetadata; });
  for (auto& item : d.items) {
    if (item.piece == loaders::Item::Piece::kMetadata && had_metadata) continue;
    side.description.items.push_back(item);
  }
  // What each loader loses of this group's deltas; the group's parts are alive only now.
  LostCache cache;
  for (const loaders::Profile& p : loaders::profiles()) {
    loaders::Verdict v = loaders::evaluate(p, d);
    if (v.outcome != loaders::Outcome::kDrops) continue;
    const auto& lost = cached_lost(cache, out, v.dropped, threads);
    auto& acc = side.lost[std::string(p.name)];
    acc.insert(acc.end(), lost.begin(), lost.end());
  }
  side.any = true;
}

std::vector<LoaderRow> loader_rows(const LoraModel& in, const OutputSide* out, const AdviceContext& ctx) {
  std::vector<LoaderRow> rows;
  const loaders::Description din = loaders::describe(in);
  loaders::OutputForms forms(in);
  LostCache input_cache;
  for (const loaders::Profile& p : loaders::profiles()) {
    LoaderRow row;
    row.loader = std::string(p.name);
    row.display = std::string(p.display);
    row.established = std::string(p.established);
    const loaders::Verdict vin = loaders::evaluate(p, din);
    row.input = view(vin, &in, ctx.threads, &input_cache);
    if (out && out->any) {
      LoaderOutcome o = view(loaders::evaluate(p, out->description), nullptr, ctx.threads);
      if (o.outcome == "drops")
        if (auto it = out->lost.find(std::string(p.name)); it != out->lost.end()) o.lost = it->second;
      std::sort(o.lost.begin(), o.lost.end(), [](const auto& a, const auto& b) { return a.target < b.target; });
      row.output = std::move(o);
    }
    if (vin.outcome != loaders::Outcome::kLoads) advise(row, p, in, forms, ctx);
    rows.push_back(std::move(row));
  }
  return rows;
}

}  // namespace lv::report
