// Running the matrix (see run.h): one row per job, the style columns through the pipelines,
// the converter columns through converter_cell, rows spread over a pool of threads.
#include "matrix/run.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

#include "lora/reread.h"
#include "matrix/source.h"
#include "matrix/converter_cell.h"
#include "matrix/grid.h"
#include "matrix/loader_cells.h"
#include "matrix/variants.h"
#include "report/pipeline.h"
#include "safetensors/writer.h"

namespace lv::matrix {
namespace {

using report::PipelineOptions;
using report::Report;
using FileRef = std::shared_ptr<const st::SafetensorsFile>;

// The style columns, one per output style of the style table; the round trip comes last.
struct StyleColumn {
  std::string name;
  OutputLayout to;
  Style style;
};
const std::vector<StyleColumn>& conversions() {
  static const std::vector<StyleColumn> kConversions = [] {
    std::vector<StyleColumn> out;
    for (const StyleRow& r : style_rows()) out.push_back({std::string(style_name(r.style)), style_layout(r.style), r.style});
    return out;
  }();
  return kConversions;
}
const char* const kRoundTrip = "round-trip";
// A row's dialect or ranks when no conversion told them (a std::string: assigning the literal
// makes GCC 12 warn, -Wrestrict, a false positive).
const std::string kUnknown = "-";

MatrixCell cell_from(const std::string& column, const Result<Report>& r) {
  MatrixCell c;
  c.column = column;
  if (!r.ok()) {
    c.outcome = Outcome::kRefused;
    c.reason = r.error().code == ErrorCode::kInternal ? "internal error: " + r.error().message : r.error().message;
    return c;
  }
  c.outcome = r->pass ? Outcome::kEquivalent : Outcome::kNotEquivalent;
  if (!r->pass) c.reason = r->verdict;
  c.worst_error = r->summary.worst_relative_error;
  return c;
}


// Converts to the other layout (default style), then back, and compares with the source.
Result<Report> round_trip(const Source& src) {
  LV_TRY_ASSIGN(in_ptr, src.get());
  const LoraModel& in = *in_ptr;
  ConvertOptions there = report::resolve_convert_options(in, PipelineOptions{});
  LV_TRY_ASSIGN(first_way, convert_and_reread(in, there));
  const LoraModel& mid = first_way.out.model;
  ConvertOptions back;
  back.to = there.to == OutputLayout::kBfl ? OutputLayout::kDiffusers : OutputLayout::kBfl;
  back.style = back.to == OutputLayout::kBfl ? Style::kKohya : Style::kDiffusers;
  LV_TRY_ASSIGN(c2, convert(mid, back));
  LV_TRY_ASSIGN(f2, serialize_and_read(c2, false, "(converted back in memory)"));
  PipelineOptions cmp;
  cmp.threads = 1;
  cmp.family = src.family;
  return report::run_compare(in, f2, cmp);
}

Result<Report> verify_as(const Source& src, OutputLayout to, Style style) {
  LV_TRY_ASSIGN(model, src.get());
  PipelineOptions o;
  o.to = to;
  o.style = style;
  o.threads = 1;  // parallelism is across rows
  o.family = src.family;
  return report::run_verify(*model, o);
}

// The row's dialect and ranks (unless known, or `overwrite`), and its zero-filled parts,
// which exist only on the fused (BFL) side.
void take_facts(MatrixRow& row, const Report& r, bool overwrite, bool fused) {
  if (overwrite || row.dialect.empty()) {
    row.dialect = r.dialect;
    row.ranks = r.summary.rank_max > 0 ? std::to_string(r.summary.rank_min) + ".." + std::to_string(r.summary.rank_max) : "-";
  }
  if (fused) row.zero_filled = std::max(row.zero_filled, r.summary.zero_filled);
}

// The selected conversion columns; true when one of them wrote the BFL layout.
bool add_conversion_cells(MatrixRow& row, const Source& src, const MatrixOptions& opt) {
  bool bfl_run = false;
  for (const StyleColumn& col : conversions()) {
    if (!selected(opt, col.name)) continue;
    const bool fused = col.to == OutputLayout::kBfl;
    bfl_run = bfl_run || fused;
    auto r = verify_as(src, col.to, col.style);
    if (r.ok()) take_facts(row, *r, false, fused);
    row.cells.push_back(cell_from(col.name, r));
  }
  return bfl_run;
}

MatrixRow run_row(const Job& job, const FileRef& file, const MatrixOptions& opt, const ConverterInput& input) {
  MatrixRow row;
  row.variant = job.name;
  row.builtin = job.spec != nullptr;
  const Source src = Source::read(file, job.family);
  const bool bfl_run = add_conversion_cells(row, src, opt);
  if (selected(opt, kRoundTrip)) row.cells.push_back(cell_from(kRoundTrip, round_trip(src)));
  if (row.dialect.empty() || !bfl_run) {
    // No style column told the dialect, ranks and zero-filled parts: one kohya conversion does.
    auto r = verify_as(src, OutputLayout::kBfl, Style::kKohya);
    if (r.ok()) take_facts(row, *r, true, true);
  }
  for (const auto& conv : opt.converters) row.cells.push_back(run_converter_cell(conv, opt.limits, src, input, job.name));
  if (src.model) row.loaders = matrix_loader_cells(*src.model);
  if (row.dialect.empty()) row.dialect = kUnknown;
  if (row.ranks.empty()) row.ranks = kUnknown;
  for (const auto& c : row.cells) row.worst_error = std::max(row.worst_error, c.worst_error);
  return row;
}

MatrixRow unreadable_row(const Job& job, const Error& e, const std::vector<std::string>& columns) {
  MatrixRow row;
  row.variant = job.name;
  row.builtin = job.spec != nullptr;
  row.dialect = kUnknown;
  row.ranks = kUnknown;
  for (const auto& c : columns) {
    MatrixCell cell;
    cell.column = c;
    cell.outcome = Outcome::kRefused;
    cell.reason = e.message;
    row.cells.push_back(std::move(cell));
  }
  return row;
}

// A job's input: the generated bytes of a built-in (kept for converters when there are
// any) or the file, opened; or why it cannot be. Filled in place: `input` points at `copy`.
struct JobInput {
  FileRef file;
  std::optional<Error> err;
  std::vector<uint8_t> copy;
  ConverterInput input;
};

void open_job(const Job& j, bool for_converters, JobInput& out) {
  if (!j.spec) {
    out.input.path = j.path;
    auto f = st::SafetensorsFile::open(j.path);
    if (f.ok()) out.file = std::make_shared<const st::SafetensorsFile>(std::move(f).value());
    else out.err = f.error();
    return;
  }
  auto bytes = generate_lora(*j.spec);
  if (!bytes.ok()) {
    out.err = bytes.error();
    return;
  }
  if (for_converters) {
    out.copy = *bytes;
    out.input.bytes = &out.copy;
  }
  auto f = st::SafetensorsFile::from_bytes(std::move(bytes).value(), j.name);
  if (f.ok()) out.file = std::make_shared<const st::SafetensorsFile>(std::move(f).value());
  else out.err = f.error();
}

MatrixRow run_job(const Job& j, const MatrixOptions& opt, const std::vector<std::string>& columns) {
  const auto start = std::chrono::steady_clock::now();
  JobInput in;
  open_job(j, !opt.converters.empty(), in);
  MatrixRow row = in.file ? run_row(j, in.file, opt, in.input) : unreadable_row(j, *in.err, columns);
  row.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return row;
}

// "[3/14] kohya / complete / BF16" on stderr as rows finish (only on a terminal).
class Progress {
 public:
  Progress(bool wanted, size_t total) : on_(wanted && isatty(2)), total_(total) {}
  void finished(const std::string& name) {
    const size_t d = ++done_;
    if (!on_) return;
    std::lock_guard<std::mutex> lock(mutex_);
    std::fprintf(stderr, "\r\033[K[%zu/%zu] %.70s", d, total_, name.c_str());
    if (d == total_) std::fprintf(stderr, "\n");
    std::fflush(stderr);
  }

 private:
  const bool on_;
  const size_t total_;
  std::atomic<size_t> done_{0};
  std::mutex mutex_;
};

// Calls f(0) … f(n-1), each once, on up to `jobs` threads (this one included).
void parallel_for(size_t n, int jobs, const std::function<void(size_t)>& f) {
  std::atomic<size_t> next{0};
  auto worker = [&] {
    for (size_t i; (i = next.fetch_add(1)) < n;) f(i);
  };
  const size_t threads = std::min<size_t>(static_cast<size_t>(std::max(1, jobs)), std::max<size_t>(1, n));
  std::vector<std::thread> pool;
  for (size_t t = 1; t < threads; ++t) pool.emplace_back(worker);
  worker();
  for (auto& t : pool) t.join();
}

}  // namespace

const std::vector<std::string>& style_columns() {
  static const std::vector<std::string> kColumns = [] {
    std::vector<std::string> c;
    for (const StyleColumn& s : conversions()) c.emplace_back(s.name);
    c.emplace_back(kRoundTrip);
    return c;
  }();
  return kColumns;
}

bool is_style_column(const std::string& column) {
  const auto& c = style_columns();
  return std::find(c.begin(), c.end(), column) != c.end();
}

Result<MatrixResult> run_matrix(const MatrixOptions& opt) {
  LV_TRY_ASSIGN(grid, plan_grid(opt));
  MatrixResult m;
  m.columns = grid.columns;
  if (opt.builtin) m.description = builtin_description();
  m.run_fingerprint = grid.fingerprint;
  m.shard_index = opt.shard_index;
  m.shard_count = opt.shard_count;
  m.total_rows = static_cast<int64_t>(grid.all.size());
  m.rows.resize(grid.mine.size());
  Progress progress(opt.progress, grid.mine.size());
  parallel_for(grid.mine.size(), opt.jobs, [&](size_t i) {
    const Job& j = grid.all[grid.mine[i]];
    m.rows[i] = run_job(j, opt, m.columns);
    progress.finished(j.name);
  });
  return m;
}

}  // namespace lv::matrix
