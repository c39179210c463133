// compatibility.json (see io.h).
#include "matrix/io.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <set>

#include <nlohmann/json.hpp>

#include "matrix/loader_cells.h"
#include "matrix/render_common.h"
#include "matrix/variants.h"

namespace lv::matrix {
namespace {

const char* const kSchema = "lora-verify.matrix/1";

using OJ = nlohmann::ordered_json;
using J = nlohmann::json;

// Rounded to 3 significant digits so committed reports do not churn on last-bit noise.
double rounded(double e) {
  if (!std::isfinite(e) || e == 0) return e;
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2e", e);
  return std::strtod(buf, nullptr);
}

OJ cell_json(const MatrixCell& c) {
  OJ cell = {{"column", c.column}, {"outcome", std::string(outcome_name(c.outcome))}, {"reason", c.reason}, {"worst_error", rounded(c.worst_error)}};
  if (!c.log.empty()) cell["log"] = c.log;
  if (c.was) {
    cell["baseline"] = std::string(outcome_name(*c.was));
    cell["regression"] = c.regression;
  }
  return cell;
}

OJ row_json(const MatrixRow& r, bool timings) {
  OJ row;
  row["variant"] = r.variant;
  row["source"] = r.builtin ? "builtin" : "input";
  row["dialect"] = r.dialect;
  row["ranks"] = r.ranks;
  row["zero_filled"] = r.zero_filled;
  row["worst_error"] = rounded(r.worst_error);
  if (timings) row["seconds"] = std::round(r.seconds * 1000) / 1000;
  OJ cells = OJ::array();
  for (const auto& c : r.cells) cells.push_back(cell_json(c));
  row["cells"] = std::move(cells);
  if (!r.loaders.empty()) row["loaders"] = loader_cells_json(r.loaders);
  return row;
}

// ---- reading ------------------------------------------------------------------------------

std::optional<std::string> str(const J& o, const char* k) {
  auto it = o.find(k);
  if (it == o.end() || !it->is_string()) return std::nullopt;
  return it->get<std::string>();
}

double num(const J& o, const char* k) {
  auto it = o.find(k);
  return it != o.end() && it->is_number() ? it->get<double>() : 0.0;
}

std::optional<int64_t> integer(const J& o, const char* k, int64_t lo, int64_t hi) {
  auto it = o.find(k);
  if (it == o.end() || !it->is_number_integer()) return std::nullopt;
  int64_t v = it->is_number_unsigned() ? (it->get<uint64_t>() > static_cast<uint64_t>(hi) ? hi + 1 : static_cast<int64_t>(it->get<uint64_t>()))
                                       : it->get<int64_t>();
  if (v < lo || v > hi) return std::nullopt;
  return v;
}

// Each reader returns why the part is malformed, or nothing.
using Why = std::optional<std::string>;

Why read_shard(const J& j, MatrixResult& m) {
  auto sh = j.find("shard");
  if (sh == j.end()) return std::nullopt;
  if (!sh->is_object()) return "\"shard\" is not an object";
  auto count = integer(*sh, "count", 1, 1 << 20);
  auto index = count ? integer(*sh, "index", 0, *count - 1) : std::nullopt;
  auto total = integer(*sh, "total_rows", 0, INT64_MAX);
  if (!count || !index || !total) return "\"shard\" needs index < count and total_rows";
  m.shard_count = static_cast<int>(*count);
  m.shard_index = static_cast<int>(*index);
  m.total_rows = *total;
  m.run_fingerprint = str(*sh, "run").value_or("");
  return std::nullopt;
}

Why read_cell(const J& c, std::vector<MatrixCell>& out) {
  if (!c.is_object()) return "a cell is not an object";
  auto column = str(c, "column");
  auto outcome = str(c, "outcome");
  if (!column || !outcome) return "a cell lacks \"column\" or \"outcome\"";
  auto o = outcome_named(*outcome);
  if (!o) return "cell " + *column + " has the unknown outcome '" + *outcome + "'";
  MatrixCell cell;
  cell.column = *column;
  cell.outcome = *o;
  cell.reason = str(c, "reason").value_or("");
  cell.worst_error = num(c, "worst_error");
  cell.log = str(c, "log").value_or("");
  out.push_back(std::move(cell));
  return std::nullopt;
}

Why read_row(const J& r, const std::set<std::string>& builtin_names, MatrixResult& m) {
  const std::string where = "row " + std::to_string(m.rows.size());
  if (!r.is_object()) return where + " is not an object";
  auto variant = str(r, "variant");
  auto cells = r.find("cells");
  if (!variant || cells == r.end() || !cells->is_array()) return where + " lacks \"variant\" or \"cells\"";
  MatrixRow row;
  row.variant = *variant;
  auto source = str(r, "source");
  row.builtin = source ? *source == "builtin" : builtin_names.count(*variant) > 0;
  row.dialect = str(r, "dialect").value_or("-");
  row.ranks = str(r, "ranks").value_or("-");
  row.zero_filled = integer(r, "zero_filled", 0, INT64_MAX).value_or(0);
  row.worst_error = num(r, "worst_error");
  row.seconds = num(r, "seconds");
  for (const auto& c : *cells)
    if (auto why = read_cell(c, row.cells)) return where + " (" + *variant + "): " + *why;
  std::string why;
  if (!read_loader_cells(r, row.loaders, why)) return where + " (" + *variant + "): " + why;
  m.rows.push_back(std::move(row));
  return std::nullopt;
}

Why read_matrix(const J& j, MatrixResult& m) {
  if (!j.is_object()) return "the top level is not an object";
  if (str(j, "schema") != kSchema) return std::string("schema is not ") + kSchema;
  auto cols = j.find("columns");
  auto rows = j.find("rows");
  if (cols == j.end() || !cols->is_array()) return "\"columns\" is missing or not an array";
  if (rows == j.end() || !rows->is_array()) return "\"rows\" is missing or not an array";
  m.description = str(j, "description").value_or("");
  for (const auto& c : *cols) {
    if (!c.is_string()) return "a column name is not a string";
    m.columns.push_back(c.get<std::string>());
  }
  if (auto why = read_shard(j, m)) return why;
  const auto names = builtin_variant_names();
  const std::set<std::string> builtin_names(names.begin(), names.end());
  for (const auto& r : *rows)
    if (auto why = read_row(r, builtin_names, m)) return why;
  if (m.shard_count == 1) m.total_rows = static_cast<int64_t>(m.rows.size());
  return std::nullopt;
}

}  // namespace

std::string render_matrix_json(const MatrixResult& m, bool timings) {
  OJ j;
  j["schema"] = kSchema;
  j["tool_version"] = LV_VERSION;
  j["description"] = m.description;
  j["summary"] = {{"rows", m.rows.size()}, {"equivalent", m.equivalent_rows()}, {"line", summary_line(m)}};
  if (m.shard_count > 1)
    j["shard"] = {{"index", m.shard_index}, {"count", m.shard_count}, {"total_rows", m.total_rows}, {"run", m.run_fingerprint}};
  if (m.has_baseline)
    j["baseline"] = {{"regressions", m.regressions}, {"fixes", m.fixes}, {"changes", m.changes}, {"notes", m.baseline_notes}};
  j["columns"] = m.columns;
  OJ rows = OJ::array();
  for (const auto& r : m.rows) rows.push_back(row_json(r, timings));
  j["rows"] = std::move(rows);
  j["loader_summary"] = loader_summary_json(m);
  if (!m.description.empty()) {
    OJ na = OJ::array();
    for (const auto& a : builtin_applicability())
      if (!a.applies) na.push_back({{"dialect", a.dialect}, {"structure", a.structure}, {"why", a.why_not}});
    j["not_applicable"] = std::move(na);
  }
  return j.dump(1, ' ', false, OJ::error_handler_t::replace) + "\n";
}

Result<MatrixResult> read_matrix_json(const std::string& text, const std::string& name) {
  J j = J::parse(text, nullptr, /*allow_exceptions=*/false);
  MatrixResult m;
  Why why = j.is_discarded() ? Why("invalid JSON") : read_matrix(j, m);
  if (why) return make_error(ErrorCode::kBadInput, name + ": not a compatibility.json: " + *why);
  return m;
}

}  // namespace lv::matrix
