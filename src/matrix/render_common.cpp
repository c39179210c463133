// The view both renderings of the matrix format (see render_common.h).
#include "matrix/render_common.h"

#include <cmath>
#include <cstdio>

namespace lv::matrix {
namespace {

std::string baseline_line(const MatrixResult& m) {
  auto n = [](int64_t k, const char* one, const char* many) { return std::to_string(k) + " " + (k == 1 ? one : many); };
  return "Against the baseline: " + n(m.regressions, "regression", "regressions") + ", " + n(m.fixes, "fix", "fixes") + ", " +
         n(m.changes, "change", "changes") + " in all";
}

// Per converter column: how many variants had each outcome.
std::vector<ConverterCounts> converter_counts(const MatrixResult& m) {
  std::vector<ConverterCounts> out;
  for (const auto& col : m.columns) {
    if (is_style_column(col)) continue;
    ConverterCounts n{col, std::vector<int64_t>(outcome_table().size(), 0)};
    for (const auto& r : m.rows)
      for (const auto& c : r.cells)
        if (c.column == col) n.counts[static_cast<size_t>(c.outcome)]++;
    out.push_back(std::move(n));
  }
  return out;
}

// A cell's note: its reason, a converter's outcome, and its change against the baseline.
std::string cell_note(const MatrixCell& c) {
  std::string s = c.reason;
  const std::string name(outcome_name(c.outcome));
  if (!is_style_column(c.column) && c.outcome != Outcome::kEquivalent && c.outcome != Outcome::kRefused)
    s = s.rfind(name, 0) == 0 ? s : name + (s.empty() ? "" : ": " + s);
  if (c.was)
    s = std::string(c.regression ? "regression" : "changed") + " (baseline: " + std::string(outcome_name(*c.was)) + ")" +
        (s.empty() ? "" : "; " + s);
  return s;
}

StructureGrid builtin_grid() {
  StructureGrid g;
  g.structures = builtin_structure_legend();
  g.dialects = builtin_dialects();
  for (const auto& a : builtin_applicability())
    if (!a.applies) g.why_not[{a.dialect, a.structure}] = a.why_not;
  return g;
}

}  // namespace

std::string esc_html(const std::string& s) {
  std::string o;
  for (char c : s) {
    switch (c) {
      case '<': o += "&lt;"; break;
      case '>': o += "&gt;"; break;
      case '&': o += "&amp;"; break;
      case '"': o += "&quot;"; break;
      default: o += c;
    }
  }
  return o;
}

std::string esc_md(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '|') o += "\\|";
    else if (c == '\n' || c == '\r') o += ' ';
    else if (c == '<') o += "&lt;";
    else if (c == '>') o += "&gt;";
    else o += c;
  }
  return o;
}

std::string fmt_error(double e) {
  if (std::isinf(e)) return "inf";
  if (std::isnan(e)) return "nan";
  if (e == 0) return "0";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1e", e);
  return buf;
}

std::string fmt_seconds(double s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f s", s);
  return buf;
}

std::string summary_line(const MatrixResult& m) {
  return std::to_string(m.equivalent_rows()) + " of " + std::to_string(m.rows.size()) + " variants equivalent " +
         (m.columns == style_columns() ? "in every output style and the round trip" : "in every column");
}

size_t Notes::number(const std::string& s) {
  auto [it, added] = index.emplace(s, text.size() + 1);
  if (added) text.push_back(s);
  return it->second;
}

MatrixView view_of(const MatrixResult& m) {
  MatrixView v;
  v.summary = summary_line(m);
  if (m.has_baseline) v.baseline = baseline_line(m);
  v.style_columns_only = m.columns == style_columns();
  v.converters = converter_counts(m);
  Notes notes;
  for (const auto& r : m.rows) {
    RowView rv{&r, {}};
    for (const auto& c : r.cells) {
      CellView cv{&c, cell_note(c), 0};
      if (!cv.note.empty()) cv.number = notes.number(cv.note);
      rv.cells.push_back(std::move(cv));
    }
    v.rows.push_back(std::move(rv));
  }
  v.notes = std::move(notes.text);
  if (!m.description.empty()) v.grid = builtin_grid();
  return v;
}

std::vector<const OutcomeInfo*> legend_outcomes(bool converters) {
  std::vector<const OutcomeInfo*> out;
  for (bool own : {false, true})
    for (const OutcomeInfo& i : outcome_table())
      if (i.converter_only == own && (!own || converters)) out.push_back(&i);
  return out;
}

}  // namespace lv::matrix
