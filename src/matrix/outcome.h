// What became of one cell of the compatibility matrix: an enum, and one table (outcome.cpp)
// that gives each outcome its name in compatibility.json, its marks in the Markdown and HTML
// renderings, and which columns can have it. Renderers and the JSON reader read that table.
#pragma once

#include <iosfwd>
#include <optional>
#include <span>
#include <string_view>

namespace lv::matrix {

enum class Outcome { kEquivalent, kNotEquivalent, kFailed, kTimedOut, kNoOutput, kUnreadableOutput, kRefused };

struct OutcomeInfo {
  Outcome outcome;
  std::string_view name;        // in compatibility.json, the notes and the legends
  std::string_view md_mark;     // a Markdown cell
  std::string_view html_mark;   // an HTML cell
  std::string_view html_class;  // its colour: eq, ne or rf
  bool converter_only;          // only a converter column (`--converter`) can have it
};

// Every outcome, in the order of the converter table's columns.
std::span<const OutcomeInfo> outcome_table();
const OutcomeInfo& info(Outcome o);
std::string_view outcome_name(Outcome o);
std::optional<Outcome> outcome_named(std::string_view name);
// Its name (test failures print it).
std::ostream& operator<<(std::ostream& o, Outcome outcome);

}  // namespace lv::matrix
