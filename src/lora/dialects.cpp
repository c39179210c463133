// The dialect and output-style tables (docs/formats.md#key-dialects).
#include "lora/dialects.h"

#include <algorithm>
#include <array>

#include "flux/layout.h"

namespace lv {
namespace {

using D = Dialect;
using N = Naming;
using S = Spelling;
using F = SuffixFamily;
constexpr uint8_t kF1 = flux::kArchFlux1 | flux::kArchChroma;  // FLUX.1-shaped files
constexpr uint8_t kAll = kF1 | flux::kArchFlux2;

// Rows in the order of the Dialect enum; the generated ones in the order `sample` lists them.
//                 id                        name                      prefix               spelling        naming          factors     bare   split  refines            writes alpha  bias   no-mlp meta   archs
constexpr std::array kRows = {
    DialectRow{D::kNone,                 "none",                   "",                  S::kDotted,     N::kDiffusers, F::kPeft,    false, false, D::kNone,       {false, false, false, false, false, 0}},
    DialectRow{D::kDiffusers,            "diffusers",              "transformer.",      S::kDotted,     N::kDiffusers, F::kPeft,    true,  false, D::kNone,       {true, true, true, true, true, kAll}},
    DialectRow{D::kDiffusersOld,         "diffusers-old",          "transformer.",      S::kDotted,     N::kDiffusers, F::kPeftOld, false, false, D::kDiffusers,  {true, false, false, true, false, kF1}},
    DialectRow{D::kDiffusersKohyaSuffix, "diffusers-kohya-suffix", "transformer.",      S::kDotted,     N::kDiffusers, F::kKohya,   false, false, D::kDiffusers,  {false, false, false, false, false, 0}},
    DialectRow{D::kFal,                  "fal",                    "base_model.model.", S::kDotted,     N::kDiffusers, F::kPeft,    false, false, D::kNone,       {true, true, true, true, false, kAll}},
    DialectRow{D::kFalKontext,           "fal-kontext",            "base_model.model.", S::kDotted,     N::kBfl,       F::kPeft,    false, false, D::kNone,       {false, false, false, false, false, 0}},
    DialectRow{D::kOneTrainer,           "onetrainer",             "lora_transformer_", S::kUnderscored, N::kDiffusers, F::kKohya,  false, false, D::kNone,       {true, true, true, true, false, kF1}},
    DialectRow{D::kLycoris,              "lycoris",                "lycoris_",          S::kUnderscored, N::kDiffusers, F::kLycoris, false, false, D::kNone,      {false, false, false, false, false, 0}},
    DialectRow{D::kKohya,                "kohya",                  "lora_unet_",        S::kUnderscored, N::kBfl,      F::kKohya,   false, false, D::kNone,       {true, true, true, false, false, kAll}},
    DialectRow{D::kComfy,                "comfy",                  "diffusion_model.",  S::kDotted,     N::kBfl,       F::kKohya,   false, false, D::kNone,       {true, true, true, false, false, kAll}},
    DialectRow{D::kComfyBare,            "comfy-bare",             "",                  S::kDotted,     N::kBfl,       F::kKohya,   false, false, D::kBfl,        {false, false, false, false, false, 0}},
    DialectRow{D::kAiToolkit,            "ai-toolkit",             "diffusion_model.",  S::kDotted,     N::kBfl,       F::kPeft,    false, false, D::kComfy,      {true, true, true, false, false, kAll}},
    DialectRow{D::kBfl,                  "bfl",                    "",                  S::kDotted,     N::kBfl,       F::kPeft,    false, false, D::kNone,       {true, true, true, false, false, kAll}},
    DialectRow{D::kOneTrainerBfl,        "onetrainer-bfl",         "transformer.",      S::kDotted,     N::kBfl,       F::kKohya,   false, true,  D::kNone,       {true, true, false, true, false, kF1}},
    DialectRow{D::kXlabs,                "xlabs",                  "",                  S::kDotted,     N::kXlabs,     F::kXlabs,   false, false, D::kNone,       {true, false, false, false, false, kF1}},
};

constexpr std::array kStyles = {
    StyleRow{Style::kKohya, "", D::kKohya, true},          StyleRow{Style::kComfy, "", D::kComfy, true},
    StyleRow{Style::kPeft, "peft", D::kAiToolkit, false},  StyleRow{Style::kBfl, "", D::kBfl, false},
    StyleRow{Style::kDiffusers, "", D::kDiffusers, false},
};

struct LayoutRow {
  OutputLayout layout;
  std::string_view name;
};
constexpr std::array kLayouts = {LayoutRow{OutputLayout::kBfl, "bfl"}, LayoutRow{OutputLayout::kDiffusers, "diffusers"}};

constexpr bool rows_in_enum_order() {
  for (size_t i = 0; i < kRows.size(); ++i)
    if (static_cast<size_t>(kRows[i].id) != i) return false;
  return true;
}
static_assert(rows_in_enum_order(), "kRows must list the dialects in the order of the Dialect enum");

}  // namespace

std::span<const DialectRow> dialect_rows() { return kRows; }

const DialectRow& dialect_row(Dialect d) {
  const auto i = static_cast<size_t>(d);
  return i < kRows.size() ? kRows[i] : kRows[0];
}

std::string_view dialect_name(Dialect d) { return dialect_row(d).name; }

std::optional<Dialect> dialect_from_name(std::string_view name) {
  for (const DialectRow& r : kRows)
    if (r.name == name) return r.id;
  return std::nullopt;
}

std::ostream& operator<<(std::ostream& o, Dialect d) { return o << dialect_name(d); }

Dialect refine_dialect(Dialect base, SuffixFamily family) {
  for (const DialectRow& r : kRows)
    if (r.refines == base && r.factors == family) return r.id;
  return base;
}

bool dialect_is_bfl_named(Dialect d) { return d != Dialect::kNone && dialect_row(d).naming != Naming::kDiffusers; }

std::string DialectTag::name() const {
  std::string s(dialect_name(id));
  if (lycoris) s += "+lycoris";
  return s;
}

bool operator==(const DialectTag& t, std::string_view name) { return t.name() == name; }

std::ostream& operator<<(std::ostream& o, const DialectTag& t) { return o << t.name(); }

std::span<const StyleRow> style_rows() { return kStyles; }

const StyleRow& style_row(Style s) {
  for (const StyleRow& r : kStyles)
    if (r.style == s) return r;
  return kStyles[0];
}

OutputLayout style_layout(Style s) {
  return dialect_row(style_row(s).writes).naming == Naming::kDiffusers ? OutputLayout::kDiffusers : OutputLayout::kBfl;
}

std::string_view style_name(Style s) {
  const StyleRow& r = style_row(s);
  return r.name.empty() ? dialect_name(r.writes) : r.name;
}

std::optional<Style> style_from_name(std::string_view s) {
  for (const StyleRow& r : kStyles)
    if (style_name(r.style) == s) return r.style;
  return std::nullopt;
}

std::string_view layout_name(OutputLayout l) {
  for (const LayoutRow& r : kLayouts)
    if (r.layout == l) return r.name;
  return "?";
}

std::optional<OutputLayout> layout_from_name(std::string_view s) {
  for (const LayoutRow& r : kLayouts)
    if (r.name == s) return r.layout;
  return std::nullopt;
}

}  // namespace lv
