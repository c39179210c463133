// Compatibility matrix: generated variants and given files through every output style.
#include "report/matrix.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "lora/generate.h"
#include "report/pipeline.h"
#include "safetensors/writer.h"

namespace lv::report {
namespace {

const std::vector<std::string> kColumns = {"kohya", "comfy", "peft", "bfl", "diffusers", "round-trip"};

struct Variant {
  std::string name;
  GenSpec spec;
};

// Variants use FLUX.1-dev shapes at rank 2, with the embedders, one double block and one
// single block, so the whole grid runs in seconds.
GenSpec base_spec(const std::string& dialect, st::DType dtype) {
  GenSpec s;
  s.dialect = dialect;
  s.rank = 2;
  s.dtype = dtype;
  s.max_double = 1;
  s.max_single = 1;
  s.seed = 7;
  return s;
}

std::vector<Variant> builtin_variants() {
  struct Structure {
    const char* name;
    void (*apply)(GenSpec&);
    bool diffusers_only;  // needs diffusers-named parts
    bool needs_alpha;     // the dialect must carry .alpha tensors
    bool diffusers_metadata;
  };
  static const Structure kStructures[] = {
      {"complete", [](GenSpec&) {}, false, false, false},
      {"no-proj-mlp", [](GenSpec& s) { s.proj_mlp = false; }, true, false, false},
      {"only-proj-mlp", [](GenSpec& s) { s.skip = {"attn.to_q", "attn.to_k", "attn.to_v"}; }, true, false, false},
      {"missing-q", [](GenSpec& s) { s.skip = {"attn.to_q", "attn.add_q_proj"}; }, true, false, false},
      {"missing-k", [](GenSpec& s) { s.skip = {"attn.to_k", "attn.add_k_proj"}; }, true, false, false},
      {"missing-v", [](GenSpec& s) { s.skip = {"attn.to_v", "attn.add_v_proj"}; }, true, false, false},
      {"blocks-absent", [](GenSpec& s) { s.max_single = 0; }, false, false, false},
      {"mixed-ranks", [](GenSpec& s) { s.mixed_ranks = true; }, false, false, false},
      {"per-part-alpha", [](GenSpec& s) { s.alpha = 3; s.per_part_alpha = true; }, false, true, false},
      {"metadata-alpha", [](GenSpec& s) { s.metadata_alpha = true; }, true, false, true},
      {"rslora", [](GenSpec& s) { s.metadata_alpha = true; s.rslora = true; }, true, false, true},
      {"no-norm-out", [](GenSpec& s) { s.norm_out = false; }, false, false, false},
      {"bias", [](GenSpec& s) { s.bias = true; s.alpha = 2; }, false, true, false},
      {"embedders-only", [](GenSpec& s) { s.blocks = false; }, false, false, false},
      {"text-encoder", [](GenSpec& s) { s.text_encoder = true; }, false, false, false},
  };
  struct Dialect {
    const char* name;
    bool diffusers_named, has_alpha, has_metadata, has_embedders;
  };
  static const Dialect kDialects[] = {
      {"diffusers", true, true, true, true},   {"diffusers-old", true, false, false, true},
      {"fal", true, true, false, true},        {"onetrainer", true, true, false, true},
      {"kohya", false, true, false, true},     {"comfy", false, true, false, true},
      {"ai-toolkit", false, true, false, true}, {"bfl", false, true, false, true},
      {"onetrainer-bfl", false, true, false, true}, {"xlabs", false, false, false, false},
  };
  std::vector<Variant> out;
  for (const auto& d : kDialects)
    for (const auto& s : kStructures) {
      if (s.diffusers_only && !d.diffusers_named) continue;
      if (s.needs_alpha && !d.has_alpha) continue;
      if (s.diffusers_metadata && !d.has_metadata) continue;
      if (!d.has_embedders && (std::string(s.name) == "embedders-only" || std::string(s.name) == "no-norm-out")) continue;
      for (st::DType dt : {st::DType::kF32, st::DType::kF16, st::DType::kBF16}) {
        Variant v{std::string(d.name) + " / " + s.name + " / " + std::string(st::dtype_name(dt)), base_spec(d.name, dt)};
        s.apply(v.spec);
        out.push_back(std::move(v));
      }
    }
  return out;
}

MatrixCell cell_from(const std::string& column, const Result<Report>& r) {
  MatrixCell c;
  c.column = column;
  if (!r.ok()) {
    c.outcome = "refused";
    c.reason = r.error().message;
    return c;
  }
  c.outcome = r->pass ? "equivalent" : "not equivalent";
  if (!r->pass) c.reason = r->verdict;
  c.worst_error = r->summary.worst_relative_error;
  return c;
}

// Converts twice (to the other layout and back) and compares with the source.
Result<Report> round_trip(std::shared_ptr<const st::SafetensorsFile> src) {
  LV_TRY_ASSIGN(in, load_lora(src));
  PipelineOptions po;
  ConvertOptions there = resolve_convert_options(in, po);
  LV_TRY_ASSIGN(c1, convert(in, there));
  LV_TRY_ASSIGN(b1, st::serialize(tensors_to_write(c1), c1.metadata));
  LV_TRY_ASSIGN(f1, st::SafetensorsFile::from_bytes(std::move(b1), "(first conversion)"));
  LoadOptions lo;
  lo.layout = in.layout;
  lo.allow_empty = true;
  LV_TRY_ASSIGN(mid, load_lora(std::make_shared<const st::SafetensorsFile>(std::move(f1)), lo));
  ConvertOptions back;
  back.to = there.to == OutputLayout::kBfl ? OutputLayout::kDiffusers : OutputLayout::kBfl;
  back.style = back.to == OutputLayout::kBfl ? Style::kKohya : Style::kDiffusers;
  LV_TRY_ASSIGN(c2, convert(mid, back));
  LV_TRY_ASSIGN(b2, st::serialize(tensors_to_write(c2), c2.metadata));
  LV_TRY_ASSIGN(f2, st::SafetensorsFile::from_bytes(std::move(b2), "(round trip)"));
  PipelineOptions cmp;
  cmp.threads = 1;
  return run_compare(src, std::make_shared<const st::SafetensorsFile>(std::move(f2)), cmp);
}

MatrixRow run_row(const std::string& name, std::shared_ptr<const st::SafetensorsFile> file) {
  MatrixRow row;
  row.variant = name;
  const auto start = std::chrono::steady_clock::now();
  struct Col {
    const char* name;
    OutputLayout to;
    Style style;
  };
  static const Col kCols[] = {{"kohya", OutputLayout::kBfl, Style::kKohya},
                              {"comfy", OutputLayout::kBfl, Style::kComfy},
                              {"peft", OutputLayout::kBfl, Style::kPeft},
                              {"bfl", OutputLayout::kBfl, Style::kBfl},
                              {"diffusers", OutputLayout::kDiffusers, Style::kDiffusers}};
  for (const Col& col : kCols) {
    PipelineOptions o;
    o.to = col.to;
    o.style = col.style;
    o.threads = 1;
    auto r = run_verify(file, o);
    if (r.ok() && row.dialect.empty()) {
      row.dialect = r->dialect;
      row.ranks = r->summary.parts ? std::to_string(r->summary.rank_min) + ".." + std::to_string(r->summary.rank_max) : "-";
      if (col.to == OutputLayout::kBfl) row.zero_filled = r->summary.zero_filled;
    }
    row.cells.push_back(cell_from(col.name, r));
  }
  row.cells.push_back(cell_from("round-trip", round_trip(file)));
  if (row.dialect.empty()) row.dialect = "-";
  if (row.ranks.empty()) row.ranks = "-";
  for (const auto& c : row.cells) row.worst_error = std::max(row.worst_error, c.worst_error);
  row.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return row;
}

std::string fmt_error(double e) {
  if (std::isinf(e)) return "inf";
  if (e == 0) return "0";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1e", e);
  return buf;
}

// Rounded to 3 significant digits so committed reports do not churn on last-bit noise.
double rounded(double e) {
  if (!std::isfinite(e) || e == 0) return e;
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2e", e);
  return std::strtod(buf, nullptr);
}

std::string summary_line(const Matrix& m) {
  return std::to_string(m.equivalent_rows()) + " of " + std::to_string(m.rows.size()) +
         " variants equivalent in every output style and the round trip";
}

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

std::string md_cell(std::string s) {
  std::string o;
  for (char c : s) o += c == '|' ? std::string("\\|") : (c == '\n' ? std::string(" ") : std::string(1, c));
  return o;
}

const char* mark(const std::string& outcome) {
  if (outcome == "equivalent") return "✅";
  if (outcome == "not equivalent") return "❌";
  if (outcome == "refused") return "⛔";
  return "–";
}

}  // namespace

bool MatrixRow::equivalent() const {
  return std::all_of(cells.begin(), cells.end(), [](const MatrixCell& c) { return c.outcome == "equivalent" || c.outcome == "n/a"; });
}

int64_t Matrix::equivalent_rows() const {
  return std::count_if(rows.begin(), rows.end(), [](const MatrixRow& r) { return r.equivalent(); });
}

std::vector<std::string> builtin_variant_names() {
  std::vector<std::string> n;
  for (const auto& v : builtin_variants()) n.push_back(v.name);
  return n;
}

Result<Matrix> run_matrix(const MatrixOptions& opt) {
  if (opt.shard_count < 1 || opt.shard_index < 0 || opt.shard_index >= opt.shard_count)
    return make_error(ErrorCode::kUsage, "--shard must be i/n with 0 <= i < n");
  // The work list: built-in variants, then every .safetensors file of the inputs (sorted).
  struct Job {
    std::string name;
    const GenSpec* spec = nullptr;
    std::string path;
  };
  static const std::vector<Variant> variants = builtin_variants();
  std::vector<Job> all;
  if (opt.builtin)
    for (const auto& v : variants)
      if (opt.filter.empty() || v.name.find(opt.filter) != std::string::npos) all.push_back({v.name, &v.spec, ""});
  for (const auto& in : opt.inputs) {
    std::error_code ec;
    if (std::filesystem::is_directory(in, ec)) {
      std::vector<std::string> files;
      for (const auto& e : std::filesystem::recursive_directory_iterator(in, ec))
        if (e.is_regular_file() && e.path().extension() == ".safetensors") files.push_back(e.path().string());
      std::sort(files.begin(), files.end());
      for (auto& f : files) all.push_back({f, nullptr, f});
    } else if (std::filesystem::exists(in, ec)) {
      all.push_back({in, nullptr, in});
    } else {
      return make_error(ErrorCode::kCannotOpen, in + ": no such file or directory");
    }
  }
  std::vector<Job> jobs;
  for (size_t i = 0; i < all.size(); ++i)
    if (static_cast<int>(i % static_cast<size_t>(opt.shard_count)) == opt.shard_index) jobs.push_back(all[i]);

  Matrix m;
  m.columns = kColumns;
  m.description = "Built-in variants: FLUX.1-dev shapes at rank 2 (mixed ranks 1..4), the embedders, "
                  "double block 0 and single block 0, seeded; each converted in memory to every output style, "
                  "re-read and verified, and converted to the other layout and back.";
  m.rows.resize(jobs.size());
  std::atomic<size_t> next{0}, done{0};
  std::mutex progress_mutex;
  const bool progress = opt.progress && isatty(2);
  auto worker = [&] {
    for (size_t i; (i = next.fetch_add(1)) < jobs.size();) {
      const Job& j = jobs[i];
      std::shared_ptr<const st::SafetensorsFile> file;
      Error err;
      if (j.spec) {
        auto bytes = generate_lora(*j.spec);
        if (bytes.ok()) {
          auto f = st::SafetensorsFile::from_bytes(std::move(bytes).value(), j.name);
          if (f.ok()) file = std::make_shared<const st::SafetensorsFile>(std::move(f).value());
          else err = f.error();
        } else {
          err = bytes.error();
        }
      } else {
        auto f = st::SafetensorsFile::open(j.path);
        if (f.ok()) file = std::make_shared<const st::SafetensorsFile>(std::move(f).value());
        else err = f.error();
      }
      if (file) {
        m.rows[i] = run_row(j.name, file);
      } else {
        MatrixRow row;
        row.variant = j.name;
        row.dialect = "-";
        row.ranks = "-";
        for (const auto& c : kColumns) row.cells.push_back({c, "refused", err.message, 0});
        m.rows[i] = row;
      }
      size_t d = ++done;
      if (progress) {
        std::lock_guard<std::mutex> lock(progress_mutex);
        std::fprintf(stderr, "\r[%zu/%zu] %-60.60s", d, jobs.size(), j.name.c_str());
        if (d == jobs.size()) std::fprintf(stderr, "\n");
      }
    }
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < std::max(1, opt.jobs); ++t) pool.emplace_back(worker);
  worker();
  for (auto& t : pool) t.join();
  return m;
}

std::string render_matrix_markdown(const Matrix& m, bool timings) {
  std::ostringstream o;
  o << "# FLUX.1 LoRA compatibility matrix (lora-verify " << LV_VERSION << ")\n\n";
  o << "**" << summary_line(m) << ".**\n\n" << m.description << "\n\n";
  o << "✅ equivalent · ❌ not equivalent · ⛔ refused (reason below) · – not applicable\n\n";
  o << "| variant | dialect | ranks | zero-filled |";
  for (const auto& c : m.columns) o << " " << c << " |";
  o << " worst rel. error |" << (timings ? " time |" : "") << "\n|---|---|---|---|";
  for (size_t i = 0; i < m.columns.size(); ++i) o << "---|";
  o << "---|" << (timings ? "---|" : "") << "\n";
  std::vector<std::string> notes;
  for (const auto& r : m.rows) {
    o << "| " << md_cell(r.variant) << " | " << md_cell(r.dialect) << " | " << r.ranks << " | " << r.zero_filled << " |";
    for (const auto& c : r.cells) {
      o << " " << mark(c.outcome);
      if (!c.reason.empty()) {
        notes.push_back(r.variant + ", " + c.column + ": " + c.reason);
        o << "<sup>" << notes.size() << "</sup>";
      }
      o << " |";
    }
    o << " " << fmt_error(r.worst_error) << " |";
    if (timings) {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%.2f s", r.seconds);
      o << " " << buf << " |";
    }
    o << "\n";
  }
  if (!notes.empty()) {
    o << "\n";
    for (size_t i = 0; i < notes.size(); ++i) o << (i + 1) << ". " << md_cell(notes[i]) << "\n";
  }
  return o.str();
}

std::string render_matrix_json(const Matrix& m, bool timings) {
  nlohmann::ordered_json j;
  j["schema"] = "lora-verify.matrix/1";
  j["tool_version"] = LV_VERSION;
  j["description"] = m.description;
  j["summary"] = {{"rows", m.rows.size()}, {"equivalent", m.equivalent_rows()}, {"line", summary_line(m)}};
  j["columns"] = m.columns;
  nlohmann::ordered_json rows = nlohmann::ordered_json::array();
  for (const auto& r : m.rows) {
    nlohmann::ordered_json row;
    row["variant"] = r.variant;
    row["dialect"] = r.dialect;
    row["ranks"] = r.ranks;
    row["zero_filled"] = r.zero_filled;
    row["worst_error"] = rounded(r.worst_error);
    if (timings) row["seconds"] = r.seconds;
    nlohmann::ordered_json cells = nlohmann::ordered_json::array();
    for (const auto& c : r.cells)
      cells.push_back({{"column", c.column}, {"outcome", c.outcome}, {"reason", c.reason}, {"worst_error", rounded(c.worst_error)}});
    row["cells"] = std::move(cells);
    rows.push_back(std::move(row));
  }
  j["rows"] = std::move(rows);
  return j.dump(1, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + "\n";
}

std::string render_matrix_html(const Matrix& m, bool timings) {
  std::ostringstream o;
  o << "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>FLUX.1 LoRA compatibility matrix</title>\n"
       "<style>body{font-family:system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse;font-size:13px}"
       "th,td{border:1px solid #ccc;padding:3px 6px;text-align:left}th{background:#f0f0f0;position:sticky;top:0}"
       ".eq{background:#c8efc8}.ne{background:#f6b3b3}.rf{background:#f9e1a8}.na{background:#eee;color:#888}"
       ".changed{outline:3px solid #1f5fd6}</style></head><body>\n";
  o << "<h1>FLUX.1 LoRA compatibility matrix</h1>\n<p><strong>" << esc_html(summary_line(m)) << ".</strong> lora-verify "
    << LV_VERSION << ".</p>\n<p>" << esc_html(m.description) << "</p>\n";
  o << "<p><span class=\"eq\">&nbsp;equivalent&nbsp;</span> <span class=\"ne\">&nbsp;not equivalent&nbsp;</span> "
       "<span class=\"rf\">&nbsp;refused&nbsp;</span> <span class=\"na\">&nbsp;n/a&nbsp;</span> (hover a cell for details)</p>\n";
  o << "<table><thead><tr><th>variant</th><th>dialect</th><th>ranks</th><th>zero-filled</th>";
  for (const auto& c : m.columns) o << "<th>" << esc_html(c) << "</th>";
  o << "<th>worst rel. error</th>" << (timings ? "<th>time</th>" : "") << "</tr></thead><tbody>\n";
  for (const auto& r : m.rows) {
    o << "<tr><td>" << esc_html(r.variant) << "</td><td>" << esc_html(r.dialect) << "</td><td>" << r.ranks << "</td><td>"
      << r.zero_filled << "</td>";
    for (const auto& c : r.cells) {
      const char* cls = c.outcome == "equivalent" ? "eq" : c.outcome == "not equivalent" ? "ne" : c.outcome == "refused" ? "rf" : "na";
      const bool changed = c.reason.find("was: ") != std::string::npos;
      o << "<td class=\"" << cls << (changed ? " changed" : "") << "\" title=\"" << esc_html(c.reason.empty() ? c.outcome : c.reason)
        << "\">" << esc_html(c.outcome) << "</td>";
    }
    o << "<td>" << fmt_error(r.worst_error) << "</td>";
    if (timings) {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%.2f s", r.seconds);
      o << "<td>" << buf << "</td>";
    }
    o << "</tr>\n";
  }
  o << "</tbody></table>\n</body></html>\n";
  return o.str();
}

Result<Matrix> read_matrix_json(const std::string& text, const std::string& name) {
  auto bad = [&](const std::string& why) { return make_error(ErrorCode::kBadInput, name + ": not a compatibility.json: " + why); };
  auto j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return bad("invalid JSON");
  if (!j.contains("schema") || j["schema"] != "lora-verify.matrix/1") return bad("schema is not lora-verify.matrix/1");
  if (!j.contains("rows") || !j["rows"].is_array() || !j.contains("columns") || !j["columns"].is_array()) return bad("rows or columns missing");
  Matrix m;
  for (const auto& c : j["columns"]) {
    if (!c.is_string()) return bad("a column name is not a string");
    m.columns.push_back(c.get<std::string>());
  }
  if (j.contains("description") && j["description"].is_string()) m.description = j["description"].get<std::string>();
  auto str = [](const nlohmann::json& o, const char* k) { return o.contains(k) && o[k].is_string() ? o[k].get<std::string>() : std::string(); };
  auto num = [](const nlohmann::json& o, const char* k) { return o.contains(k) && o[k].is_number() ? o[k].get<double>() : 0.0; };
  for (const auto& r : j["rows"]) {
    if (!r.is_object() || !r.contains("variant") || !r["variant"].is_string() || !r.contains("cells") || !r["cells"].is_array())
      return bad("a row lacks variant or cells");
    MatrixRow row;
    row.variant = str(r, "variant");
    row.dialect = str(r, "dialect");
    row.ranks = str(r, "ranks");
    row.zero_filled = static_cast<int64_t>(num(r, "zero_filled"));
    row.worst_error = num(r, "worst_error");
    row.seconds = num(r, "seconds");
    for (const auto& c : r["cells"]) {
      if (!c.is_object()) return bad("a cell is not an object");
      row.cells.push_back({str(c, "column"), str(c, "outcome"), str(c, "reason"), num(c, "worst_error")});
    }
    m.rows.push_back(std::move(row));
  }
  return m;
}

Result<Matrix> merge_matrices(const std::vector<Matrix>& shards) {
  if (shards.empty()) return make_error(ErrorCode::kUsage, "nothing to merge");
  Matrix m;
  m.columns = shards[0].columns;
  m.description = shards[0].description;
  std::set<std::string> seen;
  for (const auto& s : shards) {
    if (s.columns != m.columns) return make_error(ErrorCode::kBadInput, "shards have different columns");
    for (const auto& r : s.rows) {
      if (!seen.insert(r.variant).second) return make_error(ErrorCode::kBadInput, "variant '" + r.variant + "' is in two shards");
      m.rows.push_back(r);
    }
  }
  // The order of a single run: built-in variants in their order, then inputs by name.
  const auto names = builtin_variant_names();
  auto rank_of = [&](const std::string& v) {
    auto it = std::find(names.begin(), names.end(), v);
    return it == names.end() ? names.size() : static_cast<size_t>(it - names.begin());
  };
  std::stable_sort(m.rows.begin(), m.rows.end(), [&](const MatrixRow& a, const MatrixRow& b) {
    size_t ra = rank_of(a.variant), rb = rank_of(b.variant);
    return ra != rb ? ra < rb : a.variant < b.variant;
  });
  return m;
}

std::vector<MatrixChange> diff_matrices(const Matrix& baseline, const Matrix& current) {
  std::vector<MatrixChange> out;
  std::map<std::string, const MatrixRow*> now;
  for (const auto& r : current.rows) now[r.variant] = &r;
  for (const auto& old : baseline.rows) {
    auto it = now.find(old.variant);
    for (const auto& oc : old.cells) {
      std::string after = "missing";
      if (it != now.end())
        for (const auto& nc : it->second->cells)
          if (nc.column == oc.column) after = nc.outcome;
      if (after != oc.outcome) out.push_back({old.variant, oc.column, oc.outcome, after, oc.outcome == "equivalent"});
    }
  }
  return out;
}

void mark_changes(Matrix& current, const std::vector<MatrixChange>& changes) {
  for (const auto& ch : changes)
    for (auto& r : current.rows)
      if (r.variant == ch.variant)
        for (auto& c : r.cells)
          if (c.column == ch.column)
            c.reason = (ch.regression ? "REGRESSION, was: " : "changed, was: ") + ch.before + (c.reason.empty() ? "" : "; " + c.reason);
}

}  // namespace lv::report
