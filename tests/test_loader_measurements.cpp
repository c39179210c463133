// The loader profiles against the measurements (issue 20): every file in data/loaders/*.json
// was loaded by an application's own code (tools/loader-lab); this test rebuilds each file from
// its recorded names, dtypes, shapes and metadata (values of its own), asks the profile table
// for its verdict and requires it to equal what the application did: the outcome, the tensors
// it did not apply (by target part, bias and text-encoder tensor) and, for a rejection, the
// error it raised. `unknown` verdicts are counted, never accepted as wrong; no torch needed.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>

#include "flux/layout.h"
#include "loaders/verdict.h"
#include "support/lora_support.h"

using namespace lv;
using nlohmann::json;

namespace {

std::vector<std::string> data_files() { return test::json_files(std::string(LV_SOURCE_DIR) + "/data/loaders"); }

json read_json(const std::string& path) { return json::parse(test::read_file(path)); }

// The file as recorded: its names, dtypes and shapes, its .alpha values (4 where the record
// has none), other values seeded.
LoraModel rebuild(const json& file, std::string& error) {
  std::vector<test::Tensor> tensors;
  uint64_t seed = std::hash<std::string>{}(file["name"].get<std::string>());
  for (const auto& t : file["tensors"]) {
    test::Tensor x;
    x.name = t[0].get<std::string>();
    x.dtype = *st::dtype_from_name(t[1].get<std::string>());
    size_t n = 1;
    for (const auto& d : t[2]) {
      x.shape.push_back(d.get<uint64_t>());
      n *= d.get<uint64_t>();
    }
    const double alpha = file.contains("alphas") ? file["alphas"].value(x.name, 4.0) : 4.0;
    x.values = x.name.size() > 6 && x.name.ends_with(".alpha") ? std::vector<double>(n, alpha)
                                                                : test::random_values(n, ++seed, 0.05);
    tensors.push_back(std::move(x));
  }
  std::map<std::string, std::string> meta;
  for (const auto& [k, v] : file["metadata"].items()) meta[k] = v.get<std::string>();
  auto f = st::SafetensorsFile::from_bytes(test::build_file(tensors, meta), file["name"].get<std::string>());
  if (!f.ok()) {
    error = f.error().message;
    return {};
  }
  auto m = load_lora(std::make_shared<const st::SafetensorsFile>(std::move(f).value()));
  if (!m.ok()) {
    error = m.error().message;
    return {};
  }
  return std::move(m).value();
}

// A quoted message with `<…>` placeholders for what depends on the file (any text, line breaks
// included), before any " — " explanation and before " (triggered by …)". The harness keeps
// the first kErrorChars characters of an error: a measured error that long is matched as far
// as the quote's first placeholder.
constexpr size_t kErrorChars = 600;

bool quote_matches(std::string quote, const std::string& measured) {
  if (auto p = quote.find(" (triggered by "); p != std::string::npos) quote.resize(p);
  if (auto p = quote.find(" — "); p != std::string::npos) quote.resize(p);
  if (measured.size() >= kErrorChars - 10) {
    const std::string head = quote.substr(0, quote.find('<'));
    return measured.compare(0, head.size(), head) == 0;
  }
  std::string re;
  for (size_t i = 0; i < quote.size(); ++i) {
    if (quote[i] == '<') {
      auto close = quote.find('>', i);
      if (close != std::string::npos) {
        re += "[\\s\\S]*";
        i = close;
        continue;
      }
    }
    if (std::string("\\^$.|?*+()[]{}").find(quote[i]) != std::string::npos) re += '\\';
    re += quote[i];
  }
  return std::regex_match(measured, std::regex(re));
}

using PartKey = std::tuple<std::string, std::string, int64_t, int64_t>;  // target, piece, rows

// The measured granularity: a target's parts (q, k, v, mlp of fused targets; else the whole).
std::vector<std::pair<int64_t, int64_t>> parts_of(const flux::Layout& layout, const std::string& target, int64_t rows) {
  std::vector<std::pair<int64_t, int64_t>> out;
  for (const auto& pm : flux::parts_of_target(layout, target)) out.emplace_back(pm.row_begin, pm.row_end);
  if (out.size() < 2) out = {{0, rows}};
  return out;
}

struct Predicted {
  std::set<PartKey> parts;
  std::set<std::string> text_encoders;
  bool metadata = false;  // the profile drops the metadata alpha: every scaled part may be wrong
};

Predicted predicted_drops(const LoraModel& model, const loaders::Verdict& v) {
  Predicted p;
  for (const auto& t : v.dropped) {
    using P = loaders::Item::Piece;
    if (t.piece == P::kPassThrough) {
      p.text_encoders.insert(t.tensor);
    } else if (t.piece == P::kMetadata) {
      p.metadata = true;
    } else {
      const Part& part = model.parts[t.index];
      const std::string piece = t.piece == P::kBias ? "bias" : "weight";
      for (auto [b, e] : parts_of(model.layout, part.target, part.target_rows))
        if (b < part.row_end && part.row_begin < e) p.parts.insert({part.target, piece, b, e});
    }
  }
  return p;
}

struct Tally {
  int agree = 0, wrong = 0, unknown = 0;
  // Table rows a measured file exercised that still cite code reading as their source.
  std::set<const loaders::Rule*> unmeasured_rules;
  std::set<const loaders::StyleSupport*> unmeasured_styles;
  std::set<const void*> exercised;  // rules and style entries the verdict rested on
};

// "ai-toolkit [metadata-…]": the first style entry of the profile holding the rule.
std::string style_of(const loaders::Profile& p, const loaders::Rule* r) {
  for (auto list : p.styles)
    for (const auto& s : list)
      for (const auto& rule : s.rules)
        if (&rule == r)
          return std::string(s.dialects.empty() ? "" : dialect_name(s.dialects[0])) + (list.data() == p.styles[1].data() && !list.empty() ? " FLUX.2" : "") +
                 (s.condition.empty() ? "" : " [" + std::string(s.condition) + "]");
  return "?";
}

std::string compare_one(const loaders::Profile& profile, const json& file, Tally& tally, std::string& dialect) {
  std::string error;
  LoraModel model = rebuild(file, error);
  if (!error.empty()) return "lora-verify cannot read the rebuilt file: " + error;
  dialect = dialect_name(loaders::describe(model).dialect);
  const loaders::Verdict v = loaders::evaluate(profile, loaders::describe(model));
  std::string measured = file["outcome"].get<std::string>();
  // What the app left out of what the file holds (a --drop-unsupported output's dropped bias
  // is not the app's drop: the app is judged on the file it was given).
  std::vector<json> not_applied;
  for (const auto& n : file.value("not_applied", json::array())) {
    const std::string target = n["target"].get<std::string>(), piece = n["piece"].get<std::string>();
    if (std::any_of(model.parts.begin(), model.parts.end(), [&](const Part& part) {
          return part.target == target && (piece == "weight" || part.bias != nullptr);
        }))
      not_applied.push_back(n);
  }
  std::set<std::string> held, te;
  for (const auto& t : file["tensors"]) held.insert(t[0].get<std::string>());
  for (const auto& n : file.value("text_encoders_not_applied", json::array()))
    if (held.count(n.get<std::string>())) te.insert(n.get<std::string>());
  if (measured == "drops" && not_applied.empty() && te.empty()) measured = "loads";
  if (v.outcome == loaders::Outcome::kUnknown) {
    ++tally.unknown;
    return "";
  }
  for (const loaders::Rule* r : v.rules) {
    tally.exercised.insert(r);
    if (!loaders::measured_source(r->source)) tally.unmeasured_rules.insert(r);
  }
  if (v.support) tally.exercised.insert(v.support);
  if (v.support && !loaders::measured_source(v.support->source)) tally.unmeasured_styles.insert(v.support);
  const std::string predicted(loaders::outcome_name(v.outcome));
  if (predicted != measured)
    return "predicted " + predicted + " (" + v.message + "), measured " + measured + " " +
           file.value("error", std::string());
  if (measured == "rejects" && !quote_matches(v.message, file["error"].get<std::string>()))
    return "rejects, but predicted error \"" + v.message + "\", measured \"" + file["error"].get<std::string>() + "\"";
  if (measured == "drops") {
    Predicted p = predicted_drops(model, v);
    std::set<PartKey> got;
    for (const auto& n : not_applied) {
      if (p.metadata && n["status"] == "wrong") continue;
      got.insert({n["target"].get<std::string>(), n["piece"].get<std::string>(), n["rows"][0].get<int64_t>(),
                  n["rows"][1].get<int64_t>()});
    }
    if (got != p.parts || te != p.text_encoders) {
      std::string d = "drops, but not the same tensors:";
      for (const auto& k : got)
        if (!p.parts.count(k)) d += " measured-only " + std::get<0>(k) + "/" + std::get<1>(k) + "@" + std::to_string(std::get<2>(k));
      for (const auto& k : p.parts)
        if (!got.count(k)) d += " predicted-only " + std::get<0>(k) + "/" + std::get<1>(k) + "@" + std::to_string(std::get<2>(k));
      for (const auto& k : te)
        if (!p.text_encoders.count(k)) d += " measured-only " + k;
      for (const auto& k : p.text_encoders)
        if (!te.count(k)) d += " predicted-only " + k;
      return d;
    }
  }
  ++tally.agree;
  return "";
}

TEST(LoaderMeasurements, DataNamesTheCommitsTheProfilesCite) {
  const auto files = data_files();
  ASSERT_FALSE(files.empty()) << "no measurement in data/loaders (tools/loader-lab/run.sh writes them)";
  for (const auto& path : files) {
    const json j = read_json(path);
    const loaders::Profile* p = loaders::find_profile(j["profile"].get<std::string>());
    ASSERT_NE(p, nullptr) << path;
    const std::string commit = j["commit"].get<std::string>();
    ASSERT_GE(commit.size(), 8u) << path;
    EXPECT_NE(std::string(p->established).find(commit.substr(0, 8)), std::string::npos)
        << path << ": the profile says it was established at \"" << p->established << "\", the data at " << commit;
    EXPECT_NE(std::string(p->measured).find(std::filesystem::path(path).filename().string()), std::string::npos)
        << p->name << " does not name its measurement " << path;
  }
}

TEST(LoaderMeasurements, ProfilesEqualWhatTheAppsDid) {
  std::map<std::pair<std::string, std::string>, Tally> table;
  std::set<std::string> stale;
  std::set<const void*> exercised;
  int measured = 0, wrong = 0, unknown = 0;
  for (const auto& path : data_files()) {
    const json j = read_json(path);
    const loaders::Profile* p = loaders::find_profile(j["profile"].get<std::string>());
    ASSERT_NE(p, nullptr) << path;
    for (const auto& file : j["files"]) {
      if (file["outcome"] == "harness-error") continue;
      std::string dialect = "?";
      Tally t;
      std::string why;
      try {
        why = compare_one(*p, file, t, dialect);
      } catch (const std::exception& e) {
        why = std::string("malformed record: ") + e.what();
      }
      if (!why.empty()) t.wrong = 1;
      for (const auto* r : t.unmeasured_rules)
        stale.insert(std::string(p->name) + ": rule " + std::string(loaders::kind_name(r->kind)) + " in " + style_of(*p, r) +
                     " (" + std::string(r->source) + ")");
      exercised.insert(t.exercised.begin(), t.exercised.end());
      for (const auto* s : t.unmeasured_styles)
        stale.insert(std::string(p->name) + ": style " + std::string(s->dialects.empty() ? "" : dialect_name(s->dialects[0])) + " " +
                     std::string(s->condition) + " (" + std::string(s->source) + ")");
      Tally& cell = table[{std::string(p->name), dialect}];
      cell.agree += t.agree;
      cell.wrong += t.wrong;
      cell.unknown += t.unknown;
      ++measured;
      wrong += t.wrong;
      unknown += t.unknown;
      EXPECT_TRUE(why.empty()) << p->name << " / " << file["name"].get<std::string>() << ": " << why;
    }
  }
  std::cout << "agreement (app x dialect: agree / wrong / unknown)\n";
  for (const auto& [key, t] : table)
    std::cout << "  " << key.first << " x " << key.second << ": " << t.agree << " / " << t.wrong << " / " << t.unknown << "\n";
  std::cout << measured << " measured (file, app) pairs: " << wrong << " wrong, " << unknown << " unknown\n";
  EXPECT_EQ(wrong, 0);
  // A fact a measurement confirmed cites it, and a fact citing a measurement was exercised by
  // it: reports tell measured verdicts from code reading.
  for (const auto& s : stale) ADD_FAILURE() << "exercised by a measured file but its source is not the measurement: " << s;
  for (const auto& p : loaders::profiles()) {
    std::vector<const loaders::StyleSupport*> entries;
    for (const auto& list : p.styles)
      for (const auto& st : list) entries.push_back(&st);
    for (const loaders::StyleSupport* e : entries) {
      const loaders::StyleSupport& st = *e;
      const bool data = std::string_view(st.source).find("data/loaders/") != std::string_view::npos;
      if (data && !exercised.count(&st))
        ADD_FAILURE() << p.name << ": style " << (st.dialects.empty() ? "" : dialect_name(st.dialects[0])) << " [" << st.condition
                      << "] cites " << st.source << " but no measured file used it";
      for (const auto& r : st.rules)
        if (std::string_view(r.source).find("data/loaders/") != std::string_view::npos && !exercised.count(&r))
          ADD_FAILURE() << p.name << ": rule " << loaders::kind_name(r.kind) << " in " << style_of(p, &r) << " cites "
                        << r.source << " but no measured file used it";
    }
  }
  EXPECT_LE(unknown * 20, measured) << "unknown above 5% of the measured pairs";
}

}  // namespace
