// Renderers of a Report: text for terminals and CI logs, JSON for machines, Markdown for people.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "report/report.h"
#include "verify/equivalence.h"

namespace lv::report {
namespace {

std::string num(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return "inf";
  if (v == 0) return "0";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3g", v);
  return buf;
}

std::string ranks(const std::vector<int64_t>& r) {
  std::string s;
  for (size_t i = 0; i < r.size(); ++i) {
    if (i) s += ',';
    s += std::to_string(r[i]);
  }
  return s.empty() ? "-" : s;
}

std::string dialect_line(const Report& r) {
  std::string s = r.dialect;
  if (!r.dialects.empty()) {
    s += " (";
    for (size_t i = 0; i < r.dialects.size(); ++i)
    {
      if (i) s += ", ";
      s += r.dialects[i].first;
      s += ": " + std::to_string(r.dialects[i].second) + " tensors";
    }
    s += ")";
  }
  return s;
}

std::string family_line(const Report& r) {
  std::string s = r.family_display + " (" + r.family + ")";
  for (size_t i = 0; i < r.family_evidence.size(); ++i) s += (i ? "; " : ": ") + r.family_evidence[i];
  return s;
}

// The tensor of a finding, or all the tensors it covers.
std::string tensors_of(const Finding& f, const char* sep = ", ") {
  if (f.tensors.empty()) return f.tensor;
  std::string s;
  for (size_t i = 0; i < f.tensors.size(); ++i) s += (i ? sep : "") + f.tensors[i];
  return s;
}

bool failing(const ModuleRow& m) { return m.status != "equivalent"; }

// The gain is shown where it is not 1 within its tolerance (a module with a delta on both sides).
bool gain_shown(const ModuleRow& m) { return m.parts_in > 0 && m.parts_out > 0 && std::fabs(m.gain - 1) > m.gain_tolerance; }

using verify::gain_text;

// "scale errors of 0.41% or more caught in every module", or exact when nothing was rounded.
std::string resolution_text(double res) {
  if (res == 0) return "exact: nothing was rounded, any scale error is caught";
  char buf[96];
  std::snprintf(buf, sizeof buf, "a scale error of %.2g%% or more in any one module is caught", 100 * res);
  return buf;
}

// Markdown table cells must not break the table.
std::string cell(std::string s) {
  std::string out;
  for (char c : s) {
    if (c == '|') out += "\\|";
    else if (c == '\n' || c == '\r') out += ' ';
    else out += c;
  }
  return out;
}

// Which loaders' verdicts were measured with the app's own code (tools/loader-lab, data/loaders)
// and which come from reading its code: one line under the loader rows.
std::string basis_line(const std::vector<LoaderRow>& rows, const std::string& indent) {
  std::string measured, code;
  for (const auto& l : rows) {
    if (l.input.outcome == "unknown" && (!l.output || l.output->outcome == "unknown")) continue;
    const bool m = l.input.measured && (!l.output || l.output->measured || l.output->outcome == "unknown");
    std::string& list = m ? measured : code;
    list += (list.empty() ? "" : ", ") + l.loader;
  }
  std::string line = indent + "verdicts measured with the app's own code: " + (measured.empty() ? "none" : measured);
  if (!code.empty()) line += "; from reading its code: " + code;
  return line;
}

}  // namespace

namespace {

// Without --all, findings of one severity and id beyond this many print as one line with
// their count, and failing modules beyond this many as a count: a report fits a screen.
constexpr size_t kFindingsShown = 3;
constexpr size_t kModulesShown = 20;

void finding_line(std::ostringstream& o, const Finding& f) {
  o << "  " << severity_name(f.severity) << " " << f.id;
  if (!f.tensor.empty()) o << ' ' << tensors_of(f);
  o << ": " << f.message << "\n";
}

// The findings, each group of more than kFindingsShown with one severity and id as its
// first finding and a count (all of them with `all`).
void findings_text(std::ostringstream& o, const std::vector<Finding>& findings, bool all) {
  std::map<std::pair<Severity, std::string>, size_t> count;
  for (const auto& f : findings) count[{f.severity, f.id}]++;
  std::set<std::pair<Severity, std::string>> collapsed;
  for (const auto& f : findings) {
    const auto key = std::make_pair(f.severity, f.id);
    const size_t n = count[key];
    if (all || n <= kFindingsShown) {
      finding_line(o, f);
    } else if (collapsed.insert(key).second) {
      o << "  " << severity_name(f.severity) << " " << f.id << " ×" << n << ": " << f.message << "  ("
        << (f.tensor.empty() ? "" : tensors_of(f) + "; ") << n - 1 << " more like it; --all lists them)\n";
    }
  }
}

}  // namespace

std::string render_text(const Report& r, bool all_modules, bool verbose) {
  std::ostringstream o;
  o << (r.pass ? "PASS" : "FAIL") << ": " << r.verdict << "\n\n";
  o << "input:        " << r.input << "\n";
  if (!r.other.empty())
    o << "converted:    " << r.other << (r.output_written ? "" : "  (not written: the check failed; a previous file is unchanged)")
      << "\n";
  if (!r.family.empty()) {
    o << "model:        " << r.family_display << " (" << r.family << ")\n";
    if (verbose || all_modules)
      for (const auto& e : r.family_evidence) o << "              " << e << "\n";
  }
  o << "dialect:      " << dialect_line(r) << "\n";
  if (!r.other_dialect.empty()) o << "converted as: " << r.other_dialect << "\n";
  if (!r.layout.empty()) o << "conversion:   to " << r.layout << " layout, " << r.style << " style\n";
  const Summary& s = r.summary;
  o << "tensors:      " << s.tensors << " (" << s.parts << " deltas, " << s.passthrough << " passed through, "
    << s.unused << " unused)\n";
  o << "ranks:        " << (s.parts ? std::to_string(s.rank_min) + ".." + std::to_string(s.rank_max) : "-") << "\n";
  o << "modules:      " << s.targets << " BFL targets, " << s.fused_targets << " fused from several parts, "
    << s.zero_filled << " missing parts zero-filled\n";
  o << "equivalence:  " << s.equivalent << " equivalent, " << s.different << " not; worst relative error "
    << num(s.worst_relative_error) << "\n";
  if (s.equivalent > 0) o << "resolution:   " << resolution_text(s.resolution) << "\n";
  if (s.output_bytes) o << "output:       " << s.output_bytes << " bytes of tensor data\n";

  bool header = false;
  size_t shown = 0;
  const size_t listed = static_cast<size_t>(std::count_if(r.modules.begin(), r.modules.end(), [&](const ModuleRow& m) {
    return all_modules || failing(m);
  }));
  for (const auto& m : r.modules) {
    if (!all_modules && !failing(m)) continue;
    if (!all_modules && shown++ == kModulesShown) {
      o << "  … " << listed - kModulesShown << " more failing modules (--all lists them)\n";
      break;
    }
    if (!header) {
      o << "\n" << (all_modules ? "modules" : "failing modules") << ":\n";
      header = true;
    }
    o << "  " << m.status << "  " << m.target << "  rel.error " << num(m.relative_error) << " (tolerance "
      << num(m.tolerance) << ")";
    if (gain_shown(m)) o << "  gain " << gain_text(m.gain) << " (tolerance " << num(m.gain_tolerance) << ")";
    if (m.bias_error != 0) o << "  bias error " << num(m.bias_error);
    if (m.magnitude_error) o << "  DoRA magnitude error " << num(*m.magnitude_error);
    o << "  ranks " << ranks(m.ranks_in) << " -> " << ranks(m.ranks_out);
    if (!m.strategy.empty()) o << "  [" << m.strategy << "]";
    if (!m.message.empty()) o << "  " << m.message;
    o << "\n";
  }
  if (!r.findings.empty()) {
    o << "\nfindings:\n";
    findings_text(o, r.findings, all_modules);
  }
  o << render_loaders_text(r);
  return o.str();
}

std::string render_loaders_text(const Report& r) {
  std::ostringstream o;
  if (!r.dropped_for.empty()) {
    o << "\ndropped for " << r.for_loader << " (--drop-unsupported):\n";
    for (const auto& d : r.dropped_for)
      o << "  " << d.tensor << "  " << d.target << "  lost " << num(d.weight_lost) << " of the weight delta"
        << (d.bias_lost != 0 ? ", " + num(d.bias_lost) + " of the bias delta" : "") << "  (" << d.why << ")\n";
  }
  if (r.loaders.empty()) return o.str();
  const bool has_output = std::any_of(r.loaders.begin(), r.loaders.end(), [](const LoaderRow& l) { return l.output.has_value(); });
  o << "\nloaders (" << (has_output ? "input -> output" : "input") << "):\n";
  size_t width = 0;
  for (const auto& l : r.loaders) width = std::max(width, l.loader.size());
  for (const auto& l : r.loaders) {
    o << "  " << l.loader << std::string(width - l.loader.size(), ' ') << "  " << l.input.outcome;
    if (l.output) o << " -> " << l.output->outcome;
    const std::string& msg = l.output && l.input.outcome == "loads" && l.output->outcome != "loads" ? l.output->message
                                                                                                      : l.input.message;
    if (!msg.empty()) o << "  " << msg;
    o << "\n";
    // Targets that lose everything, or only their bias delta, are listed together; the others
    // with their fractions.
    auto lost = [&](const LoaderOutcome& x, const char* what) {
      std::vector<std::string> all, bias, some, magnitude;
      for (const auto& t : x.lost) {
        if (t.magnitude) magnitude.push_back(t.target);
        if (t.magnitude && t.weight == 0 && t.bias == 0) continue;
        if (t.weight >= 1 && (t.bias == 0 || t.bias >= 1)) all.push_back(t.target);
        else if (t.weight == 0 && t.bias > 0) bias.push_back(t.target);
        else some.push_back(num(t.weight) + " of " + t.target + (t.bias != 0 ? " (bias " + num(t.bias) + ")" : ""));
      }
      const std::string indent = "  " + std::string(width, ' ') + "    ";
      auto group = [&](const std::vector<std::string>& names, const char* lead) {
        if (names.empty()) return;
        o << indent << what << " loses " << lead << names.size() << " target" << (names.size() == 1 ? "" : "s") << ":";
        for (size_t i = 0; i < names.size() && i < 6; ++i) o << (i ? ", " : " ") << names[i];
        if (names.size() > 6) o << ", …";
        o << "\n";
      };
      group(all, "all of ");
      group(bias, "the bias delta of ");
      group(magnitude, "the DoRA magnitude (the merged weight changes; by how much needs the base weights) of ");
      for (const auto& t : some) o << indent << what << " loses " << t << "\n";
    };
    lost(l.input, "input");
    if (l.output) lost(*l.output, "output");
  }
  o << basis_line(r.loaders, "  ") << "\n";
  if (!r.not_served.empty()) {
    o << "\noutput style " << r.style << " chosen as " << r.style_reason << "; not served completely:";
    for (const auto& n : r.not_served) o << " " << n;
    o << "\n";
  } else if (!r.style_reason.empty()) {
    o << "\noutput style " << r.style << ": " << r.style_reason << "\n";
  }
  bool advice = false;
  for (const auto& l : r.loaders) {
    if (l.advice.empty()) continue;
    if (!advice) o << "\nto load it:\n";
    advice = true;
    o << "  " << l.loader << ": " << l.advice << "\n";
  }
  return o.str();
}

nlohmann::ordered_json loaders_json(const Report& r) {
  using nlohmann::ordered_json;
  auto outcome_json = [](const LoaderOutcome& x) {
    ordered_json o;
    o["outcome"] = x.outcome;
    o["message"] = x.message;
    o["dropped"] = x.dropped;
    ordered_json lost = ordered_json::array();
    for (const auto& t : x.lost) {
      ordered_json l = {{"target", t.target}, {"weight", t.weight}, {"bias", t.bias}};
      if (t.magnitude) l["magnitude"] = true;
      lost.push_back(std::move(l));
    }
    o["lost"] = std::move(lost);
    o["unknown"] = x.unknown;
    o["basis"] = x.outcome == "unknown" ? "none" : x.measured ? "measured" : "code";
    return o;
  };
  ordered_json ls = ordered_json::array();
  for (const auto& l : r.loaders) {
    ordered_json o;
    o["loader"] = l.loader;
    o["display"] = l.display;
    o["established"] = l.established;
    o["input"] = outcome_json(l.input);
    if (l.output) o["output"] = outcome_json(*l.output);
    if (!l.advice.empty()) o["advice"] = l.advice;
    if (!l.command.empty()) o["command"] = l.command;
    ls.push_back(std::move(o));
  }
  return ls;
}

std::string render_json(const Report& r) {
  using nlohmann::ordered_json;
  ordered_json j;
  j["schema"] = "lora-verify.report/1";
  j["tool_version"] = r.version;
  j["command"] = r.command;
  j["verdict"] = r.pass ? "pass" : "fail";
  j["summary_line"] = r.verdict;
  j["input"] = r.input;
  if (!r.other.empty()) j["converted"] = r.other;
  if (r.command == "convert") j["output_written"] = r.output_written;
  if (!r.family.empty())
    j["model"] = {{"family", r.family}, {"display", r.family_display}, {"evidence", r.family_evidence}};
  j["dialect"] = r.dialect;
  ordered_json ev = ordered_json::array();
  for (const auto& [d, n] : r.dialects) ev.push_back({{"dialect", d}, {"tensors", n}});
  j["dialect_evidence"] = ev;
  if (!r.other_dialect.empty()) j["converted_dialect"] = r.other_dialect;
  if (!r.layout.empty()) j["conversion"] = {{"layout", r.layout}, {"style", r.style}};
  const Summary& s = r.summary;
  j["summary"] = {{"tensors", s.tensors},
                  {"deltas", s.parts},
                  {"targets", s.targets},
                  {"fused_targets", s.fused_targets},
                  {"zero_filled_parts", s.zero_filled},
                  {"passed_through", s.passthrough},
                  {"unused", s.unused},
                  {"rank_min", s.rank_min},
                  {"rank_max", s.rank_max},
                  {"equivalent", s.equivalent},
                  {"not_equivalent", s.different},
                  {"worst_relative_error", s.worst_relative_error},
                  {"resolution", s.resolution},
                  {"output_bytes", s.output_bytes}};
  ordered_json mods = ordered_json::array();
  for (const auto& m : r.modules) {
    ordered_json o;
    o["target"] = m.target;
    o["status"] = m.status;
    o["relative_error"] = m.relative_error;  // null when infinite (a delta against zero)
    o["tolerance"] = m.tolerance;
    o["gain"] = m.gain;
    o["gain_tolerance"] = m.gain_tolerance;
    o["resolution"] = m.resolution;
    o["bias_error"] = m.bias_error;
    if (m.magnitude_error) o["magnitude_error"] = *m.magnitude_error;
    o["parts_in"] = m.parts_in;
    o["parts_out"] = m.parts_out;
    o["ranks_in"] = m.ranks_in;
    o["ranks_out"] = m.ranks_out;
    if (!m.strategy.empty()) o["strategy"] = m.strategy;
    o["zero_filled_parts"] = m.zero_filled;
    if (!m.message.empty()) o["message"] = m.message;
    mods.push_back(std::move(o));
  }
  j["modules"] = std::move(mods);
  ordered_json fs = ordered_json::array();
  for (const auto& f : r.findings) {
    ordered_json o = {{"id", f.id}, {"severity", severity_name(f.severity)}, {"tensor", f.tensor}, {"message", f.message}};
    if (!f.tensors.empty()) o["tensors"] = f.tensors;
    fs.push_back(std::move(o));
  }
  j["findings"] = std::move(fs);
  ordered_json pt = ordered_json::array();
  for (const auto& [t, why] : r.passthrough) pt.push_back({{"tensor", t}, {"reason", why}});
  j["passed_through"] = std::move(pt);
  j["loaders"] = loaders_json(r);
  if (!r.for_loader.empty()) j["for_loader"] = r.for_loader;
  if (!r.style_reason.empty()) j["style_reason"] = r.style_reason;
  if (!r.not_served.empty()) j["not_served"] = r.not_served;
  if (!r.dropped_for.empty()) {
    ordered_json ds = ordered_json::array();
    for (const auto& d : r.dropped_for)
      ds.push_back({{"tensor", d.tensor}, {"target", d.target}, {"why", d.why}, {"weight_lost", d.weight_lost},
                    {"bias_lost", d.bias_lost}});
    j["dropped_for_loader"] = std::move(ds);
  }
  return j.dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + "\n";
}

std::string render_markdown(const Report& r) {
  std::ostringstream o;
  o << "# lora-verify report\n\n";
  o << "**" << (r.pass ? "PASS" : "FAIL") << "**: " << cell(r.verdict) << "\n\n";
  o << "| | |\n|---|---|\n";
  o << "| input | `" << cell(r.input) << "` |\n";
  if (!r.other.empty()) o << "| converted | `" << cell(r.other) << "` |\n";
  if (!r.family.empty()) o << "| model | " << cell(family_line(r)) << " |\n";
  o << "| dialect | " << cell(dialect_line(r)) << " |\n";
  if (!r.layout.empty()) o << "| conversion | to " << r.layout << " layout, " << r.style << " style |\n";
  const Summary& s = r.summary;
  o << "| tensors | " << s.tensors << " (" << s.parts << " deltas, " << s.passthrough << " passed through, " << s.unused
    << " unused) |\n";
  o << "| modules | " << s.targets << " targets, " << s.fused_targets << " fused, " << s.zero_filled
    << " missing parts zero-filled |\n";
  o << "| equivalence | " << s.equivalent << " equivalent, " << s.different << " not; worst relative error "
    << num(s.worst_relative_error) << " |\n";
  if (s.equivalent > 0) o << "| resolution | " << resolution_text(s.resolution) << " |\n";
  o << "\n## Modules\n\n| target | status | relative error | tolerance | gain | ranks in → out | strategy |\n"
       "|---|---|---|---|---|---|---|\n";
  for (const auto& m : r.modules)
    o << "| `" << cell(m.target) << "` | " << m.status << " | " << num(m.relative_error) << " | " << num(m.tolerance)
      << " | " << (gain_shown(m) ? gain_text(m.gain) : "1") << " | " << ranks(m.ranks_in) << " → " << ranks(m.ranks_out) << " | "
      << (m.strategy.empty() ? "-" : m.strategy) << " |\n";
  if (!r.findings.empty()) {
    o << "\n## Findings\n\n| severity | id | tensor | message |\n|---|---|---|---|\n";
    for (const auto& f : r.findings)
      o << "| " << severity_name(f.severity) << " | `" << f.id << "` | `" << cell(tensors_of(f, "`, `")) << "` | " << cell(f.message)
        << " |\n";
  }
  if (!r.dropped_for.empty()) {
    o << "\n## Dropped for " << cell(r.for_loader) << "\n\n| tensor | target | lost (weight) | lost (bias) | why |\n|---|---|---|---|---|\n";
    for (const auto& d : r.dropped_for)
      o << "| `" << cell(d.tensor) << "` | `" << cell(d.target) << "` | " << num(d.weight_lost) << " | " << num(d.bias_lost)
        << " | " << cell(d.why) << " |\n";
  }
  if (!r.loaders.empty()) {
    const bool has_output = std::any_of(r.loaders.begin(), r.loaders.end(), [](const LoaderRow& l) { return l.output.has_value(); });
    o << "\n## Loaders\n\n| loader | input | " << (has_output ? "output | " : "") << "message | to load it |\n|---|---|"
      << (has_output ? "---|" : "") << "---|---|\n";
    for (const auto& l : r.loaders) {
      o << "| " << cell(l.display) << " (`" << l.loader << "`) | " << l.input.outcome << " | ";
      if (has_output) o << (l.output ? l.output->outcome : "-") << " | ";
      std::string msg = l.input.message;
      if (l.output && !l.output->message.empty() && l.output->message != msg)
        msg += (msg.empty() ? "" : "; ") + std::string("output: ") + l.output->message;
      o << cell(msg.empty() ? "-" : msg) << " | ";
      if (l.advice.empty()) o << "-";
      else o << '`' << cell(l.advice) << '`';
      o << " |\n";
    }
    o << "\n" << basis_line(r.loaders, "") << "\n";
    if (!r.not_served.empty()) {
      o << "\nOutput style `" << r.style << "` chosen as " << cell(r.style_reason) << "; not served completely:";
      for (const auto& n : r.not_served) o << " `" << n << "`";
      o << "\n";
    }
  }
  return o.str();
}

}  // namespace lv::report
