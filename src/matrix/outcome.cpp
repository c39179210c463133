// The outcome table (see outcome.h).
#include "matrix/outcome.h"

#include <iterator>
#include <ostream>

namespace lv::matrix {
namespace {

constexpr bool kAnyColumn = false, kConverter = true;

// The rows are in enum order. Meanings:
//   equivalent         the output (or the round trip) applies the same deltas as the source
//   not equivalent     it does not; the note says which modules differ
//   failed             a converter exited non-zero or was killed by a signal
//   timed out          a converter gave no result within --converter-timeout
//   no output          a converter exited 0 without writing {out}
//   unreadable output  {out} is no file lora-verify reads, or it reached --converter-max-output
//   refused            lora-verify could not read the input, or refuses to convert it
constexpr OutcomeInfo kOutcomes[] = {
    // outcome                    name                 Markdown  HTML           class  columns
    {Outcome::kEquivalent,        "equivalent",        "✅",     "✓",           "eq",  kAnyColumn},
    {Outcome::kNotEquivalent,     "not equivalent",    "❌",     "✗",           "ne",  kAnyColumn},
    {Outcome::kFailed,            "failed",            "💥",     "failed",      "rf",  kConverter},
    {Outcome::kTimedOut,          "timed out",         "⏱️",     "timed out",   "rf",  kConverter},
    {Outcome::kNoOutput,          "no output",         "∅",      "no output",   "rf",  kConverter},
    {Outcome::kUnreadableOutput,  "unreadable output", "🗑️",     "unreadable",  "rf",  kConverter},
    {Outcome::kRefused,           "refused",           "⛔",     "refused",     "rf",  kAnyColumn},
};

constexpr bool in_enum_order() {
  for (size_t i = 0; i < std::size(kOutcomes); ++i)
    if (static_cast<size_t>(kOutcomes[i].outcome) != i) return false;
  return true;
}
static_assert(in_enum_order(), "info() indexes the table by the enum");

}  // namespace

std::span<const OutcomeInfo> outcome_table() { return kOutcomes; }

const OutcomeInfo& info(Outcome o) { return kOutcomes[static_cast<size_t>(o)]; }

std::string_view outcome_name(Outcome o) { return info(o).name; }

std::optional<Outcome> outcome_named(std::string_view name) {
  for (const OutcomeInfo& i : kOutcomes)
    if (i.name == name) return i.outcome;
  return std::nullopt;
}

std::ostream& operator<<(std::ostream& o, Outcome outcome) { return o << outcome_name(outcome); }

}  // namespace lv::matrix
