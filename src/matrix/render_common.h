// What the Markdown and the HTML renderings of the matrix share: the view both format (the
// summary lines, the converter counts, every cell's note numbered once, the grid of
// structures per dialect), escaping and number formats. Internal to src/matrix/.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "matrix/model.h"
#include "matrix/variants.h"

namespace lv::matrix {

std::string esc_html(const std::string& s);
// Text safe inside a GitHub table cell: no pipes, no line breaks, no raw HTML.
std::string esc_md(const std::string& s);
std::string fmt_error(double e);    // "1.2e-03", "0", "inf", "nan"
std::string fmt_seconds(double s);  // "0.12 s"
// "12 of 14 variants equivalent in every output style and the round trip" (or "in every column").
std::string summary_line(const MatrixResult& m);

// Reasons are numbered once each; the same reason in many cells shares one number.
struct Notes {
  std::vector<std::string> text;
  std::map<std::string, size_t> index;
  size_t number(const std::string& s);
};

struct CellView {
  const MatrixCell* cell = nullptr;
  std::string note;    // "" when the cell has none
  size_t number = 0;   // the note's number (0: no note)
};
struct RowView {
  const MatrixRow* row = nullptr;
  std::vector<CellView> cells;
};
// One converter column: how many variants had each outcome, in outcome_table() order.
struct ConverterCounts {
  std::string column;
  std::vector<int64_t> counts;
};
// Structures in column order with the dialects they apply to.
struct StructureGrid {
  std::vector<StructureLegend> structures;
  std::vector<std::string> dialects;
  std::map<std::pair<std::string, std::string>, std::string> why_not;  // (dialect, structure) → reason
};

struct MatrixView {
  std::string summary;
  std::optional<std::string> baseline;  // "Against the baseline: …", with a baseline
  bool style_columns_only = true;       // no converter column, every style column
  std::vector<ConverterCounts> converters;
  std::vector<RowView> rows;
  std::vector<std::string> notes;
  std::optional<StructureGrid> grid;  // with built-in variants
};
MatrixView view_of(const MatrixResult& m);

// The outcomes a legend names: those of every column, then (with converter columns) the
// converters' own.
std::vector<const OutcomeInfo*> legend_outcomes(bool converters);

}  // namespace lv::matrix
