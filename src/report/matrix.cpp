// Compatibility matrix: generated variants and given files through every output style and
// back, a baseline diff, shard merging, and the Markdown / JSON / HTML renderings.
#include "report/matrix.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "flux/family.h"
#include "lora/generate.h"
#include "report/matrix_converters.h"
#include "report/matrix_loaders.h"
#include "report/pipeline.h"
#include "safetensors/writer.h"

namespace lv::report {
namespace {

// Every variant is small but has real FLUX.1-dev shapes: rank 2 and two blocks of each kind.
constexpr int64_t kRank = 2;
constexpr int64_t kBlocks = 2;
constexpr uint64_t kSeed = 7;
const char* const kSchema = "lora-verify.matrix/1";

const std::vector<std::string> kColumns = {"kohya", "comfy", "peft", "bfl", "diffusers", "round-trip"};

// ---- the grid: dialects and structures are data -------------------------------------------

struct Dialect {
  const char* name;
  bool diffusers_named;  // diffusers module names: q, k, v, proj_mlp are separate modules
  bool split_index;      // BFL names with fused targets split by index (.0 .1 .2 .3)
  bool alpha;            // the dialect spells .alpha tensors
  bool bias;             // the dialect spells bias deltas (lora_B.bias or diff_b)
  bool metadata;         // lora_adapter_metadata (PEFT config in the safetensors header)
  bool top_level;        // covers the embedders and the final layer
};

const Dialect kDialects[] = {
    // name             diffusers split  alpha  bias   meta   top-level
    {"diffusers",       true,     false, true,  true,  true,  true},
    {"diffusers-old",   true,     false, false, false, false, true},
    {"fal",             true,     false, true,  true,  false, true},
    {"onetrainer",      true,     false, true,  true,  false, true},
    {"kohya",           false,    false, true,  true,  false, true},
    {"comfy",           false,    false, true,  true,  false, true},
    {"ai-toolkit",      false,    false, true,  true,  false, true},
    {"bfl",             false,    false, true,  true,  false, true},
    {"onetrainer-bfl",  false,    true,  true,  false, false, true},
    {"xlabs",           false,    false, false, false, false, false},
};

// The top-level modules other than norm_out, in both namings (for "norm-out only").
std::vector<std::string> top_level_except_norm_out(const flux::Layout& layout) {
  std::vector<std::string> out;
  bool single = false;
  for (const auto& t : flux::bfl_targets(layout))
    if (flux::block_index(t.name, single) < 0 && t.name != "final_layer.adaLN_modulation.1") out.push_back(t.name);
  for (const auto& p : flux::diffusers_map(layout))
    if (flux::block_index(p.diffusers, single) < 0 && p.diffusers != "norm_out.linear") out.push_back(p.diffusers);
  return out;
}

// Single-block module names (diffusers) of one attention part, for every generated block.
std::vector<std::string> single_block_parts(std::initializer_list<const char*> parts) {
  std::vector<std::string> out;
  for (int64_t i = 0; i < kBlocks; ++i)
    for (const char* p : parts) out.push_back("single_transformer_blocks." + std::to_string(i) + ".attn." + p);
  return out;
}

struct Structure {
  const char* name;
  const char* what;  // one line for the legend
  std::function<void(GenSpec&)> apply;
  // nullopt: applies to the dialect; otherwise why the cell is n/a.
  std::function<std::optional<std::string>(const Dialect&)> not_applicable;
};

std::optional<std::string> needs_diffusers_parts(const Dialect& d) {
  if (d.diffusers_named) return std::nullopt;
  if (d.split_index) return "the generator splits onetrainer-bfl targets only at proj_mlp (.3), see no-proj-mlp";
  return "q, k, v (and proj_mlp) are one fused module in BFL naming";
}

const std::vector<Structure>& structures() {
  static const std::vector<Structure> kStructures = {
      {"complete", "every module of the generated blocks and all top-level modules (norm_out included)",
       [](GenSpec&) {}, [](const Dialect&) { return std::optional<std::string>(); }},
      {"no-proj-mlp", "single blocks have q, k, v but no proj_mlp (InvokeAI 5.1.1 crash); its rows are zero-filled",
       [](GenSpec& s) { s.proj_mlp = false; },
       [](const Dialect& d) -> std::optional<std::string> {
         if (d.diffusers_named || d.split_index) return std::nullopt;
         if (!d.top_level) return "xlabs single blocks never carry the proj_mlp rows (every xlabs variant lacks them)";
         return "linear1 is one fused module in BFL naming";
       }},
      {"only-proj-mlp", "single blocks have proj_mlp but no q, k, v", [](GenSpec& s) { s.skip = single_block_parts({"to_q", "to_k", "to_v"}); },
       needs_diffusers_parts},
      {"missing-q", "q absent from every fused attention target (image, text and single-block)",
       [](GenSpec& s) { s.skip = {"attn.to_q", "attn.add_q_proj"}; }, needs_diffusers_parts},
      {"missing-k", "k absent from every fused attention target (the \"q, v but no k\" case)",
       [](GenSpec& s) { s.skip = {"attn.to_k", "attn.add_k_proj"}; }, needs_diffusers_parts},
      {"missing-v", "v absent from every fused attention target",
       [](GenSpec& s) { s.skip = {"attn.to_v", "attn.add_v_proj"}; }, needs_diffusers_parts},
      {"no-double-blocks", "whole double blocks absent (single blocks and top level only)", [](GenSpec& s) { s.max_double = 0; },
       [](const Dialect&) { return std::optional<std::string>(); }},
      {"no-single-blocks", "whole single blocks absent (double blocks and top level only)", [](GenSpec& s) { s.max_single = 0; },
       [](const Dialect&) { return std::optional<std::string>(); }},
      {"mixed-ranks", "rank differs per module (2, 1, 4), so fused parts have different ranks",
       [](GenSpec& s) { s.mixed_ranks = true; }, [](const Dialect&) { return std::optional<std::string>(); }},
      {"per-part-alpha", "a .alpha per module with different values (3, 6, 9), so fused parts have different scales",
       [](GenSpec& s) {
         s.alpha = 3;
         s.per_part_alpha = true;
       },
       [](const Dialect& d) -> std::optional<std::string> {
         if (d.alpha) return std::nullopt;
         return "the dialect has no .alpha tensors";
       }},
      {"metadata-alpha", "scale from lora_adapter_metadata (lora_alpha = 2·r), no .alpha tensors",
       [](GenSpec& s) { s.metadata_alpha = true; },
       [](const Dialect& d) -> std::optional<std::string> {
         if (d.metadata) return std::nullopt;
         return "lora_adapter_metadata is written by diffusers only";
       }},
      {"rslora", "lora_adapter_metadata with use_rslora (scale lora_alpha/√r)",
       [](GenSpec& s) {
         s.metadata_alpha = true;
         s.rslora = true;
       },
       [](const Dialect& d) -> std::optional<std::string> {
         if (d.metadata) return std::nullopt;
         return "lora_adapter_metadata is written by diffusers only";
       }},
      {"norm-out", "only norm_out.linear / final_layer.adaLN_modulation.1 (the row-half swap, Hyper/Turbo LoRAs)",
       [](GenSpec& s) {
         s.blocks = false;
         s.skip = top_level_except_norm_out(s.layout);
       },
       [](const Dialect& d) -> std::optional<std::string> {
         if (d.top_level) return std::nullopt;
         return "xlabs covers block attention only";
       }},
      {"bias", "bias deltas beside the factors (lora_B.bias or diff_b)", [](GenSpec& s) { s.bias = true; },
       [](const Dialect& d) -> std::optional<std::string> {
         if (d.bias) return std::nullopt;
         return "the dialect has no bias-delta spelling";
       }},
      {"embedders-only", "top-level modules only, no blocks", [](GenSpec& s) { s.blocks = false; },
       [](const Dialect& d) -> std::optional<std::string> {
         if (d.top_level) return std::nullopt;
         return "xlabs covers block attention only";
       }},
      {"text-encoder", "CLIP-L (lora_te1_) modules mixed in; passed through unchanged",
       [](GenSpec& s) { s.text_encoder = true; }, [](const Dialect&) { return std::optional<std::string>(); }},
  };
  return kStructures;
}

const st::DType kDTypes[] = {st::DType::kF32, st::DType::kF16, st::DType::kBF16};

struct Variant {
  std::string name;
  std::string dialect, structure, dtype;
  GenSpec spec;
  // The family the variant is generated for: named to the pipeline as --model would, since
  // some structures (norm_out alone) are ambiguous between families by design.
  const flux::Family* family = nullptr;
};

// The other families of the family table get rows too (BF16, the dialects their LoRAs are
// written in); a structure the family's layout cannot hold is n/a, judged from the layout.
const char* const kFamilyRows[] = {"chroma", "flux2-dev", "flux2-klein-9b", "flux2-klein-4b"};
const char* const kFamilyDialects[] = {"diffusers", "fal", "kohya", "comfy", "ai-toolkit", "bfl"};

std::optional<std::string> family_not_applicable(const flux::Layout& l, const std::string& structure) {
  const bool split_mlp = flux::parts_of_target(l, "single_blocks.0.linear1").size() == 4;
  if ((structure == "no-proj-mlp" || structure == "only-proj-mlp") && !split_mlp)
    return "linear1 is one module in both namings";
  if (structure == "bias" && !l.biases) return "the model has no biases";
  if (structure == "norm-out" && !flux::find_target(l, "final_layer.adaLN_modulation.1"))
    return "the model has no final adaLN Linear";
  return std::nullopt;
}

const std::vector<Variant>& builtin_variants() {
  static const std::vector<Variant> kVariants = [] {
    std::vector<Variant> out;
    for (const auto& d : kDialects)
      for (const auto& s : structures()) {
        if (s.not_applicable(d)) continue;
        for (st::DType dt : kDTypes) {
          Variant v;
          v.name = std::string(d.name) + " / " + s.name + " / " + std::string(st::dtype_name(dt));
          v.dialect = d.name;
          v.structure = s.name;
          v.dtype = std::string(st::dtype_name(dt));
          v.spec.dialect = d.name;
          v.spec.rank = kRank;
          v.spec.dtype = dt;
          v.spec.seed = kSeed;
          v.spec.max_double = kBlocks;
          v.spec.max_single = kBlocks;
          v.family = flux::find_family("flux1");
          v.spec.family = "flux1";
          s.apply(v.spec);
          out.push_back(std::move(v));
        }
      }
    for (const char* family : kFamilyRows) {
      const flux::Family* f = flux::find_family(family);
      for (const char* dn : kFamilyDialects) {
        const Dialect* d = nullptr;
        for (const auto& x : kDialects)
          if (std::string(x.name) == dn) d = &x;
        for (const auto& s : structures()) {
          if (!d || s.not_applicable(*d) || std::string(s.name) == "text-encoder") continue;
          Variant v;
          v.spec.layout = flux::layout_of(*f);
          v.family = f;
          v.spec.family = f->name;
          if (family_not_applicable(v.spec.layout, s.name)) continue;
          // Named apart from the FLUX.1 rows ("kohya / complete /" filters only those).
          v.name = std::string(family) + ": " + dn + ", " + s.name + ", BF16";
          v.dialect = dn;
          v.structure = s.name;
          v.dtype = "BF16";
          v.spec.dialect = dn;
          v.spec.rank = kRank;
          v.spec.dtype = st::DType::kBF16;
          v.spec.seed = kSeed;
          v.spec.max_double = kBlocks;
          v.spec.max_single = kBlocks;
          s.apply(v.spec);
          out.push_back(std::move(v));
        }
      }
    }
    return out;
  }();
  return kVariants;
}

std::string builtin_description() {
  std::string families;
  for (const char* f : kFamilyRows) families += (families.empty() ? "" : ", ") + std::string(flux::find_family(f)->display);
  return "Built-in variants are generated in memory, seeded (seed " + std::to_string(kSeed) +
         "), from the FLUX.1-dev layout: real FLUX.1-dev shapes, rank " + std::to_string(kRank) +
         ", double and single blocks 0–" + std::to_string(kBlocks - 1) +
         " plus the top-level modules (embedders, final layer, norm_out); rows named 'family: …' do the same with the "
         "real shapes of " + families + " (BF16; structures the model cannot hold, such as FLUX.2 bias deltas or "
         "a split linear1, are left out). Each is converted in memory to every "
         "output style, re-read with the same strict reader and verified module by module; the round trip "
         "converts to the other layout and back and compares the result with the source.";
}

// ---- running one row --------------------------------------------------------------------

MatrixCell cell_from(const std::string& column, const Result<Report>& r) {
  MatrixCell c;
  c.column = column;
  if (!r.ok()) {
    c.outcome = "refused";
    c.reason = r.error().code == ErrorCode::kInternal ? "internal error: " + r.error().message : r.error().message;
    return c;
  }
  c.outcome = r->pass ? "equivalent" : "not equivalent";
  if (!r->pass) c.reason = r->verdict;
  c.worst_error = r->summary.worst_relative_error;
  return c;
}

Result<std::shared_ptr<const st::SafetensorsFile>> reread(const Conversion& c, const std::string& name) {
  LV_TRY_ASSIGN(bytes, st::serialize(tensors_to_write(c), c.metadata));
  auto f = st::SafetensorsFile::from_bytes(std::move(bytes), name);
  if (!f.ok()) return internal_error("the converter wrote an invalid file: " + f.error().message);
  return std::make_shared<const st::SafetensorsFile>(std::move(f).value());
}

// Converts to the other layout (default style), then back, and compares with the source.
Result<Report> round_trip(const std::shared_ptr<const st::SafetensorsFile>& src, const flux::Family* family) {
  LoadOptions first;
  first.family = family;
  LV_TRY_ASSIGN(in, load_lora(src, first));
  ConvertOptions there = resolve_convert_options(in, PipelineOptions{});
  LV_TRY_ASSIGN(c1, convert(in, there));
  LV_TRY_ASSIGN(f1, reread(c1, "(converted in memory)"));
  LoadOptions lo;
  lo.layout = in.layout;
  lo.allow_empty = true;
  LV_TRY_ASSIGN(mid, load_lora(f1, lo));
  ConvertOptions back;
  back.to = there.to == OutputLayout::kBfl ? OutputLayout::kDiffusers : OutputLayout::kBfl;
  back.style = back.to == OutputLayout::kBfl ? Style::kKohya : Style::kDiffusers;
  LV_TRY_ASSIGN(c2, convert(mid, back));
  LV_TRY_ASSIGN(f2, reread(c2, "(converted back in memory)"));
  PipelineOptions cmp;
  cmp.threads = 1;
  cmp.family = family;
  return run_compare(src, f2, cmp);
}

struct Col {
  const char* name;
  OutputLayout to;
  Style style;
};
const Col kStyleColumns[] = {{"kohya", OutputLayout::kBfl, Style::kKohya},
                             {"comfy", OutputLayout::kBfl, Style::kComfy},
                             {"peft", OutputLayout::kBfl, Style::kPeft},
                             {"bfl", OutputLayout::kBfl, Style::kBfl},
                             {"diffusers", OutputLayout::kDiffusers, Style::kDiffusers}};

bool selected(const MatrixOptions& opt, const std::string& column) {
  return !opt.styles || std::find(opt.styles->begin(), opt.styles->end(), column) != opt.styles->end();
}

MatrixRow run_row(const std::string& name, bool builtin, const std::shared_ptr<const st::SafetensorsFile>& file,
                  const MatrixOptions& opt, const ConverterInput& input, const flux::Family* family) {
  MatrixRow row;
  row.variant = name;
  row.builtin = builtin;
  bool bfl_run = false;
  for (const Col& col : kStyleColumns) {
    if (!selected(opt, col.name)) continue;
    bfl_run = bfl_run || col.to == OutputLayout::kBfl;
    PipelineOptions o;
    o.to = col.to;
    o.style = col.style;
    o.threads = 1;  // parallelism is across rows
    o.family = family;
    auto r = run_verify(file, o);
    if (r.ok() && row.dialect.empty()) {
      row.dialect = r->dialect;
      row.ranks = r->summary.rank_max > 0 ? std::to_string(r->summary.rank_min) + ".." + std::to_string(r->summary.rank_max) : "-";
    }
    // Zero-filled parts exist only on the fused (BFL) side.
    if (r.ok() && col.to == OutputLayout::kBfl) row.zero_filled = std::max(row.zero_filled, r->summary.zero_filled);
    row.cells.push_back(cell_from(col.name, r));
  }
  if (selected(opt, "round-trip")) row.cells.push_back(cell_from("round-trip", round_trip(file, family)));
  if (row.dialect.empty() || !bfl_run) {
    // No style column told the dialect, ranks and zero-filled parts: one kohya conversion does.
    PipelineOptions o;
    o.to = OutputLayout::kBfl;
    o.style = Style::kKohya;
    o.threads = 1;
    o.family = family;
    auto r = run_verify(file, o);
    if (r.ok()) {
      row.dialect = r->dialect;
      row.ranks = r->summary.rank_max > 0 ? std::to_string(r->summary.rank_min) + ".." + std::to_string(r->summary.rank_max) : "-";
      row.zero_filled = std::max(row.zero_filled, r->summary.zero_filled);
    }
  }
  for (const auto& conv : opt.converters) row.cells.push_back(run_converter_cell(conv, opt.limits, file, input, name, family));
  row.loaders = matrix_loader_cells(file, family);
  if (row.dialect.empty()) row.dialect = "-";
  if (row.ranks.empty()) row.ranks = "-";
  for (const auto& c : row.cells) row.worst_error = std::max(row.worst_error, c.worst_error);
  return row;
}

MatrixRow unreadable_row(const std::string& name, bool builtin, const Error& e, const std::vector<std::string>& columns) {
  MatrixRow row;
  row.variant = name;
  row.builtin = builtin;
  row.dialect = "-";
  row.ranks = "-";
  for (const auto& c : columns) row.cells.push_back({c, "refused", e.message, 0, "", false, "", ""});
  return row;
}

// ---- rendering helpers ------------------------------------------------------------------

std::string fmt_error(double e) {
  if (std::isinf(e)) return "inf";
  if (std::isnan(e)) return "nan";
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

std::string fmt_seconds(double s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f s", s);
  return buf;
}

std::string summary_line(const MatrixResult& m) {
  return std::to_string(m.equivalent_rows()) + " of " + std::to_string(m.rows.size()) + " variants equivalent " +
         (m.columns == kColumns ? "in every output style and the round trip" : "in every column");
}

bool is_style_column(const std::string& c) { return std::find(kColumns.begin(), kColumns.end(), c) != kColumns.end(); }

const char* const kConverterOutcomes[] = {"equivalent", "not equivalent", "failed", "timed out", "no output", "unreadable output", "refused"};

// Per converter column: how many variants had each outcome.
std::vector<std::pair<std::string, std::map<std::string, int64_t>>> converter_counts(const MatrixResult& m) {
  std::vector<std::pair<std::string, std::map<std::string, int64_t>>> out;
  for (const auto& col : m.columns) {
    if (is_style_column(col)) continue;
    std::map<std::string, int64_t> n;
    for (const auto& r : m.rows)
      for (const auto& c : r.cells)
        if (c.column == col) n[c.outcome]++;
    out.emplace_back(col, std::move(n));
  }
  return out;
}

std::string baseline_line(const MatrixResult& m) {
  auto n = [](int64_t k, const char* one, const char* many) { return std::to_string(k) + " " + (k == 1 ? one : many); };
  return "Against the baseline: " + n(m.regressions, "regression", "regressions") + ", " + n(m.fixes, "fix", "fixes") + ", " +
         n(m.changes, "change", "changes") + " in all";
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

// Text safe inside a GitHub table cell: no pipes, no line breaks, no raw HTML.
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

const char* md_mark(const std::string& outcome) {
  if (outcome == "equivalent") return "✅";
  if (outcome == "not equivalent") return "❌";
  if (outcome == "refused") return "⛔";
  if (outcome == "failed") return "💥";
  if (outcome == "timed out") return "⏱️";
  if (outcome == "no output") return "∅";
  if (outcome == "unreadable output") return "🗑️";
  return "❔";
}

const char* html_class(const std::string& outcome) {
  if (outcome == "equivalent") return "eq";
  if (outcome == "not equivalent") return "ne";
  if (outcome == "refused" || outcome == "failed" || outcome == "timed out" || outcome == "no output" ||
      outcome == "unreadable output")
    return "rf";
  return "na";
}

const char* html_mark(const std::string& outcome) {
  if (outcome == "equivalent") return "✓";
  if (outcome == "not equivalent") return "✗";
  if (outcome == "refused") return "refused";
  if (outcome == "failed") return "failed";
  if (outcome == "timed out") return "timed out";
  if (outcome == "no output") return "no output";
  if (outcome == "unreadable output") return "unreadable";
  return "?";
}

// Reasons are numbered once each; the same reason in many cells shares one number.
struct Notes {
  std::vector<std::string> text;
  std::map<std::string, size_t> index;
  size_t number(const std::string& s) {
    auto [it, added] = index.emplace(s, text.size() + 1);
    if (added) text.push_back(s);
    return it->second;
  }
};

std::string cell_note(const MatrixCell& c) {
  std::string s = c.reason;
  if (!is_style_column(c.column) && c.outcome != "equivalent" && c.outcome != "refused")
    s = s.rfind(c.outcome, 0) == 0 ? s : c.outcome + (s.empty() ? "" : ": " + s);
  if (!c.was.empty()) s = std::string(c.regression ? "regression" : "changed") + " (baseline: " + c.was + ")" + (s.empty() ? "" : "; " + s);
  return s;
}

// Structures in column order with the dialects they apply to.
struct Grid {
  std::vector<std::string> structures;
  std::vector<std::string> dialects;
  std::map<std::pair<std::string, std::string>, std::string> why_not;  // (dialect, structure) → reason
};

Grid grid() {
  Grid g;
  for (const auto& s : structures()) g.structures.push_back(s.name);
  for (const auto& d : kDialects) g.dialects.push_back(d.name);
  for (const auto& a : builtin_applicability())
    if (!a.applies) g.why_not[{a.dialect, a.structure}] = a.why_not;
  return g;
}

}  // namespace

bool MatrixRow::equivalent() const {
  return !cells.empty() && std::all_of(cells.begin(), cells.end(), [](const MatrixCell& c) { return c.outcome == "equivalent"; });
}

int64_t MatrixResult::equivalent_rows() const {
  return std::count_if(rows.begin(), rows.end(), [](const MatrixRow& r) { return r.equivalent(); });
}

bool MatrixResult::builtin_failed() const {
  return std::any_of(rows.begin(), rows.end(), [](const MatrixRow& r) { return r.builtin && !r.equivalent(); });
}

const std::vector<std::string>& style_columns() { return kColumns; }

std::vector<BuiltinVariant> builtin_variants_matching(const std::string& filter) {
  std::vector<BuiltinVariant> out;
  for (const auto& v : builtin_variants()) {
    if (!filter.empty() && v.name.find(filter) == std::string::npos) continue;
    BuiltinVariant b;
    b.name = v.name;
    b.dialect = v.dialect;
    b.structure = v.structure;
    b.dtype = v.dtype;
    b.family = v.family;
    b.file = variant_slug(v.name) + ".safetensors";
    out.push_back(std::move(b));
  }
  return out;
}

Result<std::vector<uint8_t>> generate_builtin(const std::string& name) {
  for (const auto& v : builtin_variants())
    if (v.name == name) return generate_lora(v.spec);
  return make_error(ErrorCode::kUsage, "no built-in variant is named '" + name + "'");
}

std::vector<std::string> builtin_variant_names() {
  std::vector<std::string> n;
  for (const auto& v : builtin_variants()) n.push_back(v.name);
  return n;
}

std::vector<std::string> builtin_structures() {
  std::vector<std::string> n;
  for (const auto& s : structures()) n.push_back(s.name);
  return n;
}

std::vector<std::string> builtin_dialects() {
  std::vector<std::string> n;
  for (const auto& d : kDialects) n.push_back(d.name);
  return n;
}

std::vector<Applicability> builtin_applicability() {
  std::vector<Applicability> out;
  for (const auto& d : kDialects)
    for (const auto& s : structures()) {
      auto why = s.not_applicable(d);
      out.push_back({d.name, s.name, !why, why.value_or("")});
    }
  return out;
}

Result<MatrixResult> run_matrix(const MatrixOptions& opt) {
  if (opt.shard_count < 1 || opt.shard_index < 0 || opt.shard_index >= opt.shard_count)
    return make_error(ErrorCode::kUsage, "--shard must be i/n with 0 <= i < n, got " + std::to_string(opt.shard_index) + "/" +
                                             std::to_string(opt.shard_count));
  // The full work list: built-in variants in grid order, then every input file (sorted, so
  // the order does not depend on how the arguments were spelled in order).
  struct Job {
    std::string name;
    const GenSpec* spec = nullptr;  // built-in
    std::string path;               // input
    const flux::Family* family = nullptr;  // built-in: the family it was generated for
  };
  std::vector<Job> all;
  if (opt.builtin)
    for (const auto& v : builtin_variants())
      if (opt.filter.empty() || v.name.find(opt.filter) != std::string::npos) all.push_back({v.name, &v.spec, "", v.family});
  std::vector<std::string> files;
  for (const auto& in : opt.inputs) {
    namespace fs = std::filesystem;
    std::error_code ec;
    if (fs::is_directory(in, ec)) {
      fs::recursive_directory_iterator it(in, fs::directory_options::skip_permission_denied, ec), end;
      if (ec) return make_error(ErrorCode::kCannotOpen, in + ": cannot read directory: " + ec.message());
      for (; it != end; it.increment(ec)) {
        if (ec) return make_error(ErrorCode::kCannotOpen, in + ": cannot read directory: " + ec.message());
        std::error_code fec;
        if (it->is_regular_file(fec) && it->path().extension() == ".safetensors") files.push_back(it->path().string());
      }
    } else if (fs::exists(in, ec)) {
      files.push_back(in);
    } else {
      return make_error(ErrorCode::kCannotOpen, in + ": no such file or directory");
    }
  }
  std::sort(files.begin(), files.end());
  files.erase(std::unique(files.begin(), files.end()), files.end());
  for (auto& f : files) all.push_back({f, nullptr, f});

  std::vector<const Job*> jobs;
  for (size_t i = 0; i < all.size(); ++i)
    if (i % static_cast<size_t>(opt.shard_count) == static_cast<size_t>(opt.shard_index)) jobs.push_back(&all[i]);

  MatrixResult m;
  if (opt.styles) {
    for (const auto& c : kColumns)  // grid order, whatever order they were given in
      if (selected(opt, c)) m.columns.push_back(c);
    for (const auto& c : *opt.styles)
      if (!is_style_column(c)) return make_error(ErrorCode::kUsage, "--styles: unknown column '" + c + "'");
  } else {
    m.columns = kColumns;
  }
  {
    std::set<std::string> names(m.columns.begin(), m.columns.end());
    for (const auto& c : opt.converters) {
      if (!names.insert(c.name).second) return make_error(ErrorCode::kUsage, "--converter " + c.name + " names a column twice");
      m.columns.push_back(c.name);
    }
  }
  if (m.columns.empty()) return make_error(ErrorCode::kUsage, "no columns: --styles none needs at least one --converter");
  if (opt.builtin) m.description = builtin_description();
  if (opt.shard_count > 1) {
    // FNV-1a over everything that defines the run; every shard of one run shares it.
    uint64_t h = 0xcbf29ce484222325ull;
    auto mix = [&](const std::string& s) {
      for (unsigned char c : s) h = (h ^ c) * 0x100000001b3ull;
      h = (h ^ 0xff) * 0x100000001b3ull;  // separator
    };
    mix(LV_VERSION);
    mix(opt.builtin ? "builtin" : "no-builtin");
    mix(opt.filter);
    mix(std::to_string(opt.shard_count));
    for (const auto& j : all) mix((j.spec ? "b:" : "i:") + j.name);
    if (m.columns != kColumns) {  // older runs (all style columns, no converter) keep their fingerprint
      for (const auto& c : m.columns) mix("c:" + c);
      for (const auto& c : opt.converters) mix("x:" + c.command);
      char t[64];
      std::snprintf(t, sizeof t, "t:%g m:%llu", opt.limits.timeout_seconds, static_cast<unsigned long long>(opt.limits.max_output));
      mix(t);
    }
    char hex[17];
    std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(h));
    m.run_fingerprint = hex;
  }
  m.shard_index = opt.shard_index;
  m.shard_count = opt.shard_count;
  m.total_rows = static_cast<int64_t>(all.size());
  m.rows.resize(jobs.size());

  std::atomic<size_t> next{0}, done{0};
  std::mutex progress_mutex;
  const bool progress = opt.progress && isatty(2);
  auto worker = [&] {
    for (size_t i; (i = next.fetch_add(1)) < jobs.size();) {
      const Job& j = *jobs[i];
      const auto start = std::chrono::steady_clock::now();
      std::optional<Error> err;
      std::shared_ptr<const st::SafetensorsFile> file;
      std::vector<uint8_t> copy;  // the generated file, for converters to read
      ConverterInput input;
      if (j.spec) {
        auto bytes = generate_lora(*j.spec);
        if (!bytes.ok()) {
          err = bytes.error();
        } else {
          if (!opt.converters.empty()) {
            copy = *bytes;
            input.bytes = &copy;
          }
          auto f = st::SafetensorsFile::from_bytes(std::move(bytes).value(), j.name);
          if (f.ok()) file = std::make_shared<const st::SafetensorsFile>(std::move(f).value());
          else err = f.error();
        }
      } else {
        input.path = j.path;
        auto f = st::SafetensorsFile::open(j.path);
        if (f.ok()) file = std::make_shared<const st::SafetensorsFile>(std::move(f).value());
        else err = f.error();
      }
      m.rows[i] = file ? run_row(j.name, j.spec != nullptr, file, opt, input, j.family)
                       : unreadable_row(j.name, j.spec != nullptr, *err, m.columns);
      m.rows[i].seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      const size_t d = ++done;
      if (progress) {
        std::lock_guard<std::mutex> lock(progress_mutex);
        std::fprintf(stderr, "\r\033[K[%zu/%zu] %.70s", d, jobs.size(), j.name.c_str());
        if (d == jobs.size()) std::fprintf(stderr, "\n");
        std::fflush(stderr);
      }
    }
  };
  const size_t threads = std::min<size_t>(static_cast<size_t>(std::max(1, opt.jobs)), std::max<size_t>(1, jobs.size()));
  std::vector<std::thread> pool;
  for (size_t t = 1; t < threads; ++t) pool.emplace_back(worker);
  worker();
  for (auto& t : pool) t.join();
  return m;
}

// ---- renderers ----------------------------------------------------------------------------

std::string render_matrix_markdown(const MatrixResult& m, bool timings) {
  std::ostringstream o;
  o << "# FLUX.1 LoRA compatibility matrix (lora-verify " << LV_VERSION << ")\n\n";
  o << "**" << summary_line(m) << ".**\n\n";
  if (m.has_baseline) {
    o << "**" << baseline_line(m) << ".**\n\n";
    for (const auto& n : m.baseline_notes) o << "- " << esc_md(n) << "\n";
    if (!m.baseline_notes.empty()) o << "\n";
  }
  if (m.shard_count > 1)
    o << "Shard " << m.shard_index << "/" << m.shard_count << " of a run of " << m.total_rows
      << " rows (`lora-verify matrix --merge` joins the shards).\n\n";
  if (!m.description.empty()) o << m.description << "\n\n";
  o << render_loader_summary_markdown(m);
  const auto conv = converter_counts(m);
  if (!conv.empty()) {
    o << "## Converters\n\nEach converter ran on every variant in a fresh temporary directory; its output was read in "
         "any dialect lora-verify reads and compared with the source exactly as `lora-verify compare` does.\n\n"
         "| converter |";
    for (const char* k : kConverterOutcomes) o << " " << k << " |";
    o << "\n|---|";
    for (size_t i = 0; i < std::size(kConverterOutcomes); ++i) o << "--:|";
    o << "\n";
    for (const auto& [name, n] : conv) {
      o << "| " << esc_md(name) << " |";
      for (const char* k : kConverterOutcomes) {
        auto it = n.find(k);
        o << " " << (it == n.end() ? 0 : it->second) << " |";
      }
      o << "\n";
    }
    o << "\n";
  }
  o << "## Conversions\n\n";
  if (m.columns == kColumns) {
    o << "Columns: kohya, comfy, peft, bfl = converted to the BFL layout in that key style; diffusers = converted to "
         "the diffusers layout; round-trip = to the other layout and back, compared with the source.\n\n";
    o << "✅ equivalent · ❌ not equivalent · ⛔ refused · ⚠️ changed since the baseline · "
         "<sup>n</sup> see note n below the table\n\n";
  } else {
    o << "Columns: kohya, comfy, peft, bfl = converted to the BFL layout in that key style; diffusers = converted to "
         "the diffusers layout; round-trip = to the other layout and back, compared with the source; any other column "
         "is a converter (`--converter`).\n\n";
    o << "✅ equivalent · ❌ not equivalent · ⛔ refused · 💥 failed · ⏱️ timed out · ∅ no output · 🗑️ unreadable output · "
         "⚠️ changed since the baseline · <sup>n</sup> see note n below the table. A converter's output for each cell that "
         "is not equivalent is in `logs/CONVERTER/VARIANT.log` beside this file (the JSON names it per cell).\n\n";
  }
  o << "| variant | dialect | ranks | zero-filled |";
  for (const auto& c : m.columns) o << " " << esc_md(c) << " |";
  o << " worst rel. error |" << (timings ? " time |" : "") << "\n|---|---|---|--:|";
  for (size_t i = 0; i < m.columns.size(); ++i) o << ":-:|";
  o << "--:|" << (timings ? "--:|" : "") << "\n";
  Notes notes;
  for (const auto& r : m.rows) {
    o << "| " << esc_md(r.variant) << " | " << esc_md(r.dialect) << " | " << esc_md(r.ranks) << " | " << r.zero_filled << " |";
    for (const auto& c : r.cells) {
      o << " " << md_mark(c.outcome);
      if (!c.was.empty()) o << "⚠️";
      std::string note = cell_note(c);
      if (!note.empty()) o << "<sup>" << notes.number(note) << "</sup>";
      o << " |";
    }
    o << " " << fmt_error(r.worst_error) << " |";
    if (timings) o << " " << fmt_seconds(r.seconds) << " |";
    o << "\n";
  }
  if (!notes.text.empty()) {
    o << "\nNotes:\n\n";
    for (size_t i = 0; i < notes.text.size(); ++i) o << (i + 1) << ". " << esc_md(notes.text[i]) << "\n";
  }
  o << render_loader_grid_markdown(m);
  if (!m.description.empty()) {
    const Grid g = grid();
    o << "\n## Structures per dialect\n\n";
    o << "Not every structure exists in every dialect; n/a cells are not generated.\n\n| dialect |";
    for (const auto& s : g.structures) o << " " << s << " |";
    o << "\n|---|";
    for (size_t i = 0; i < g.structures.size(); ++i) o << ":-:|";
    o << "\n";
    Notes na;
    for (const auto& d : g.dialects) {
      o << "| " << d << " |";
      for (const auto& s : g.structures) {
        auto it = g.why_not.find({d, s});
        if (it == g.why_not.end()) o << " ✓ |";
        else o << " n/a<sup>" << na.number(it->second) << "</sup> |";
      }
      o << "\n";
    }
    o << "\n";
    for (size_t i = 0; i < na.text.size(); ++i) o << (i + 1) << ". n/a: " << esc_md(na.text[i]) << "\n";
    o << "\nStructures:\n\n";
    for (const auto& s : structures()) o << "- **" << s.name << "**: " << esc_md(s.what) << "\n";
  }
  return o.str();
}

std::string render_matrix_json(const MatrixResult& m, bool timings) {
  using J = nlohmann::ordered_json;
  J j;
  j["schema"] = kSchema;
  j["tool_version"] = LV_VERSION;
  j["description"] = m.description;
  j["summary"] = {{"rows", m.rows.size()}, {"equivalent", m.equivalent_rows()}, {"line", summary_line(m)}};
  if (m.shard_count > 1)
    j["shard"] = {{"index", m.shard_index}, {"count", m.shard_count}, {"total_rows", m.total_rows}, {"run", m.run_fingerprint}};
  if (m.has_baseline)
    j["baseline"] = {{"regressions", m.regressions}, {"fixes", m.fixes}, {"changes", m.changes}, {"notes", m.baseline_notes}};
  j["columns"] = m.columns;
  J rows = J::array();
  for (const auto& r : m.rows) {
    J row;
    row["variant"] = r.variant;
    row["source"] = r.builtin ? "builtin" : "input";
    row["dialect"] = r.dialect;
    row["ranks"] = r.ranks;
    row["zero_filled"] = r.zero_filled;
    row["worst_error"] = rounded(r.worst_error);
    if (timings) row["seconds"] = std::round(r.seconds * 1000) / 1000;
    J cells = J::array();
    for (const auto& c : r.cells) {
      J cell = {{"column", c.column}, {"outcome", c.outcome}, {"reason", c.reason}, {"worst_error", rounded(c.worst_error)}};
      if (!c.log.empty()) cell["log"] = c.log;
      if (!c.was.empty()) {
        cell["baseline"] = c.was;
        cell["regression"] = c.regression;
      }
      cells.push_back(std::move(cell));
    }
    row["cells"] = std::move(cells);
    if (!r.loaders.empty()) row["loaders"] = loader_cells_json(r.loaders);
    rows.push_back(std::move(row));
  }
  j["rows"] = std::move(rows);
  j["loader_summary"] = loader_summary_json(m);
  if (!m.description.empty()) {
    J na = J::array();
    for (const auto& a : builtin_applicability())
      if (!a.applies) na.push_back({{"dialect", a.dialect}, {"structure", a.structure}, {"why", a.why_not}});
    j["not_applicable"] = std::move(na);
  }
  return j.dump(1, ' ', false, J::error_handler_t::replace) + "\n";
}

std::string render_matrix_html(const MatrixResult& m, bool timings) {
  std::ostringstream o;
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
  o << "<h1>FLUX.1 LoRA compatibility matrix</h1>\n";
  o << "<p><strong>" << esc_html(summary_line(m)) << ".</strong> lora-verify " << LV_VERSION << ".</p>\n";
  if (m.has_baseline) {
    o << "<p><strong>" << esc_html(baseline_line(m)) << ".</strong></p>\n";
    if (!m.baseline_notes.empty()) {
      o << "<ul>\n";
      for (const auto& n : m.baseline_notes) o << "<li>" << esc_html(n) << "</li>\n";
      o << "</ul>\n";
    }
  }
  if (m.shard_count > 1)
    o << "<p>Shard " << m.shard_index << "/" << m.shard_count << " of a run of " << m.total_rows << " rows.</p>\n";
  if (!m.description.empty()) o << "<p>" << esc_html(m.description) << "</p>\n";
  o << render_loader_summary_html(m);
  if (const auto conv = converter_counts(m); !conv.empty()) {
    o << "<h2>Converters</h2>\n<p>Each converter ran on every variant in a fresh temporary directory; its output was "
         "compared with the source exactly as <code>lora-verify compare</code> does.</p>\n<table><thead><tr><th>converter</th>";
    for (const char* k : kConverterOutcomes) o << "<th>" << k << "</th>";
    o << "</tr></thead><tbody>\n";
    for (const auto& [name, n] : conv) {
      o << "<tr><td>" << esc_html(name) << "</td>";
      for (const char* k : kConverterOutcomes) {
        auto it = n.find(k);
        o << "<td class=\"n\">" << (it == n.end() ? 0 : it->second) << "</td>";
      }
      o << "</tr>\n";
    }
    o << "</tbody></table>\n";
  }
  o << "<h2>Conversions</h2>\n";
  o << "<p>Columns: kohya, comfy, peft, bfl = converted to the BFL layout in that key style; diffusers = converted to the "
       "diffusers layout; round-trip = to the other layout and back, compared with the source.</p>\n";
  if (m.columns != kColumns)
    o << "<p>Any column other than kohya, comfy, peft, bfl, diffusers and round-trip is a converter "
         "(<code>--converter</code>): failed, timed out, no output and unreadable output are its own outcomes. Its output "
         "for each cell that is not equivalent is in <code>logs/CONVERTER/VARIANT.log</code> beside this file.</p>\n";
  o << "<p class=\"key\"><span class=\"eq\">✓ equivalent</span><span class=\"ne\">✗ not equivalent</span>"
       "<span class=\"rf\">refused</span><span class=\"reg\">regression</span><span class=\"chg\">changed</span>"
       " — a number points to the note below; hover a cell for details.</p>\n";
  o << "<table><thead><tr><th>variant</th><th>dialect</th><th>ranks</th><th>zero-filled</th>";
  for (const auto& c : m.columns) o << "<th>" << esc_html(c) << "</th>";
  o << "<th>worst rel. error</th>" << (timings ? "<th>time</th>" : "") << "</tr></thead><tbody>\n";
  Notes notes;
  for (const auto& r : m.rows) {
    o << "<tr" << (r.equivalent() ? "" : " class=\"bad\"") << "><td>" << esc_html(r.variant) << "</td><td>" << esc_html(r.dialect)
      << "</td><td>" << esc_html(r.ranks) << "</td><td class=\"n\">" << r.zero_filled << "</td>";
    for (const auto& c : r.cells) {
      const std::string note = cell_note(c);
      o << "<td class=\"c " << html_class(c.outcome) << (c.was.empty() ? "" : c.regression ? " reg" : " chg") << "\" title=\""
        << esc_html(c.column + ": " + c.outcome + (note.empty() ? "" : " — " + note)) << "\">" << html_mark(c.outcome);
      if (!note.empty()) o << "<sup>" << notes.number(note) << "</sup>";
      o << "</td>";
    }
    o << "<td class=\"n\">" << fmt_error(r.worst_error) << "</td>";
    if (timings) o << "<td class=\"n\">" << fmt_seconds(r.seconds) << "</td>";
    o << "</tr>\n";
  }
  o << "</tbody></table>\n";
  if (!notes.text.empty()) {
    o << "<h2>Notes</h2>\n<ol>\n";
    for (const auto& n : notes.text) o << "<li>" << esc_html(n) << "</li>\n";
    o << "</ol>\n";
  }
  if (!m.description.empty()) {
    const Grid g = grid();
    o << "<h2>Structures per dialect</h2>\n<p>Not every structure exists in every dialect; n/a cells are not generated.</p>\n";
    o << "<table><thead><tr><th>dialect</th>";
    for (const auto& s : g.structures) o << "<th>" << esc_html(s) << "</th>";
    o << "</tr></thead><tbody>\n";
    for (const auto& d : g.dialects) {
      o << "<tr><td>" << esc_html(d) << "</td>";
      for (const auto& s : g.structures) {
        auto it = g.why_not.find({d, s});
        if (it == g.why_not.end()) o << "<td class=\"c eq\">✓</td>";
        else o << "<td class=\"c na\" title=\"" << esc_html(it->second) << "\">n/a</td>";
      }
      o << "</tr>\n";
    }
    o << "</tbody></table>\n<dl>\n";
    for (const auto& s : structures()) o << "<dt><strong>" << esc_html(s.name) << "</strong></dt><dd>" << esc_html(s.what) << "</dd>\n";
    o << "</dl>\n";
  }
  o << "</body></html>\n";
  return o.str();
}

// ---- reading back, merging, baselines -----------------------------------------------------

Result<MatrixResult> read_matrix_json(const std::string& text, const std::string& name) {
  using J = nlohmann::json;
  auto bad = [&](const std::string& why) { return make_error(ErrorCode::kBadInput, name + ": not a compatibility.json: " + why); };
  J j = J::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return bad("invalid JSON");
  if (!j.is_object()) return bad("the top level is not an object");
  auto str = [](const J& o, const char* k) -> std::optional<std::string> {
    auto it = o.find(k);
    if (it == o.end() || !it->is_string()) return std::nullopt;
    return it->get<std::string>();
  };
  auto num = [](const J& o, const char* k) -> double {
    auto it = o.find(k);
    return it != o.end() && it->is_number() ? it->get<double>() : 0.0;
  };
  auto integer = [](const J& o, const char* k, int64_t lo, int64_t hi) -> std::optional<int64_t> {
    auto it = o.find(k);
    if (it == o.end() || !it->is_number_integer()) return std::nullopt;
    int64_t v = it->is_number_unsigned() ? (it->get<uint64_t>() > static_cast<uint64_t>(hi) ? hi + 1 : static_cast<int64_t>(it->get<uint64_t>()))
                                         : it->get<int64_t>();
    if (v < lo || v > hi) return std::nullopt;
    return v;
  };
  if (str(j, "schema") != kSchema) return bad(std::string("schema is not ") + kSchema);
  auto cols = j.find("columns");
  auto rows = j.find("rows");
  if (cols == j.end() || !cols->is_array()) return bad("\"columns\" is missing or not an array");
  if (rows == j.end() || !rows->is_array()) return bad("\"rows\" is missing or not an array");
  MatrixResult m;
  m.description = str(j, "description").value_or("");
  for (const auto& c : *cols) {
    if (!c.is_string()) return bad("a column name is not a string");
    m.columns.push_back(c.get<std::string>());
  }
  if (auto sh = j.find("shard"); sh != j.end()) {
    if (!sh->is_object()) return bad("\"shard\" is not an object");
    auto count = integer(*sh, "count", 1, 1 << 20);
    auto index = count ? integer(*sh, "index", 0, *count - 1) : std::nullopt;
    auto total = integer(*sh, "total_rows", 0, INT64_MAX);
    if (!count || !index || !total) return bad("\"shard\" needs index < count and total_rows");
    m.shard_count = static_cast<int>(*count);
    m.shard_index = static_cast<int>(*index);
    m.total_rows = *total;
    m.run_fingerprint = str(*sh, "run").value_or("");
  }
  const auto names = builtin_variant_names();
  const std::set<std::string> builtin_names(names.begin(), names.end());
  size_t row_no = 0;
  for (const auto& r : *rows) {
    const std::string where = "row " + std::to_string(row_no++);
    if (!r.is_object()) return bad(where + " is not an object");
    auto variant = str(r, "variant");
    auto cells = r.find("cells");
    if (!variant || cells == r.end() || !cells->is_array()) return bad(where + " lacks \"variant\" or \"cells\"");
    MatrixRow row;
    row.variant = *variant;
    auto source = str(r, "source");
    row.builtin = source ? *source == "builtin" : builtin_names.count(*variant) > 0;
    row.dialect = str(r, "dialect").value_or("-");
    row.ranks = str(r, "ranks").value_or("-");
    row.zero_filled = integer(r, "zero_filled", 0, INT64_MAX).value_or(0);
    row.worst_error = num(r, "worst_error");
    row.seconds = num(r, "seconds");
    for (const auto& c : *cells) {
      if (!c.is_object()) return bad(where + " (" + *variant + "): a cell is not an object");
      auto column = str(c, "column");
      auto outcome = str(c, "outcome");
      if (!column || !outcome) return bad(where + " (" + *variant + "): a cell lacks \"column\" or \"outcome\"");
      row.cells.push_back({*column, *outcome, str(c, "reason").value_or(""), num(c, "worst_error"), "", false,
                           str(c, "log").value_or(""), ""});
    }
    std::string why;
    if (!read_loader_cells(r, row.loaders, why)) return bad(where + " (" + *variant + "): " + why);
    m.rows.push_back(std::move(row));
  }
  if (m.shard_count == 1) m.total_rows = static_cast<int64_t>(m.rows.size());
  return m;
}

Result<MatrixResult> merge_matrices(const std::vector<MatrixResult>& shards) {
  if (shards.empty()) return make_error(ErrorCode::kUsage, "nothing to merge");
  MatrixResult m;
  m.columns = shards[0].columns;
  m.description = shards[0].description;
  const int count = shards[0].shard_count;
  std::set<int> indices;
  int64_t rows = 0;
  std::set<std::pair<bool, std::string>> seen;
  for (const auto& s : shards) {
    if (s.columns != m.columns) return make_error(ErrorCode::kBadInput, "shards have different columns");
    if (s.description != m.description) return make_error(ErrorCode::kBadInput, "shards describe different built-in variants (another lora-verify version?)");
    if (s.shard_count != count || s.total_rows != shards[0].total_rows)
      return make_error(ErrorCode::kBadInput, "shards come from different runs (shard counts or row totals differ)");
    if (count > 1 && s.run_fingerprint.empty())
      return make_error(ErrorCode::kBadInput, "shard " + std::to_string(s.shard_index) + "/" + std::to_string(count) +
                                                  " has no run fingerprint (written by an older lora-verify?): "
                                                  "re-run the shards to prove they come from one run");
    if (s.run_fingerprint != shards[0].run_fingerprint)
      return make_error(ErrorCode::kBadInput, "shards come from different runs: shard " + std::to_string(shards[0].shard_index) +
                                                  "/" + std::to_string(count) + " has run " + shards[0].run_fingerprint +
                                                  ", shard " + std::to_string(s.shard_index) + "/" + std::to_string(count) +
                                                  " has run " + s.run_fingerprint +
                                                  " (other variants, --filter, --no-builtin, inputs or version)");
    if (count > 1 && !indices.insert(s.shard_index).second)
      return make_error(ErrorCode::kBadInput, "shard " + std::to_string(s.shard_index) + "/" + std::to_string(count) + " is given twice");
    for (const auto& r : s.rows) {
      if (!seen.insert({r.builtin, r.variant}).second)
        return make_error(ErrorCode::kBadInput, "variant '" + r.variant + "' is in two shards");
      m.rows.push_back(r);
    }
    rows += static_cast<int64_t>(s.rows.size());
  }
  if (count > 1) {
    for (int i = 0; i < count; ++i)
      if (!indices.count(i)) return make_error(ErrorCode::kBadInput, "shard " + std::to_string(i) + "/" + std::to_string(count) + " is missing");
    if (rows != shards[0].total_rows)
      return make_error(ErrorCode::kBadInput, "the shards hold " + std::to_string(rows) + " rows, the run had " +
                                                  std::to_string(shards[0].total_rows));
  }
  m.total_rows = rows;
  // The order of a single run: built-in variants in grid order, then inputs by path.
  const auto names = builtin_variant_names();
  std::map<std::string, size_t> rank;
  for (size_t i = 0; i < names.size(); ++i) rank.emplace(names[i], i);
  auto key = [&](const MatrixRow& r) {
    auto it = r.builtin ? rank.find(r.variant) : rank.end();
    return std::make_pair(it == rank.end() ? names.size() + (r.builtin ? 0 : 1) : it->second, r.variant);
  };
  std::stable_sort(m.rows.begin(), m.rows.end(), [&](const MatrixRow& a, const MatrixRow& b) { return key(a) < key(b); });
  return m;
}

std::vector<MatrixChange> diff_against_baseline(const MatrixResult& baseline, const MatrixResult& current, bool partial) {
  std::vector<MatrixChange> out;
  std::map<std::string, const MatrixRow*> now, before;
  for (const auto& r : current.rows) now.emplace(r.variant, &r);
  for (const auto& r : baseline.rows) before.emplace(r.variant, &r);
  for (const auto& old : baseline.rows) {
    auto it = now.find(old.variant);
    if (it == now.end()) {
      if (partial) continue;  // not run this time, not gone
      const bool worked = std::any_of(old.cells.begin(), old.cells.end(), [](const MatrixCell& c) { return c.outcome == "equivalent"; });
      out.push_back({old.variant, "", "present", "missing", worked, false});
      continue;
    }
    for (const auto& oc : old.cells) {
      std::string after = "missing";
      for (const auto& nc : it->second->cells)
        if (nc.column == oc.column) after = nc.outcome;
      if (after == oc.outcome) continue;
      const bool was_ok = oc.outcome == "equivalent", is_ok = after == "equivalent";
      out.push_back({old.variant, oc.column, oc.outcome, after, was_ok && !is_ok, !was_ok && is_ok});
    }
  }
  for (const auto& r : current.rows)
    if (!before.count(r.variant)) out.push_back({r.variant, "", "missing", "new", false, false});
  return out;
}

void mark_changes(MatrixResult& current, const std::vector<MatrixChange>& changes) {
  current.has_baseline = true;
  current.regressions = current.fixes = current.changes = 0;
  current.baseline_notes.clear();
  std::map<std::string, MatrixRow*> rows;
  for (auto& r : current.rows) rows.emplace(r.variant, &r);
  for (const auto& ch : changes) {
    ++current.changes;
    current.regressions += ch.regression;
    current.fixes += ch.fix;
    const char* kind = ch.regression ? "regression" : ch.fix ? "fix" : "change";
    if (ch.column.empty()) {
      current.baseline_notes.push_back(std::string(kind) + ": " + ch.variant + (ch.after == "new" ? " is new" : " is no longer in the matrix"));
      continue;
    }
    current.baseline_notes.push_back(std::string(kind) + ": " + ch.variant + ", " + ch.column + ": " + ch.before + " → " + ch.after);
    auto it = rows.find(ch.variant);
    if (it == rows.end()) continue;
    for (auto& c : it->second->cells)
      if (c.column == ch.column) {
        c.was = ch.before;
        c.regression = ch.regression;
      }
  }
}

}  // namespace lv::report
