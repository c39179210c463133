// The adapters of examples/adapters graded against the measurements (issue 20): data/adapters/
// holds what `tools/loader-lab` (lab.grade) recorded when it ran each adapter as a
// `lora-verify matrix --converter` column over the measured files. This test needs no torch and
// no app: it re-derives every cell's grade from the recorded measurement and matrix cell, requires
// each cell to agree or to be a protocol limit (exit 3, ExpressError), recounts the table, and
// holds the recorded measurements to the committed data/loaders files they name.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sstream>

#include "support/lora_support.h"

using nlohmann::json;

namespace {

const std::string kData = std::string(LV_SOURCE_DIR) + "/data";

std::vector<std::string> grade_files() { return lv::test::json_files(kData + "/adapters"); }

json read_json(const std::string& path) { return json::parse(lv::test::read_file(path)); }

std::string norm(const std::string& s) {
  std::istringstream in(s);
  std::string word, out;
  while (in >> word) out += (out.empty() ? "" : " ") + word;
  return out;
}

bool starts_with(const std::string& s, const std::string& p) { return s.compare(0, p.size(), p) == 0; }

// The cell quotes the app's exception: lora-verify cuts a long line with '…', the runner keeps
// 600 characters of the measured one.
bool same_error(std::string got, std::string want) {
  got = norm(got);
  want = norm(want);
  const std::string ellipsis = "\u2026";
  if (got.size() >= ellipsis.size() && got.compare(got.size() - ellipsis.size(), ellipsis.size(), ellipsis) == 0) {
    std::string head = got.substr(0, got.size() - ellipsis.size());
    while (!head.empty() && head.back() == ' ') head.pop_back();
    if (starts_with(want, head)) return true;
  }
  return got == want || (want.size() >= 590 && starts_with(got, want));
}

// The grade lab/grade.py gives a cell, from the recorded measurement and matrix cell.
std::string regrade(const json& m, const json& cell) {
  const std::string outcome = cell["outcome"].get<std::string>(), reason = cell["reason"].get<std::string>();
  if (starts_with(reason, "exit code 3: ExpressError")) return "protocol-limit";
  if (m["outcome"] == "rejects") {
    const std::string prefix = "exit code 1: ";
    const std::string want = m["error"].is_string() ? m["error"].get<std::string>() : "";
    if (outcome != "failed" || !starts_with(reason, prefix)) return "disagree";
    if (same_error(reason.substr(prefix.size()), want)) return "agree";
    // Another exception: the grader reran the adapter under other hash seeds (an app iterating a
    // set raises on what it meets first) and recorded the run that raised the measured one.
    const json& again = cell.contains("reproduced") ? cell["reproduced"] : json();
    return again.is_object() && again["hash_seed"].get<int>() > 0 && same_error(again["error"].get<std::string>(), want)
               ? "agree" : "disagree";
  }
  // A --drop-unsupported output is measured against its source; its cell compares with the file:
  // what the file itself lacks is not expected in the cell.
  std::set<std::string> targets;
  for (const auto& t : m["targets"]) targets.insert(t.get<std::string>());
  for (const auto& t : cell.value("file_lacks", json::array())) targets.erase(t.get<std::string>());
  if (targets.empty()) return outcome == "equivalent" ? "agree" : "disagree";
  if (outcome != "not equivalent") return "disagree";
  static const std::regex count_re("not equivalent: (\\d+) of \\d+ modules");
  static const std::regex worst_re("([\\w.]+) \\((?:missing|different|invalid|extra)[^)]*\\)");
  std::smatch c;
  if (!std::regex_search(reason, c, count_re) || std::stoul(c[1].str()) != targets.size()) return "disagree";
  const auto at = reason.find("; worst: ");
  if (at != std::string::npos) {
    const std::string worst = reason.substr(at);
    for (std::sregex_iterator it(worst.begin(), worst.end(), worst_re), end; it != end; ++it)
      if (!targets.count((*it)[1].str())) return "disagree";
  }
  return "agree";
}

// A measurement file's records as lab.grade reads them: outcome, error, targets not applied exactly.
std::map<std::string, json> measured(const json& data) {
  std::map<std::string, json> out;
  for (const auto& f : data["files"]) {
    std::set<std::string> targets;
    for (const auto& p : f.value("not_applied", json::array())) targets.insert(p["target"].get<std::string>());
    out[f["name"].get<std::string>()] = {{"outcome", f["outcome"]}, {"error", f.value("error", json())},
                      {"targets", targets}, {"te_missing", f.value("text_encoders_not_applied", json::array()).size()},
                      {"convert", f.value("convert", json::array())}};
  }
  return out;
}

TEST(AdapterGrade, EveryCellAgreesOrIsAProtocolLimit) {
  const auto files = grade_files();
  ASSERT_FALSE(files.empty()) << "no grade in data/adapters (tools/loader-lab/grade-adapters.sh writes it)";
  for (const auto& path : files) {
    const json g = read_json(path);
    ASSERT_EQ(g["schema"], "lora-verify.adapter-grade/1") << path;
    ASSERT_FALSE(g["cells"].empty()) << path;
    std::map<std::string, std::map<std::string, std::map<std::string, int>>> table;
    for (const auto& c : g["cells"]) {
      const std::string what = c["app"].get<std::string>() + " / " + c["file"].get<std::string>();
      const std::string grade = c["grade"].get<std::string>();
      EXPECT_EQ(regrade(c["measured"], c["cell"]), grade) << path << ": " << what << ": the recorded grade does not follow from the cell";
      EXPECT_TRUE(grade == "agree" || grade == "protocol-limit")
          << path << ": " << what << ": " << c["why"].get<std::string>() << " (cell: " << c["cell"]["reason"].get<std::string>() << ")";
      EXPECT_FALSE(c["why"].get<std::string>().empty()) << what;
      table[c["app"].get<std::string>()][c["dialect"].get<std::string>()][grade]++;
    }
    for (const auto& [app, dialects] : g["table"].items())
      for (const auto& [dialect, counts] : dialects.items())
        for (const auto& [grade, n] : counts.items())
          EXPECT_EQ(n.get<int>(), table[app][dialect][grade]) << path << ": table " << app << " x " << dialect << " " << grade;
  }
}

TEST(AdapterGrade, MeasurementsAreTheCommittedOnesAndAllAreGraded) {
  std::vector<std::string> absent;
  for (const auto& path : grade_files()) {
    const json g = read_json(path);
    for (const auto& [app, info] : g["apps"].items()) {
      const std::string mpath = kData + "/loaders/" + info["measurement"].get<std::string>();
      if (!std::filesystem::exists(mpath)) {
        absent.push_back(app + ": " + mpath);
        continue;
      }
      const json data = read_json(mpath);
      EXPECT_EQ(data["commit"], info["commit"]) << path << ": " << app;
      const auto truth = measured(data);
      std::set<std::string> graded;
      for (const auto& c : g["cells"]) {
        if (c["app"].get<std::string>() != app) continue;
        const std::string name = c["file"].get<std::string>();
        graded.insert(name);
        auto it = truth.find(name);
        ASSERT_NE(it, truth.end()) << path << ": " << app << " / " << name << " is not in " << mpath;
        for (const char* k : {"outcome", "error", "targets", "te_missing"})
          EXPECT_EQ(c["measured"][k], it->second[k]) << path << ": " << app << " / " << name << ": " << k << " differs from " << mpath;
        if (!c["cell"].value("file_lacks", json::array()).empty()) {
          const json convert = it->second["convert"];
          EXPECT_TRUE(std::find(convert.begin(), convert.end(), json("--drop-unsupported")) != convert.end())
              << path << ": " << app << " / " << name << ": only a --drop-unsupported output may lack targets of its source";
        }
      }
      for (const auto& [name, m] : truth)
        if (m["outcome"] != "harness-error") {
          EXPECT_TRUE(graded.count(name)) << path << ": " << app << " / " << name << " is measured but not graded";
        }
    }
  }
  if (!absent.empty()) {
    std::string list;
    for (const auto& a : absent) list += "\n  " + a;
    GTEST_SKIP() << "checked the apps whose measurement is committed; not yet committed:" << list;
  }
}

}  // namespace
