// The matrix in Markdown (see render.h): the sections of view_of(), formatted.
#include <sstream>

#include "matrix/loader_cells.h"
#include "matrix/render.h"
#include "matrix/render_common.h"

namespace lv::matrix {
namespace {

void header(std::ostream& o, const MatrixResult& m, const MatrixView& v) {
  o << "# FLUX.1 LoRA compatibility matrix (lora-verify " << LV_VERSION << ")\n\n";
  o << "**" << v.summary << ".**\n\n";
  if (v.baseline) {
    o << "**" << *v.baseline << ".**\n\n";
    for (const auto& n : m.baseline_notes) o << "- " << esc_md(n) << "\n";
    if (!m.baseline_notes.empty()) o << "\n";
  }
  if (m.shard_count > 1)
    o << "Shard " << m.shard_index << "/" << m.shard_count << " of a run of " << m.total_rows
      << " rows (`lora-verify matrix --merge` joins the shards).\n\n";
  if (!m.description.empty()) o << m.description << "\n\n";
}

void converters(std::ostream& o, const MatrixView& v) {
  if (v.converters.empty()) return;
  o << "## Converters\n\nEach converter ran on every variant in a fresh temporary directory; its output was read in "
       "any dialect lora-verify reads and compared with the source exactly as `lora-verify compare` does.\n\n"
       "| converter |";
  for (const OutcomeInfo& i : outcome_table()) o << " " << i.name << " |";
  o << "\n|---|";
  for (size_t i = 0; i < outcome_table().size(); ++i) o << "--:|";
  o << "\n";
  for (const auto& c : v.converters) {
    o << "| " << esc_md(c.column) << " |";
    for (int64_t n : c.counts) o << " " << n << " |";
    o << "\n";
  }
  o << "\n";
}

void legend(std::ostream& o, bool converter_columns) {
  for (const OutcomeInfo* i : legend_outcomes(converter_columns)) o << i->md_mark << " " << i->name << " · ";
  o << "⚠️ changed since the baseline · <sup>n</sup> see note n below the table";
  if (converter_columns)
    o << ". A converter's output for each cell that is not equivalent is in `logs/CONVERTER/VARIANT.log` beside this "
         "file (the JSON names it per cell).";
  o << "\n\n";
}

void conversions_intro(std::ostream& o, const MatrixView& v) {
  o << "## Conversions\n\n";
  o << "Columns: kohya, comfy, peft, bfl = converted to the BFL layout in that key style; diffusers = converted to "
       "the diffusers layout; round-trip = to the other layout and back, compared with the source"
    << (v.style_columns_only ? "" : "; any other column is a converter (`--converter`)") << ".\n\n";
  legend(o, !v.style_columns_only);
}

void table_head(std::ostream& o, const MatrixResult& m, bool timings) {
  o << "| variant | dialect | ranks | zero-filled |";
  for (const auto& c : m.columns) o << " " << esc_md(c) << " |";
  o << " worst rel. error |" << (timings ? " time |" : "") << "\n|---|---|---|--:|";
  for (size_t i = 0; i < m.columns.size(); ++i) o << ":-:|";
  o << "--:|" << (timings ? "--:|" : "") << "\n";
}

void table_row(std::ostream& o, const RowView& rv, bool timings) {
  const MatrixRow& r = *rv.row;
  o << "| " << esc_md(r.variant) << " | " << esc_md(r.dialect) << " | " << esc_md(r.ranks) << " | " << r.zero_filled << " |";
  for (const CellView& c : rv.cells) {
    o << " " << info(c.cell->outcome).md_mark;
    if (c.cell->was) o << "⚠️";
    if (c.number) o << "<sup>" << c.number << "</sup>";
    o << " |";
  }
  o << " " << fmt_error(r.worst_error) << " |";
  if (timings) o << " " << fmt_seconds(r.seconds) << " |";
  o << "\n";
}

void conversions(std::ostream& o, const MatrixResult& m, const MatrixView& v, bool timings) {
  conversions_intro(o, v);
  table_head(o, m, timings);
  for (const RowView& rv : v.rows) table_row(o, rv, timings);
  if (!v.notes.empty()) {
    o << "\nNotes:\n\n";
    for (size_t i = 0; i < v.notes.size(); ++i) o << (i + 1) << ". " << esc_md(v.notes[i]) << "\n";
  }
}

void structures(std::ostream& o, const StructureGrid& g) {
  o << "\n## Structures per dialect\n\n";
  o << "Not every structure exists in every dialect; n/a cells are not generated.\n\n| dialect |";
  for (const auto& s : g.structures) o << " " << s.name << " |";
  o << "\n|---|";
  for (size_t i = 0; i < g.structures.size(); ++i) o << ":-:|";
  o << "\n";
  Notes na;
  for (const auto& d : g.dialects) {
    o << "| " << d << " |";
    for (const auto& s : g.structures) {
      auto it = g.why_not.find({d, s.name});
      if (it == g.why_not.end()) o << " ✓ |";
      else o << " n/a<sup>" << na.number(it->second) << "</sup> |";
    }
    o << "\n";
  }
  o << "\n";
  for (size_t i = 0; i < na.text.size(); ++i) o << (i + 1) << ". n/a: " << esc_md(na.text[i]) << "\n";
  o << "\nStructures:\n\n";
  for (const auto& s : g.structures) o << "- **" << s.name << "**: " << esc_md(s.what) << "\n";
}

}  // namespace

std::string render_matrix_markdown(const MatrixResult& m, bool timings) {
  const MatrixView v = view_of(m);
  std::ostringstream o;
  header(o, m, v);
  o << render_loader_summary_markdown(m);
  converters(o, v);
  conversions(o, m, v, timings);
  o << render_loader_grid_markdown(m);
  if (v.grid) structures(o, *v.grid);
  return o.str();
}

}  // namespace lv::matrix
