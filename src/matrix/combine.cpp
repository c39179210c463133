// Shards merged, baselines compared (see combine.h).
#include "matrix/combine.h"

#include <algorithm>
#include <map>
#include <set>

#include "matrix/variants.h"

namespace lv::matrix {
namespace {

std::string shard_name(int index, int count) { return "shard " + std::to_string(index) + "/" + std::to_string(count); }

// A shard that cannot belong with the first one: why, or "".
std::string mismatch(const MatrixResult& first, const MatrixResult& s) {
  const int count = first.shard_count;
  if (s.columns != first.columns) return "shards have different columns";
  if (s.description != first.description) return "shards describe different built-in variants (another lora-verify version?)";
  if (s.shard_count != count || s.total_rows != first.total_rows)
    return "shards come from different runs (shard counts or row totals differ)";
  if (count > 1 && s.run_fingerprint.empty())
    return shard_name(s.shard_index, count) +
           " has no run fingerprint (written by an older lora-verify?): re-run the shards to prove they come from one run";
  if (s.run_fingerprint != first.run_fingerprint)
    return "shards come from different runs: " + shard_name(first.shard_index, count) + " has run " + first.run_fingerprint +
           ", " + shard_name(s.shard_index, count) + " has run " + s.run_fingerprint +
           " (other variants, --filter, --no-builtin, inputs or version)";
  return "";
}

// The order of a single run: built-in variants in grid order, then inputs by path.
void sort_rows(std::vector<MatrixRow>& rows) {
  const auto names = builtin_variant_names();
  std::map<std::string, size_t> rank;
  for (size_t i = 0; i < names.size(); ++i) rank.emplace(names[i], i);
  auto key = [&](const MatrixRow& r) {
    auto it = r.builtin ? rank.find(r.variant) : rank.end();
    return std::make_pair(it == rank.end() ? names.size() + (r.builtin ? 0 : 1) : it->second, r.variant);
  };
  std::stable_sort(rows.begin(), rows.end(), [&](const MatrixRow& a, const MatrixRow& b) { return key(a) < key(b); });
}

}  // namespace

Result<MatrixResult> merge_matrices(const std::vector<MatrixResult>& shards) {
  if (shards.empty()) return make_error(ErrorCode::kUsage, "nothing to merge");
  const MatrixResult& first = shards[0];
  const int count = first.shard_count;
  MatrixResult m;
  m.columns = first.columns;
  m.description = first.description;
  std::set<int> indices;
  std::set<std::pair<bool, std::string>> seen;
  for (const auto& s : shards) {
    if (std::string why = mismatch(first, s); !why.empty()) return make_error(ErrorCode::kBadInput, why);
    if (count > 1 && !indices.insert(s.shard_index).second)
      return make_error(ErrorCode::kBadInput, shard_name(s.shard_index, count) + " is given twice");
    for (const auto& r : s.rows) {
      if (!seen.insert({r.builtin, r.variant}).second)
        return make_error(ErrorCode::kBadInput, "variant '" + r.variant + "' is in two shards");
      m.rows.push_back(r);
    }
  }
  const int64_t rows = static_cast<int64_t>(m.rows.size());
  if (count > 1) {
    for (int i = 0; i < count; ++i)
      if (!indices.count(i)) return make_error(ErrorCode::kBadInput, shard_name(i, count) + " is missing");
    if (rows != first.total_rows)
      return make_error(ErrorCode::kBadInput,
                        "the shards hold " + std::to_string(rows) + " rows, the run had " + std::to_string(first.total_rows));
  }
  m.total_rows = rows;
  sort_rows(m.rows);
  return m;
}

std::vector<MatrixChange> diff_against_baseline(const MatrixResult& baseline, const MatrixResult& current, bool partial) {
  std::vector<MatrixChange> out;
  std::map<std::string, const MatrixRow*> now, before;
  for (const auto& r : current.rows) now.emplace(r.variant, &r);
  for (const auto& r : baseline.rows) before.emplace(r.variant, &r);
  const std::string equivalent(outcome_name(Outcome::kEquivalent));
  for (const auto& old : baseline.rows) {
    auto it = now.find(old.variant);
    if (it == now.end()) {
      if (partial) continue;  // not run this time, not gone
      const bool worked =
          std::any_of(old.cells.begin(), old.cells.end(), [](const MatrixCell& c) { return c.outcome == Outcome::kEquivalent; });
      out.push_back({old.variant, "", "present", "missing", worked, false});
      continue;
    }
    for (const auto& oc : old.cells) {
      const std::string was(outcome_name(oc.outcome));
      std::string after = "missing";
      for (const auto& nc : it->second->cells)
        if (nc.column == oc.column) after = outcome_name(nc.outcome);
      if (after == was) continue;
      const bool was_ok = was == equivalent, is_ok = after == equivalent;
      out.push_back({old.variant, oc.column, was, after, was_ok && !is_ok, !was_ok && is_ok});
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
        c.was = outcome_named(ch.before);
        c.regression = ch.regression;
      }
  }
}

}  // namespace lv::matrix
