// Pipelines shared by the CLI, the matrix and the fuzzers; each builds a complete Report.
#include "report/pipeline.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <functional>
#include <future>
#include <optional>
#include <map>
#include <set>

#include "loaders/verdict.h"
#include "lora/keys.h"
#include "lora/reread.h"
#include "report/loader_rows.h"
#include "safetensors/writer.h"
#include "verify/checks.h"
#include "verify/equivalence.h"

namespace lv::report {
namespace {

std::string status_name(verify::ModuleStatus s) {
  switch (s) {
    case verify::ModuleStatus::kEquivalent: return "equivalent";
    case verify::ModuleStatus::kDifferent: return "different";
    case verify::ModuleStatus::kMissingInB: return "missing";
    case verify::ModuleStatus::kMissingInA: return "extra";
    case verify::ModuleStatus::kInvalid: return "invalid";
  }
  return "invalid";
}

// Natural order of names: digit runs compare as numbers ("double_blocks.2" before
// "double_blocks.10"), everything else bytewise.
bool natural_less(const std::string& a, const std::string& b) {
  size_t i = 0, j = 0;
  auto digit = [](char c) { return c >= '0' && c <= '9'; };
  while (i < a.size() && j < b.size()) {
    if (digit(a[i]) && digit(b[j])) {
      size_t ie = i, je = j;
      while (ie < a.size() && digit(a[ie])) ++ie;
      while (je < b.size() && digit(b[je])) ++je;
      size_t is = i, js = j;  // skip leading zeros, then longer is larger
      while (is + 1 < ie && a[is] == '0') ++is;
      while (js + 1 < je && b[js] == '0') ++js;
      if (ie - is != je - js) return ie - is < je - js;
      if (int c = a.compare(is, ie - is, b, js, je - js)) return c < 0;
      if (ie - i != je - j) return ie - i < je - j;  // "01" after "1": still a strict order
      i = ie;
      j = je;
    } else {
      if (a[i] != b[j]) return static_cast<unsigned char>(a[i]) < static_cast<unsigned char>(b[j]);
      ++i;
      ++j;
    }
  }
  return a.size() - i < b.size() - j;
}

// The loader reports an unusable module once per tensor, with the same id and message:
// one finding per module, listing its tensors.
std::vector<Finding> group_findings(std::vector<Finding> in) {
  std::vector<Finding> out;
  for (Finding& f : in) {
    if (!out.empty() && !f.tensor.empty() && !out.back().tensor.empty() && out.back().id == f.id &&
        out.back().severity == f.severity && out.back().message == f.message) {
      Finding& g = out.back();
      if (g.tensors.empty()) g.tensors.push_back(g.tensor);
      g.tensors.push_back(std::move(f.tensor));
      continue;
    }
    out.push_back(std::move(f));
  }
  return out;
}

// Why nothing could be checked, from the findings on tensors not used: "18 tensors
// unusable — shape mismatch" (the reasons by count when there are several).
std::string nothing_checked(const std::vector<Finding>& findings, int64_t unused) {
  static const std::map<std::string, std::string> kWhy = {
      {"lora.shape.mismatch", "shape mismatch"},   {"lora.rank.mismatch", "rank mismatch"},
      {"lora.factor.missing", "missing factor"},   {"lora.key.duplicate", "duplicate tensors"},
      {"lora.alpha.invalid", "invalid alpha"},     {"lora.alpha.nonfinite", "non-finite alpha"},
      {"lora.dtype.unsupported", "unsupported dtype"}, {"lora.lokr.tucker", "LoKr Tucker core"},
      {"lora.tensor.unknown", "unknown name"},     {"lora.module.unknown", "module outside FLUX.1"},
      {"lora.tensor.unused", "no usable delta"},
  };
  std::map<std::string, int64_t> count;
  std::vector<std::string> order;
  for (const auto& f : findings) {
    if (f.tensor.empty() || f.message.rfind("not used", 0) != 0) continue;
    auto it = kWhy.find(f.id);
    std::string why = it != kWhy.end() ? it->second : f.id;
    if (!count.count(why)) order.push_back(why);
    count[why]++;
  }
  if (unused <= 0 || order.empty()) return "nothing converted: no module of the input could be checked, see findings";
  std::stable_sort(order.begin(), order.end(), [&](const auto& a, const auto& b) { return count[a] > count[b]; });
  std::string s = "nothing converted: " + std::to_string(unused) + " tensor" + (unused == 1 ? "" : "s") + " unusable — ";
  for (size_t i = 0; i < order.size(); ++i)
    s += (i ? ", " : "") + order[i] + (order.size() > 1 ? " (" + std::to_string(count[order[i]]) + ")" : "");
  return s + ", see findings";
}

// Builds the report of comparing `in` with `out`. `conversion` is null for compare.
Report build(const std::string& command, const LoraModel& in, const LoraModel& out, const verify::CompareResult& cmp,
             const Conversion* conversion, std::vector<Finding> findings) {
  Report r;
  r.command = command;
  r.version = LV_VERSION;
  r.input = in.file->path();
  r.dialect = in.dialect.name();
  for (const auto& [d, n] : in.dialect_counts) r.dialects.emplace_back(d.name(), n);
  r.family = in.family;
  r.family_display = in.family_display;
  r.family_evidence = in.family_evidence;
  r.other_dialect = out.dialect.name();
  Summary& s = r.summary;
  s.tensors = static_cast<int64_t>(in.file->tensors().size());
  s.parts = static_cast<int64_t>(in.parts.size());
  s.passthrough = static_cast<int64_t>(in.passthrough.size());
  for (const auto& p : in.passthrough) r.passthrough.emplace_back(p.tensor, p.reason);
  std::set<std::string> used;
  for (const auto& p : in.parts)
    for (const auto& s : p.source_tensors) used.insert(s.name);
  s.unused = s.tensors - static_cast<int64_t>(used.size()) - s.passthrough;
  bool first_rank = true;
  for (const auto& p : in.parts) {
    if (p.form != PartForm::kLowRank) continue;
    s.rank_min = first_rank ? p.rank() : std::min(s.rank_min, p.rank());
    s.rank_max = first_rank ? p.rank() : std::max(s.rank_max, p.rank());
    first_rank = false;
  }
  std::map<std::string, std::set<std::string>> strategies;
  std::map<std::string, int> zero_filled;
  if (conversion) {
    for (const auto& m : conversion->modules) {
      strategies[m.target].insert(std::string(strategy_name(m.strategy)));
      zero_filled[m.target] += m.zero_filled;
    }
    s.output_bytes = conversion->bytes();
  }
  std::map<std::string, int> parts_per_target;
  for (const auto& p : in.parts) parts_per_target[p.target]++;
  for (const auto& m : cmp.modules) {
    ModuleRow row;
    row.target = m.target;
    row.status = status_name(m.status);
    row.relative_error = m.relative_error;
    row.tolerance = m.tolerance;
    row.gain = m.gain;
    row.gain_tolerance = m.gain_tolerance;
    row.resolution = m.resolution;
    if (m.status == verify::ModuleStatus::kEquivalent) s.resolution = std::max(s.resolution, m.resolution);
    if (m.scale_error)
      findings.push_back({"lora.delta.scale", Severity::kWarning, m.target, m.message});
    row.bias_error = m.bias_error;
    if (m.dora) row.magnitude_error = m.magnitude_error;
    row.parts_in = m.parts_a;
    row.parts_out = m.parts_b;
    row.ranks_in = m.ranks_a;
    row.ranks_out = m.ranks_b;
    for (const auto& st : strategies[m.target]) row.strategy += (row.strategy.empty() ? "" : "+") + st;
    row.zero_filled = zero_filled[m.target];
    row.message = m.message;
    s.zero_filled += row.zero_filled;
    if (parts_per_target[m.target] > 1) ++s.fused_targets;
    (m.status == verify::ModuleStatus::kEquivalent ? s.equivalent : s.different)++;
    r.modules.push_back(std::move(row));
  }
  std::stable_sort(r.modules.begin(), r.modules.end(),
                   [](const ModuleRow& x, const ModuleRow& y) { return natural_less(x.target, y.target); });
  s.targets = static_cast<int64_t>(r.modules.size());
  s.worst_relative_error = cmp.worst_relative_error;
  const std::string nothing = s.targets == 0 ? nothing_checked(findings, s.unused) : "";
  r.findings = group_findings(std::move(findings));
  int64_t errors = std::count_if(r.findings.begin(), r.findings.end(), [](const Finding& f) { return f.severity == Severity::kError; });
  r.pass = s.different == 0 && errors == 0 && s.targets > 0;  // nothing checked is no pass
  if (s.targets == 0) {
    r.verdict = nothing;
    return r;
  }
  if (s.different > 0)
    r.verdict = "not equivalent: " + std::to_string(s.different) + " of " + std::to_string(s.targets) +
                " modules differ beyond tolerance";
  else
    r.verdict = "equivalent: all " + std::to_string(s.targets) + " modules match within tolerance";
  if (errors > 0) r.verdict += "; " + std::to_string(errors) + " error finding" + (errors == 1 ? "" : "s") + " in the input";
  return r;
}

// Findings of a re-read or foreign output: kept, marked as about the output.
void add_output_findings(const LoraModel& out, std::vector<Finding>& findings) {
  for (Finding f : out.findings) {
    if (f.severity == Severity::kInfo) continue;
    f.message = "in the output: " + f.message;
    findings.push_back(std::move(f));
  }
}

// Reports the start of phase `index` of `count` (index == count: all done).
void step(const PipelineOptions& opt, std::string_view phase, int index, int count) {
  if (opt.progress) opt.progress(phase, static_cast<double>(index) / count);
}

Result<LoraModel> load(std::shared_ptr<const st::SafetensorsFile> file, const PipelineOptions& opt) {
  LoadOptions lo;
  lo.layout = opt.layout;
  lo.family = opt.family;
  return load_lora(std::move(file), lo);
}

}  // namespace

std::vector<Finding> input_findings(const LoraModel& in) {
  std::vector<Finding> f = in.findings;
  auto v = verify::check_values(in);
  // Untrained (every part a low-rank delta whose up is all zero, with no bias or DoRA
  // magnitude to change anything): one finding for the file instead of one per module.
  std::set<std::string> zero_ups;
  for (const auto& x : v)
    if (x.id == "lora.delta.zero") zero_ups.insert(x.tensor);
  const bool untrained =
      !in.parts.empty() && std::all_of(in.parts.begin(), in.parts.end(), [&](const Part& p) {
        return p.form == PartForm::kLowRank && p.up && !p.bias && !p.magnitude && zero_ups.count(p.up->name);
      });
  if (untrained) {
    std::set<std::string> modules;
    for (const auto& p : in.parts) modules.insert(p.source_module);
    v.erase(std::remove_if(v.begin(), v.end(), [](const Finding& x) { return x.id == "lora.delta.zero"; }), v.end());
    v.push_back({"lora.delta.untrained", Severity::kWarning, "",
                 "every up factor of its " + std::to_string(modules.size()) + " module" +
                     (modules.size() == 1 ? "" : "s") +
                     " is zero: this LoRA has no effect (untrained, or saved before its first step)"});
  }
  f.insert(f.end(), v.begin(), v.end());
  return f;
}

namespace {

OutputLayout own_layout(const LoraModel& model) {
  return dialect_is_bfl_named(model.dialect.id) ? OutputLayout::kBfl : OutputLayout::kDiffusers;
}

OutputLayout other_layout(const LoraModel& model) {
  return own_layout(model) == OutputLayout::kBfl ? OutputLayout::kDiffusers : OutputLayout::kBfl;
}

// No layout, style or loader asked for: the pipeline may choose.
bool layout_defaulted(const PipelineOptions& opt) {
  return !opt.to && !opt.style && opt.for_loader.empty() && opt.own_layout_because.empty();
}

// A conversion refused for a reason the input's own layout does not have (a DoRA magnitude
// fused with other rows or parts): worth one more try in that layout.
bool refused_for_layout(const Error& e) {
  return e.code == ErrorCode::kBadInput && e.message.rfind("refused: ", 0) == 0 &&
         e.message.find("DoRA") != std::string::npos;
}

}  // namespace

ConvertOptions resolve_convert_options(const LoraModel& model, const PipelineOptions& opt) {
  ConvertOptions c;
  c.to = opt.to.value_or(opt.own_layout_because.empty() ? other_layout(model) : own_layout(model));
  c.style = opt.style.value_or(c.to == OutputLayout::kBfl ? Style::kKohya : Style::kDiffusers);
  c.dtype = opt.dtype;
  c.allow_dense = opt.allow_dense;
  c.threads = opt.threads;
  c.source_name = std::filesystem::path(model.file->path()).filename().string();  // the name, not where it was
  return c;
}

namespace {

// Reads a converted file back with the same reader and verifies it against the input.
void add_dropped_findings(const ConversionPlan& plan, const PipelineOptions& opt, std::vector<Finding>& findings) {
  for (const DroppedRow& d : plan.dropped)
    findings.push_back({"convert.dropped_for_loader", Severity::kWarning, d.tensor,
                        "left out for " + opt.for_loader + " (--drop-unsupported): " + d.why});
}

// The loaders section and the choice of form, for every pipeline that converts.
void attach_loaders(Report& r, const LoraModel& original, const OutputSide& side, const std::string& output_path,
                    const ConversionPlan& plan, const PipelineOptions& opt) {
  AdviceContext ctx;
  ctx.output_path = output_path;
  ctx.output_written = !output_path.empty() && r.pass;  // convert puts only a passing output in place
  ctx.for_loader = opt.for_loader;
  ctx.wrote_file = !output_path.empty();
  ctx.threads = opt.threads;
  r.loaders = loader_rows(original, &side, ctx);
  r.for_loader = opt.for_loader;
  r.style_reason = plan.reason;
  r.not_served = plan.not_served;
  r.dropped_for = plan.dropped;
}

Result<Report> verify_conversion(const std::string& command, const LoraModel& original, const ConversionPlan& plan,
                                 const Conversion& conv, std::shared_ptr<const st::SafetensorsFile> out_file,
                                 const PipelineOptions& opt, const std::string& output_path,
                                 std::future<std::vector<Finding>> in_findings) {
  const LoraModel& in = plan.kept ? *plan.kept : original;
  const ConvertOptions& co = plan.options;
  step(opt, "re-reading", 3, 6);
  auto out = load_converted(out_file, in.layout);
  if (!out.ok()) return internal_error("the converter's output does not read back: " + out.error().message);
  verify::CompareOptions vo;
  vo.threads = opt.threads;
  step(opt, "verifying", 4, 6);
  LV_TRY_ASSIGN(cmp, verify::compare(in, *out, vo));
  auto findings = in_findings.get();
  findings.insert(findings.end(), conv.notes.begin(), conv.notes.end());
  add_output_findings(*out, findings);
  add_dropped_findings(plan, opt, findings);
  Report r = build(command, in, *out, cmp, &conv, std::move(findings));
  r.layout = std::string(layout_name(co.to));
  r.style = std::string(style_name(co.style));
  step(opt, "loaders", 5, 6);
  OutputSide side;
  append_output_side(side, *out, opt.threads);
  attach_loaders(r, original, side, output_path, plan, opt);
  step(opt, "done", 6, 6);
  return r;
}


// A --for output is written only where the loader's verdict on it is "loads": a file the loader
// rejects (whatever is left out) is refused, and so is one whose verdict is not established,
// unless --allow-unknown.
Result<loaders::Outcome> usable_outcome(const loaders::Profile& p, const LoraModel& kept, Style style,
                                        const PipelineOptions& opt) {
  const std::string head = "refused for " + opt.for_loader + ": ";
  const std::string file = kept.file ? kept.file->path() : std::string("the input");
  if (kept.parts.empty())
    return make_error(ErrorCode::kBadInput, head + std::string(p.display) + " takes no delta of " + file +
                                                " in any form lora-verify writes: every one would be left out");
  const loaders::Verdict v = loaders::evaluate(p, loaders::describe_output(kept, style));
  if (v.outcome == loaders::Outcome::kRejects || v.outcome == loaders::Outcome::kDrops)
    return make_error(ErrorCode::kBadInput, head + std::string(p.display) + " " +
                                                std::string(loaders::outcome_name(v.outcome)) + " " +
                                                (opt.drop_unsupported ? "what is left of " : "") + file +
                                                " in every form lora-verify writes (best: " +
                                                std::string(style_name(style)) + " style): " + v.message);
  if (v.outcome == loaders::Outcome::kUnknown && !opt.allow_unknown)
    return make_error(ErrorCode::kBadInput, head + "how " + std::string(p.display) + " reads the " +
                                                std::string(style_name(style)) + "-style output of " + file +
                                                " is not established (" + v.message +
                                                "); --allow-unknown writes it anyway");
  return v.outcome;
}

}  // namespace

Result<ConversionPlan> plan_conversion(const LoraModel& model, const PipelineOptions& opt) {
  ConversionPlan plan;
  PipelineOptions o = opt;
  if (!opt.for_loader.empty()) {
    const loaders::Profile* p = loaders::find_profile(opt.for_loader);
    if (!p)
      return make_error(ErrorCode::kUsage, "unknown loader '" + opt.for_loader + "' (choose one of " +
                                               loaders::profile_names() + ")");
    auto choice = loaders::choose_form(*p, model);
    if (!choice)
      return make_error(ErrorCode::kBadInput, "refused: no output form lora-verify writes is established for " +
                                                  std::string(p->display) + " (facts: " + std::string(p->established) +
                                                  "); choose a --style yourself");
    o.style = choice->style;
    o.to = choice->style == Style::kDiffusers ? OutputLayout::kDiffusers : OutputLayout::kBfl;
    plan.reason = "the form " + std::string(p->display) + " reads most completely (" +
                  std::string(style_name(choice->style)) + ")";
    if (!choice->verdict.dropped.empty()) {
      const auto& d = choice->verdict.dropped;
      std::vector<std::string> magnitudes;
      for (const auto& t : d)
        if (t.piece == loaders::Item::Piece::kMagnitude) magnitudes.push_back(t.tensor);
      if (!magnitudes.empty()) {
        std::string msg = "refused for " + opt.for_loader + ": " + std::string(p->display) + " cannot take " +
                          std::to_string(magnitudes.size()) + " DoRA magnitude" + (magnitudes.size() == 1 ? "" : "s") +
                          " of " + model.file->path() + " in any form it reads (" + magnitudes.front() +
                          (magnitudes.size() > 1 ? ", …" : "") +
                          "), and leaving a magnitude out changes the merged weight by an amount that needs the base "
                          "weights: lora-verify never drops one (not even with --drop-unsupported)";
        return make_error(ErrorCode::kBadInput, msg);
      }
      if (!opt.drop_unsupported) {
        std::string msg = "refused for " + opt.for_loader + ": " + std::to_string(d.size()) + " tensor" +
                          (d.size() == 1 ? "" : "s") + " of " + model.file->path() + " cannot be loaded by " +
                          std::string(p->display) + " in any form it reads (best: " +
                          std::string(style_name(choice->style)) + " style): ";
        for (size_t i = 0; i < d.size(); ++i) {
          msg += (i ? "; " : "") + d[i].tensor + (d[i].target.empty() ? "" : " (target " + d[i].target + ")") + ": " +
                 std::string(loaders::kind_description(d[i].kind)) + ", " +
                 std::string(loaders::treatment_name(d[i].treatment)) + (d[i].why.empty() ? "" : " — " + d[i].why);
        }
        msg += "; --drop-unsupported leaves them out and reports what is lost";
        return make_error(ErrorCode::kBadInput, msg);
      }
      auto lost = lost_delta(model, d, opt.threads);
      for (const auto& t : d) {
        DroppedRow row{t.tensor, t.target, std::string(loaders::kind_description(t.kind)) + ", " +
                                               std::string(loaders::treatment_name(t.treatment)) +
                                               (t.why.empty() ? "" : " — " + t.why)};
        for (const auto& l : lost)
          if (l.target == t.target) {
            row.weight_lost = l.weight;
            row.bias_lost = l.bias;
          }
        plan.dropped.push_back(std::move(row));
      }
      plan.kept = loaders::without(model, d);
    }
    LV_TRY_ASSIGN(outcome, usable_outcome(*p, plan.kept ? *plan.kept : model, choice->style, opt));
    if (outcome == loaders::Outcome::kUnknown)
      plan.reason += "; how it reads this file is not established (written because of --allow-unknown)";
  } else if (!opt.own_layout_because.empty() && !opt.to && !opt.style) {
    o.to = own_layout(model);
    o.style = o.to == OutputLayout::kBfl ? Style::kKohya : Style::kDiffusers;
    plan.reason = "the input's own " + std::string(layout_name(*o.to)) + " layout, which keeps every DoRA magnitude (" +
                  opt.own_layout_because + ")";
    if (opt.default_for_loaders) {
      const loaders::Description d = loaders::describe_output(model, *o.style);
      for (const loaders::Profile& p : loaders::profiles())
        if (loaders::evaluate(p, d).outcome != loaders::Outcome::kLoads) plan.not_served.emplace_back(p.name);
    }
  } else if (opt.default_for_loaders && !opt.to && !opt.style) {
    auto def = loaders::default_form(model);
    o.style = def.style;
    o.to = def.style == Style::kDiffusers ? OutputLayout::kDiffusers : OutputLayout::kBfl;
    plan.reason = "the style that loads completely in the most profiled loaders for this input";
    plan.not_served = def.not_served;
  }
  plan.options = resolve_convert_options(model, o);
  return plan;
}

// run_verify converts and verifies a group of targets at a time (the pass-through tensors
// after them), so only one group's conversion buffers and serialized bytes are alive at
// once; an input up to this size is one group, as before.
constexpr uint64_t kVerifyGroupBytes = uint64_t{96} << 20;

namespace {

// The bytes of a part's tensors in the input.
uint64_t part_bytes(const Part& p) {
  uint64_t n = 0;
  for (const Part::Source& s : p.source_tensors) n += s.tensor ? s.tensor->nbytes : 0;
  return n;
}

// Groups: whole targets (every part of a target converts and compares together), in the
// converter's order, then the pass-through tensors, cut at kVerifyGroupBytes of input.
std::vector<LoraModel> verify_groups(const LoraModel& in) {
  std::map<std::string, std::vector<const Part*>> by_target;
  for (const Part& p : in.parts) by_target[p.target].push_back(&p);
  std::vector<LoraModel> groups;
  uint64_t group_bytes = kVerifyGroupBytes;
  auto next_group = [&](uint64_t bytes) -> LoraModel& {
    if (groups.empty() || group_bytes + bytes > kVerifyGroupBytes) {
      groups.push_back(in.empty_copy());
      group_bytes = 0;
    }
    group_bytes += bytes;
    return groups.back();
  };
  for (const auto& [target, ps] : by_target) {
    uint64_t n = 0;
    for (const Part* p : ps) n += part_bytes(*p);
    LoraModel& g = next_group(n);
    for (const Part* p : ps) g.parts.push_back(*p);
  }
  for (const PassThrough& pt : in.passthrough) {
    const st::TensorView* t = in.file->find(pt.tensor);
    next_group(t ? t->nbytes : 0).passthrough.push_back(pt);
  }
  if (groups.empty()) groups.push_back(in.empty_copy());
  return groups;
}

// What verifying the groups one by one gathers.
struct Verified {
  Conversion all;         // notes, modules and pass-through count of every group
  OutputSide output_side;  // what each loader does with the output
  std::optional<LoraModel> first_out;  // the output's dialect (no parts kept)
  std::vector<Finding> out_findings;
  verify::CompareResult cmp;
  uint64_t output_bytes = 0;
};

void add_unique(std::vector<Finding>& to, const Finding& f) {
  for (const Finding& e : to)
    if (e.id == f.id && e.tensor == f.tensor && e.message == f.message) return;
  to.push_back(f);
}

// One group: converted, serialized, re-read and compared; its facts added to `v`.
Status verify_group(const LoraModel& g, const ConvertOptions& co, const PipelineOptions& opt, const std::string& of,
                    const std::function<int(int)>& at, Verified& v) {
  step(opt, "converting" + of, at(0), 6);
  LV_TRY_ASSIGN(conv, convert(g, co));
  v.output_bytes += conv.bytes();
  step(opt, "serializing" + of, at(1), 6);
  LV_TRY_ASSIGN(file, serialize_and_read(conv, /*free_written=*/true));
  step(opt, "re-reading" + of, at(2), 6);
  auto out = load_converted(std::move(file), g.layout);
  if (!out.ok()) return internal_error("the converter's output does not read back: " + out.error().message);
  step(opt, "verifying" + of, at(3), 6);
  verify::CompareOptions vo;
  vo.threads = opt.threads;
  LV_TRY_ASSIGN(part_cmp, verify::compare_parts(g.parts, out->parts, vo));
  for (auto& m : part_cmp.modules) v.cmp.modules.push_back(std::move(m));
  for (const Finding& f : conv.notes) add_unique(v.all.notes, f);
  for (const Finding& f : out->findings)
    if (f.severity != Severity::kInfo) add_unique(v.out_findings, {f.id, f.severity, f.tensor, "in the output: " + f.message});
  v.all.modules.insert(v.all.modules.end(), conv.modules.begin(), conv.modules.end());
  append_output_side(v.output_side, *out, opt.threads);
  v.all.passthrough += conv.passthrough;
  if (!v.first_out || (v.first_out->parts.empty() && !out->parts.empty())) {
    out->parts.clear();  // only its dialect is reported: the group's bytes need not stay
    out->file.reset();
    v.first_out = std::move(out).value();
  }
  return {};
}

// Every group in turn (one: the phases as convert names them; several: the same, numbered),
// then the modules in target order with the worst error.
Result<Verified> verify_all_groups(const LoraModel& in, const ConvertOptions& co, const PipelineOptions& opt) {
  const std::vector<LoraModel> groups = verify_groups(in);
  Verified v;
  for (size_t i = 0; i < groups.size(); ++i) {
    const std::string of = groups.size() == 1 ? std::string()
                                              : " (group " + std::to_string(i + 1) + " of " + std::to_string(groups.size()) + ")";
    auto at = [&](int k) { return static_cast<int>((i * 4 + static_cast<size_t>(k)) / groups.size()) + 1; };
    LV_TRY(verify_group(groups[i], co, opt, of, at, v));
  }
  std::sort(v.cmp.modules.begin(), v.cmp.modules.end(), [](const auto& x, const auto& y) { return x.target < y.target; });
  for (const auto& m : v.cmp.modules) {
    if (m.status != verify::ModuleStatus::kEquivalent) v.cmp.all_equivalent = false;
    if (!std::isnan(m.relative_error)) v.cmp.worst_relative_error = std::max(v.cmp.worst_relative_error, m.relative_error);
  }
  return v;
}

// The verify pipeline from a loaded model: plan, convert and verify in groups, report.
Result<Report> verify_model(const LoraModel& original, const PipelineOptions& opt) {
  LV_TRY_ASSIGN(plan, plan_conversion(original, opt));
  const LoraModel& in = plan.kept ? *plan.kept : original;
  const ConvertOptions& co = plan.options;
  LV_TRY_ASSIGN(v, verify_all_groups(in, co, opt));
  auto findings = input_findings(in);
  findings.insert(findings.end(), v.all.notes.begin(), v.all.notes.end());
  findings.insert(findings.end(), v.out_findings.begin(), v.out_findings.end());
  add_dropped_findings(plan, opt, findings);
  Report r = build("verify", in, *v.first_out, v.cmp, &v.all, std::move(findings));
  r.layout = std::string(layout_name(co.to));
  r.style = std::string(style_name(co.style));
  r.summary.output_bytes = v.output_bytes;
  step(opt, "loaders", 5, 6);
  attach_loaders(r, original, v.output_side, "", plan, opt);
  step(opt, "done", 6, 6);
  return r;
}

// Runs `once`; when the layout was left to lora-verify and converting to the other layout is
// refused for a DoRA magnitude, runs it again in the input's own layout, which keeps them.
template <typename Once>
Result<Report> with_own_layout_fallback(const PipelineOptions& opt, Once once) {
  auto r = once(opt);
  if (r.ok() || !layout_defaulted(opt) || !refused_for_layout(r.error())) return r;
  PipelineOptions o = opt;
  o.own_layout_because = "the other layout was " + r.error().message;
  auto again = once(o);
  return again.ok() ? std::move(again) : std::move(r);
}

}  // namespace

Result<Report> run_verify(std::shared_ptr<const st::SafetensorsFile> input, const PipelineOptions& opt) {
  step(opt, "reading", 0, 6);
  LV_TRY_ASSIGN(model, load(input, opt));
  return run_verify(model, opt);
}

Result<Report> run_verify(const LoraModel& model, const PipelineOptions& opt) {
  return with_own_layout_fallback(opt, [&](const PipelineOptions& o) { return verify_model(model, o); });
}

Result<Report> run_compare(std::shared_ptr<const st::SafetensorsFile> source,
                           std::shared_ptr<const st::SafetensorsFile> converted, const PipelineOptions& opt) {
  step(opt, "reading", 0, 4);
  LV_TRY_ASSIGN(in, load(source, opt));
  return run_compare(in, std::move(converted), opt);
}

Result<Report> run_compare(const LoraModel& in, std::shared_ptr<const st::SafetensorsFile> converted,
                           const PipelineOptions& opt) {
  step(opt, "reading the conversion", 1, 4);
  LV_TRY_ASSIGN(out, load_converted(converted, in.layout));
  verify::CompareOptions vo;
  vo.threads = opt.threads;
  step(opt, "verifying", 2, 4);
  LV_TRY_ASSIGN(cmp, verify::compare(in, out, vo));
  auto findings = input_findings(in);
  add_output_findings(out, findings);
  for (const auto& f : verify::check_values(out))
    if (f.severity != Severity::kInfo) findings.push_back({f.id, f.severity, f.tensor, "in the output: " + f.message});
  Report r = build("compare", in, out, cmp, nullptr, std::move(findings));
  r.other = converted->path();
  step(opt, "loaders", 3, 4);
  OutputSide side;
  append_output_side(side, out, opt.threads);
  AdviceContext ctx;
  ctx.output_path = converted->path();
  ctx.output_written = true;  // compare: someone else's file, already there
  ctx.threads = opt.threads;
  r.loaders = loader_rows(in, &side, ctx);
  step(opt, "done", 4, 4);
  return r;
}

namespace {

Result<Report> convert_once(std::shared_ptr<const st::SafetensorsFile> input, const std::string& output,
                            const PipelineOptions& opt) {
  step(opt, "reading", 0, 6);
  LV_TRY_ASSIGN(original, load(input, opt));
  LV_TRY_ASSIGN(plan, plan_conversion(original, opt));
  const LoraModel& in = plan.kept ? *plan.kept : original;
  const ConvertOptions& co = plan.options;
  step(opt, "converting", 1, 6);
  LV_TRY_ASSIGN(conv, convert(in, co));
  step(opt, "writing", 2, 6);
  // The input's value checks (a pass over its bytes) run beside the write and the verification
  // (with one thread, no thread is started: they run when their result is needed).
  const auto policy = opt.threads > 1 ? std::launch::async : std::launch::deferred;
  auto in_findings = std::async(policy, [&in] { return input_findings(in); });
  // Written to a temporary first; put in place only once it has been re-read and verified.
  // Each buffer is freed as soon as its bytes are written: the page cache takes the memory.
  const uint64_t output_bytes = conv.bytes();
  LV_TRY_ASSIGN(pending, st::stage_file(output, tensors_to_write(conv), conv.metadata, {input->path()},
                                        /*allow_stdout=*/true, [&](size_t i) { free_tensor(conv.tensors[i]); }));
  for (OutTensor& t : conv.tensors) free_tensor(t);  // those the writer did not free (views)
  auto written = st::SafetensorsFile::open(pending.temporary());
  if (!written.ok()) return make_error(ErrorCode::kIo, "cannot re-read the written file: " + written.error().message);
  const std::string shown = output == "-" ? std::string(kStandardOutput) : output;
  auto r = verify_conversion("convert", original, plan, conv,
                             std::make_shared<const st::SafetensorsFile>(std::move(written).value()), opt, shown,
                             std::move(in_findings));
  if (!r.ok()) return r;
  r->other = shown;
  r->summary.output_bytes = output_bytes;
  r->output_written = r->pass;
  if (r->pass) LV_TRY(pending.commit());  // otherwise the temporary goes, and a previous output stays
  return r;
}

}  // namespace

Result<Report> run_convert(std::shared_ptr<const st::SafetensorsFile> input, const std::string& output,
                           const PipelineOptions& opt) {
  return with_own_layout_fallback(opt, [&](const PipelineOptions& o) { return convert_once(input, output, o); });
}

}  // namespace lv::report
