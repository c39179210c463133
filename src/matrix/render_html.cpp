// The matrix as a self-contained HTML page (see render.h): the sections of view_of(), formatted.
#include <sstream>

#include "matrix/loader_cells.h"
#include "matrix/render.h"
#include "matrix/render_common.h"

namespace lv::matrix {
namespace {

void head(std::ostream& o) {
  o << "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
       "<title>FLUX.1 LoRA compatibility matrix</title>\n<style>\n"
       "body{font-family:system-ui,sans-serif;margin:2em;color:#222}\n"
       "table{border-collapse:collapse;font-size:13px;margin:1em 0}\n"
       "th,td{border:1px solid #ccc;padding:3px 7px;text-align:left}\n"
       "th{background:#f0f0f0;position:sticky;top:0}\n"
       "td.c{text-align:center;min-width:4em}\n"
       "td.n{text-align:right;font-variant-numeric:tabular-nums}\n"
       ".eq{background:#bfe9bf}.ne{background:#f4a7a7;font-weight:bold}.rf{background:#f7dc8f}.na{background:#eee;color:#888}\n"
       ".chg{outline:3px solid #1f5fd6;outline-offset:-3px}.reg{outline:3px solid #b00020;outline-offset:-3px}\n"
       "tr.bad td:first-child{font-weight:bold}\n"
       ".key span{display:inline-block;padding:2px 8px;margin-right:6px;border:1px solid #ccc}\n"
       "</style></head><body>\n";
}

void header(std::ostream& o, const MatrixResult& m, const MatrixView& v) {
  o << "<h1>FLUX.1 LoRA compatibility matrix</h1>\n";
  o << "<p><strong>" << esc_html(v.summary) << ".</strong> lora-verify " << LV_VERSION << ".</p>\n";
  if (v.baseline) {
    o << "<p><strong>" << esc_html(*v.baseline) << ".</strong></p>\n";
    if (!m.baseline_notes.empty()) {
      o << "<ul>\n";
      for (const auto& n : m.baseline_notes) o << "<li>" << esc_html(n) << "</li>\n";
      o << "</ul>\n";
    }
  }
  if (m.shard_count > 1)
    o << "<p>Shard " << m.shard_index << "/" << m.shard_count << " of a run of " << m.total_rows << " rows.</p>\n";
  if (!m.description.empty()) o << "<p>" << esc_html(m.description) << "</p>\n";
}

void converters(std::ostream& o, const MatrixView& v) {
  if (v.converters.empty()) return;
  o << "<h2>Converters</h2>\n<p>Each converter ran on every variant in a fresh temporary directory; its output was "
       "compared with the source exactly as <code>lora-verify compare</code> does.</p>\n<table><thead><tr><th>converter</th>";
  for (const OutcomeInfo& i : outcome_table()) o << "<th>" << i.name << "</th>";
  o << "</tr></thead><tbody>\n";
  for (const auto& c : v.converters) {
    o << "<tr><td>" << esc_html(c.column) << "</td>";
    for (int64_t n : c.counts) o << "<td class=\"n\">" << n << "</td>";
    o << "</tr>\n";
  }
  o << "</tbody></table>\n";
}

// "failed, timed out, no output and unreadable output".
std::string converter_outcomes() {
  std::vector<std::string_view> own;
  for (const OutcomeInfo& i : outcome_table())
    if (i.converter_only) own.push_back(i.name);
  std::string s;
  for (size_t k = 0; k < own.size(); ++k) s += std::string(k == 0 ? "" : k + 1 == own.size() ? " and " : ", ") + std::string(own[k]);
  return s;
}

void conversions_intro(std::ostream& o, const MatrixView& v) {
  o << "<h2>Conversions</h2>\n";
  o << "<p>Columns: kohya, comfy, peft, bfl = converted to the BFL layout in that key style; diffusers = converted to the "
       "diffusers layout; round-trip = to the other layout and back, compared with the source.</p>\n";
  if (!v.style_columns_only)
    o << "<p>Any column other than kohya, comfy, peft, bfl, diffusers and round-trip is a converter "
         "(<code>--converter</code>): " << converter_outcomes() << " are its own outcomes. Its output "
         "for each cell that is not equivalent is in <code>logs/CONVERTER/VARIANT.log</code> beside this file.</p>\n";
  o << "<p class=\"key\">";
  for (const OutcomeInfo* i : legend_outcomes(false))
    o << "<span class=\"" << i->html_class << "\">"
      << (i->html_mark == i->name ? std::string(i->name) : std::string(i->html_mark) + " " + std::string(i->name)) << "</span>";
  o << "<span class=\"reg\">regression</span><span class=\"chg\">changed</span>"
       " — a number points to the note below; hover a cell for details.</p>\n";
}

void table_head(std::ostream& o, const MatrixResult& m, bool timings) {
  o << "<table><thead><tr><th>variant</th><th>dialect</th><th>ranks</th><th>zero-filled</th>";
  for (const auto& c : m.columns) o << "<th>" << esc_html(c) << "</th>";
  o << "<th>worst rel. error</th>" << (timings ? "<th>time</th>" : "") << "</tr></thead><tbody>\n";
}

void table_cell(std::ostream& o, const CellView& cv) {
  const MatrixCell& c = *cv.cell;
  const OutcomeInfo& i = info(c.outcome);
  o << "<td class=\"c " << i.html_class << (!c.was ? "" : c.regression ? " reg" : " chg") << "\" title=\""
    << esc_html(c.column + ": " + std::string(i.name) + (cv.note.empty() ? "" : " — " + cv.note)) << "\">" << i.html_mark;
  if (cv.number) o << "<sup>" << cv.number << "</sup>";
  o << "</td>";
}

void table_row(std::ostream& o, const RowView& rv, bool timings) {
  const MatrixRow& r = *rv.row;
  o << "<tr" << (r.equivalent() ? "" : " class=\"bad\"") << "><td>" << esc_html(r.variant) << "</td><td>" << esc_html(r.dialect)
    << "</td><td>" << esc_html(r.ranks) << "</td><td class=\"n\">" << r.zero_filled << "</td>";
  for (const CellView& c : rv.cells) table_cell(o, c);
  o << "<td class=\"n\">" << fmt_error(r.worst_error) << "</td>";
  if (timings) o << "<td class=\"n\">" << fmt_seconds(r.seconds) << "</td>";
  o << "</tr>\n";
}

void conversions(std::ostream& o, const MatrixResult& m, const MatrixView& v, bool timings) {
  conversions_intro(o, v);
  table_head(o, m, timings);
  for (const RowView& rv : v.rows) table_row(o, rv, timings);
  o << "</tbody></table>\n";
  if (!v.notes.empty()) {
    o << "<h2>Notes</h2>\n<ol>\n";
    for (const auto& n : v.notes) o << "<li>" << esc_html(n) << "</li>\n";
    o << "</ol>\n";
  }
}

void structures(std::ostream& o, const StructureGrid& g) {
  o << "<h2>Structures per dialect</h2>\n<p>Not every structure exists in every dialect; n/a cells are not generated.</p>\n";
  o << "<table><thead><tr><th>dialect</th>";
  for (const auto& s : g.structures) o << "<th>" << esc_html(s.name) << "</th>";
  o << "</tr></thead><tbody>\n";
  for (const auto& d : g.dialects) {
    o << "<tr><td>" << esc_html(d) << "</td>";
    for (const auto& s : g.structures) {
      auto it = g.why_not.find({d, s.name});
      if (it == g.why_not.end()) o << "<td class=\"c eq\">✓</td>";
      else o << "<td class=\"c na\" title=\"" << esc_html(it->second) << "\">n/a</td>";
    }
    o << "</tr>\n";
  }
  o << "</tbody></table>\n<dl>\n";
  for (const auto& s : g.structures) o << "<dt><strong>" << esc_html(s.name) << "</strong></dt><dd>" << esc_html(s.what) << "</dd>\n";
  o << "</dl>\n";
}

}  // namespace

std::string render_matrix_html(const MatrixResult& m, bool timings) {
  const MatrixView v = view_of(m);
  std::ostringstream o;
  head(o);
  header(o, m, v);
  o << render_loader_summary_html(m);
  converters(o, v);
  conversions(o, m, v, timings);
  if (v.grid) structures(o, *v.grid);
  o << "</body></html>\n";
  return o.str();
}

}  // namespace lv::matrix
