// The loader view of the compatibility matrix (see loader_cells.h).
#include "matrix/loader_cells.h"

#include <map>
#include <set>
#include <sstream>

#include "loaders/verdict.h"
#include "lora/loader.h"
#include "matrix/render_common.h"
#include "report/loader_rows.h"

namespace lv::matrix {
namespace {

// A loader cell's outcomes (the loaders' own, and refused for convert --for) in the order
// counts list them, with their Markdown marks.
struct LoaderMark {
  const char* outcome;
  const char* md;
};
const LoaderMark kOutcomes[] = {{"loads", "✅"}, {"drops", "⚠️"}, {"rejects", "⛔"}, {"unknown", "❔"}, {"refused", "🚫"}};

std::string md_outcome(const std::string& o) {
  for (const LoaderMark& m : kOutcomes)
    if (o == m.outcome) return m.md;
  return "-";
}

// Counts per (dialect, loader) of input outcomes, over the rows with loader cells.
struct LoaderSummary {
  std::vector<std::string> loaders;
  std::vector<std::string> dialects;
  std::map<std::pair<std::string, std::string>, std::map<std::string, int>> input;
  std::map<std::string, std::map<std::string, int>> form;  // loader → form outcome counts
  std::map<std::string, std::string> form_name;            // loader → the form written for it (most rows)
  int rows = 0;
};

LoaderSummary summarize(const MatrixResult& m) {
  LoaderSummary s;
  for (const loaders::Profile& p : loaders::profiles()) s.loaders.emplace_back(p.name);
  std::set<std::string> seen;
  std::map<std::string, std::map<std::string, int>> form_votes;
  for (const auto& r : m.rows) {
    if (r.loaders.empty()) continue;
    ++s.rows;
    if (seen.insert(r.dialect).second) s.dialects.push_back(r.dialect);
    for (const auto& c : r.loaders) {
      s.input[{r.dialect, c.loader}][c.input]++;
      s.form[c.loader][c.form_outcome]++;
      form_votes[c.loader][c.form]++;
    }
  }
  for (const auto& [loader, votes] : form_votes) {
    int best = -1;
    for (const auto& [f, n] : votes)
      if (n > best) {
        best = n;
        s.form_name[loader] = f;
      }
  }
  return s;
}

std::string counts(const std::map<std::string, int>& c, bool md) {
  std::string out;
  for (const LoaderMark& m : kOutcomes) {
    auto it = c.find(m.outcome);
    if (it == c.end() || it->second == 0) continue;
    if (!out.empty()) out += " ";
    out += (md ? std::string(m.md) : std::string(m.outcome) + " ") + std::to_string(it->second);
  }
  return out.empty() ? "-" : out;
}

}  // namespace

std::vector<MatrixLoaderCell> matrix_loader_cells(const LoraModel& model) {
  std::vector<MatrixLoaderCell> cells;
  const loaders::Description d = loaders::describe(model);
  loaders::OutputForms forms(model);
  for (const loaders::Profile& p : loaders::profiles()) {
    MatrixLoaderCell c;
    c.loader = std::string(p.name);
    const loaders::Verdict v = loaders::evaluate(p, d);
    c.input = std::string(loaders::outcome_name(v.outcome));
    c.message = v.message;
    for (const auto& t : v.dropped) c.dropped.push_back(t.tensor);
    if (auto choice = loaders::choose_form(p, forms)) {
      c.form = std::string(style_name(choice->style));
      const report::Refusal r = report::convert_for_refusal(p, model, *choice, forms);
      c.refusal = r.why;
      // What `convert --for` does: writes that form, refuses (no file at all), or cannot say how the
      // loader reads it (unknown, which --allow-unknown writes anyway).
      c.form_outcome = r.kind == report::Refusal::Kind::kRefused   ? "refused"
                       : r.kind == report::Refusal::Kind::kUnknown ? "unknown"
                                                           : std::string(loaders::outcome_name(choice->verdict.outcome));
    } else {
      c.form = c.form_outcome = "-";
    }
    cells.push_back(std::move(c));
  }
  return cells;
}

std::vector<MatrixLoaderCell> matrix_loader_cells(const std::shared_ptr<const st::SafetensorsFile>& file,
                                                const flux::Family* family) {
  LoadOptions lo;
  lo.family = family;
  auto model = load_lora(file, lo);
  if (!model.ok()) return {};
  return matrix_loader_cells(*model);
}

std::string render_loader_summary_markdown(const MatrixResult& m) {
  const LoaderSummary s = summarize(m);
  if (s.rows == 0) return "";
  std::ostringstream o;
  o << "## Which app loads what\n\n";
  o << "Inputs as they are, per dialect: how many variants each loader loads completely (✅), loads with tensors "
       "dropped (⚠️), rejects (⛔), or is not established for (❔). Loader facts: docs/loaders.md.\n\n| dialect |";
  for (const auto& l : s.loaders) o << " " << l << " |";
  o << "\n|---|";
  for (size_t i = 0; i < s.loaders.size(); ++i) o << "---|";
  o << "\n";
  for (const auto& d : s.dialects) {
    o << "| " << d << " |";
    for (const auto& l : s.loaders) {
      auto it = s.input.find({d, l});
      o << " " << (it == s.input.end() ? "-" : counts(it->second, true)) << " |";
    }
    o << "\n";
  }
  o << "| **`convert --for`** |";
  for (const auto& l : s.loaders) {
    auto f = s.form_name.find(l);
    auto c = s.form.find(l);
    o << " " << (f == s.form_name.end() || f->second == "-" ? "no form established" : "`" + f->second + "`: " + counts(c->second, true))
      << " |";
  }
  o << "\n\nThe last row: the output form lora-verify writes for each loader and how its outputs fare over all "
    << s.rows << " variants (⚠️/⛔ there: tensors that loader cannot take in any form it reads; `--drop-unsupported` "
       "leaves them out and reports the lost share of each delta; 🚫: `convert --for` refuses and writes no file, "
       "e.g. for a DoRA magnitude the loader cannot take, which lora-verify never drops).\n\n";
  return o.str();
}

std::string render_loader_grid_markdown(const MatrixResult& m) {
  const LoaderSummary s = summarize(m);
  if (s.rows == 0) return "";
  std::ostringstream o;
  o << "\n## Loaders per variant\n\nEach cell: the input as it is → the form `convert --for LOADER` writes and "
       "how it loads.\n\n| variant |";
  for (const auto& l : s.loaders) o << " " << l << " |";
  o << "\n|---|";
  for (size_t i = 0; i < s.loaders.size(); ++i) o << ":-:|";
  o << "\n";
  for (const auto& r : m.rows) {
    if (r.loaders.empty()) continue;
    o << "| " << r.variant << " |";
    for (const auto& c : r.loaders)
      o << " " << md_outcome(c.input) << " → " << (c.form == "-" ? "-" : c.form + " " + md_outcome(c.form_outcome)) << " |";
    o << "\n";
  }
  return o.str();
}

std::string render_loader_summary_html(const MatrixResult& m) {
  const LoaderSummary s = summarize(m);
  if (s.rows == 0) return "";
  std::ostringstream o;
  o << "<h2>Which app loads what</h2>\n<p>Inputs as they are, per dialect: variants each loader loads completely, "
       "loads with tensors dropped, rejects, or is not established for. The last row: the form "
       "<code>convert --for</code> writes for each loader and how its outputs fare.</p>\n";
  o << "<table><thead><tr><th>dialect</th>";
  for (const auto& l : s.loaders) o << "<th>" << esc_html(l) << "</th>";
  o << "</tr></thead><tbody>\n";
  for (const auto& d : s.dialects) {
    o << "<tr><td>" << esc_html(d) << "</td>";
    for (const auto& l : s.loaders) {
      auto it = s.input.find({d, l});
      const bool all_load = it != s.input.end() && it->second.size() == 1 && it->second.count("loads");
      o << "<td class=\"c " << (all_load ? "eq" : it == s.input.end() ? "na" : "rf") << "\">"
        << esc_html(it == s.input.end() ? "-" : counts(it->second, false)) << "</td>";
    }
    o << "</tr>\n";
  }
  o << "<tr><td><strong>convert --for</strong></td>";
  for (const auto& l : s.loaders) {
    auto f = s.form_name.find(l);
    auto c = s.form.find(l);
    const bool none = f == s.form_name.end() || f->second == "-";
    const bool all_load = !none && c->second.size() == 1 && c->second.count("loads");
    o << "<td class=\"c " << (none ? "na" : all_load ? "eq" : "rf") << "\">"
      << esc_html(none ? "no form established" : f->second + ": " + counts(c->second, false)) << "</td>";
  }
  o << "</tr>\n</tbody></table>\n";
  return o.str();
}

nlohmann::ordered_json loader_cells_json(const std::vector<MatrixLoaderCell>& cells) {
  nlohmann::ordered_json a = nlohmann::ordered_json::array();
  for (const auto& c : cells)
    a.push_back({{"loader", c.loader}, {"input", c.input}, {"form", c.form}, {"form_outcome", c.form_outcome}});
  return a;
}

nlohmann::ordered_json loader_summary_json(const MatrixResult& m) {
  const LoaderSummary s = summarize(m);
  nlohmann::ordered_json a = nlohmann::ordered_json::array();
  for (const auto& d : s.dialects)
    for (const auto& l : s.loaders) {
      auto it = s.input.find({d, l});
      if (it == s.input.end()) continue;
      nlohmann::ordered_json c = nlohmann::ordered_json::object();
      for (const LoaderMark& m : kOutcomes)
        if (it->second.count(m.outcome)) c[m.outcome] = it->second.at(m.outcome);
      a.push_back({{"dialect", d}, {"loader", l}, {"input", std::move(c)}});
    }
  return a;
}

bool read_loader_cells(const nlohmann::json& row, std::vector<MatrixLoaderCell>& out, std::string& why) {
  auto it = row.find("loaders");
  if (it == row.end()) return true;
  if (!it->is_array()) {
    why = "\"loaders\" is not an array";
    return false;
  }
  for (const auto& c : *it) {
    auto get = [&](const char* k) -> std::optional<std::string> {
      if (!c.is_object()) return std::nullopt;
      auto f = c.find(k);
      if (f == c.end() || !f->is_string()) return std::nullopt;
      return f->get<std::string>();
    };
    auto loader = get("loader"), input = get("input"), form = get("form"), fo = get("form_outcome");
    if (!loader || !input || !form || !fo) {
      why = "a loader cell lacks loader, input, form or form_outcome";
      return false;
    }
    out.push_back({*loader, *input, *form, *fo, "", {}, ""});
  }
  return true;
}

}  // namespace lv::matrix
