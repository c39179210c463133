// The dialect table: one row per LoRA key dialect (docs/formats.md#key-dialects) saying how
// its keys are spelled and what it can hold. The key parser, the converter's output styles,
// the sample generator, the loader verdicts, the matrix and the CLI all read these rows;
// adding a dialect is adding a row (and its tests).
#pragma once

#include <cstdint>
#include <optional>
#include <ostream>
#include <span>
#include <string>
#include <string_view>

namespace lv {

enum class Dialect : uint8_t {
  kNone,  // a file with no LoRA tensor in any dialect
  kDiffusers, kDiffusersOld, kDiffusersKohyaSuffix, kFal, kFalKontext, kOneTrainer, kLycoris,
  kKohya, kComfy, kComfyBare, kAiToolkit, kBfl, kOneTrainerBfl, kXlabs,
};

// How the module part of a name is spelled once the prefix is stripped.
enum class Naming {
  kDiffusers,  // "single_transformer_blocks.0.attn.to_q"
  kBfl,        // "single_blocks.0.linear1" (optionally with a split index)
  kXlabs,      // "double_blocks.0.processor.qkv_lora1"
};

// How the module follows the prefix: dotted, or with every dot an underscore.
enum class Spelling { kDotted, kUnderscored };

// Families of tensor-name suffixes: PEFT (lora_A/B), old PEFT (lora.down/up), kohya
// (lora_down/up), XLabs (down/up), LyCORIS adapters, dense diffs, DoRA magnitudes, alpha.
enum class SuffixFamily { kPeft, kPeftOld, kKohya, kXlabs, kLycoris, kDiff, kDora, kAlpha };

struct DialectRow {
  Dialect id;
  std::string_view name;  // the stable id in reports, JSON and `sample --dialect`
  // How its keys are spelled: prefix + module (in `naming`, spelled as `spelling`) + a suffix
  // of `factors`.
  std::string_view prefix;
  Spelling spelling;
  Naming naming;
  SuffixFamily factors;
  bool bare_prefix_read;  // also read with no prefix at all
  bool split_parts;       // a fused target's parts are separate modules with an index (.0 … .3)
  // A file in `refines`'s prefix and naming whose factors have this row's suffixes is read as
  // this dialect (kNone: the prefix and naming alone name it).
  Dialect refines;
  // The sample generator writes it, and what it can hold there; `archs`: the architectures
  // (flux::Arch bits) whose spelling in this dialect a source establishes.
  struct Generated {
    bool writes, alpha, bias, no_proj_mlp, metadata_alpha;
    uint8_t archs;
  } generated;
};

std::span<const DialectRow> dialect_rows();
const DialectRow& dialect_row(Dialect d);
std::string_view dialect_name(Dialect d);
std::optional<Dialect> dialect_from_name(std::string_view name);
std::ostream& operator<<(std::ostream& o, Dialect d);
// The dialect a file with `base`'s prefix and naming is in when its suffixes are `family`'s.
Dialect refine_dialect(Dialect base, SuffixFamily family);
// True when its module names are BFL's: its natural conversion goes to the diffusers layout.
bool dialect_is_bfl_named(Dialect d);

// The dialect of one tensor, or of a file: a key dialect, possibly holding LyCORIS adapter
// forms under its names ("kohya+lycoris").
struct DialectTag {
  Dialect id = Dialect::kNone;
  bool lycoris = false;
  std::string name() const;
  auto operator<=>(const DialectTag&) const = default;
};
bool operator==(const DialectTag& t, std::string_view name);
std::ostream& operator<<(std::ostream& o, const DialectTag& t);

// Output layouts and key styles of the converter.
enum class OutputLayout { kBfl, kDiffusers };

// Key spelling of the output. BFL layout: kKohya, kComfy, kPeft, kBfl. Diffusers layout:
// kDiffusers (transformer.<module>.lora_A/lora_B).
enum class Style { kKohya, kComfy, kPeft, kBfl, kDiffusers };

struct StyleRow {
  Style style;
  std::string_view name;  // `--style` / matrix column; empty: the dialect's name
  Dialect writes;         // the dialect its output is read as
  bool alpha_tensors;     // an .alpha beside each low-rank module
};
std::span<const StyleRow> style_rows();
const StyleRow& style_row(Style s);
OutputLayout style_layout(Style s);

std::string_view style_name(Style s);
std::optional<Style> style_from_name(std::string_view s);
std::string_view layout_name(OutputLayout l);
std::optional<OutputLayout> layout_from_name(std::string_view s);

}  // namespace lv
