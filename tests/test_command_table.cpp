// The command table is the one source of the parser, every --help, the manual page, the
// unknown-command list and the bash completion: each is checked against the table here, so
// none can drift from another.
#include <gtest/gtest.h>

#include <cstdio>
#include <set>
#include <sstream>

#include "cli/commands.h"
#include "support/lora_support.h"

using lv::test::run_cli;

namespace {

std::vector<std::string> option_names(const lv::cli::Command& c) {
  std::vector<std::string> names;
  for (const auto& b : lv::cli::options_of(c)) {
    if (!b.option.alias.empty()) names.emplace_back(b.option.alias);
    names.emplace_back(b.option.name);
  }
  return names;
}

// Runs a shell command and returns its standard output.
std::string shell(const std::string& cmd) {
  std::string out;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return out;
  char buf[4096];
  for (size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;) out.append(buf, n);
  ::pclose(p);
  return out;
}

// What the generated completion offers for the words typed so far (the last is completed).
std::set<std::string> complete(const std::vector<std::string>& typed) {
  std::string words = "lora-verify";
  for (const auto& w : typed) words += " '" + w + "'";
  const std::string script = std::string(LV_BINARY_DIR) + "/lora-verify.bash-completion";
  const std::string cmd = "cd \"$(mktemp -d)\" && bash -c 'source " + script + "; COMP_WORDS=(" + words +
                          "); COMP_CWORD=" + std::to_string(typed.size()) +
                          "; _lora_verify; printf \"%s\\n\" \"${COMPREPLY[@]}\"' 2>&1";
  std::set<std::string> out;
  std::istringstream in(shell(cmd));
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) out.insert(line);
  return out;
}

std::set<std::string> as_set(const std::vector<std::string>& v) { return {v.begin(), v.end()}; }

}  // namespace

TEST(CommandTable, EveryHelpListsExactlyTheOptionsItsCommandTakes) {
  for (const auto& c : lv::cli::commands()) {
    auto h = run_cli({std::string(c.name), "--help"});
    ASSERT_EQ(h.exit_code, 0) << c.name;
    EXPECT_EQ(h.out, lv::cli::help_text(c));
    for (const auto& b : lv::cli::options_of(c))
      EXPECT_NE(h.out.find(std::string(b.option.name) + (b.option.value.empty() ? "" : " " + std::string(b.option.value))),
                std::string::npos)
          << c.name << " --help lacks " << b.option.name;
  }
  EXPECT_EQ(run_cli({"--help"}).out, lv::cli::help_text(lv::cli::top_level()));
}

TEST(CommandTable, TheParserTakesExactlyTheTablesOptions) {
  const auto all = lv::cli::commands();
  for (const auto& c : all) {
    const auto mine = as_set(option_names(c));
    // An option of another command is refused by name, with the list of what this one takes.
    for (const auto& other : all)
      for (const auto& name : option_names(other)) {
        if (mine.count(name) || name.rfind("--", 0) != 0) continue;
        const lv::cli::Option* o = lv::cli::find_option(name);
        std::vector<std::string> args = {std::string(c.name), name};
        if (!o->value.empty()) args.push_back("x");
        auto r = run_cli(args);
        EXPECT_EQ(r.exit_code, 64) << c.name << " " << name;
        EXPECT_NE(r.err.find("option " + name + " does not apply to " + std::string(c.name)), std::string::npos) << r.err;
        break;  // one foreign option per other command keeps this quick
      }
  }
  auto twice = run_cli({"sample", "x.safetensors", "--rank", "2", "--rank", "3"});
  EXPECT_EQ(twice.exit_code, 64);
  EXPECT_NE(twice.err.find("option --rank given twice"), std::string::npos) << twice.err;
  auto flag = run_cli({"compare", "a", "b", "--all=yes"});
  EXPECT_NE(flag.err.find("option --all takes no value"), std::string::npos) << flag.err;
  auto missing = run_cli({"convert", "a", "-o"});
  EXPECT_NE(missing.err.find("option --output needs a value"), std::string::npos) << missing.err;
}

TEST(CommandTable, UnknownCommandListsEveryCommand) {
  auto u = run_cli({"inspekt"});
  EXPECT_EQ(u.exit_code, 64);
  EXPECT_NE(u.err.find("did you mean inspect?"), std::string::npos) << u.err;
  EXPECT_NE(u.err.find("the commands are " + lv::cli::command_names()), std::string::npos) << u.err;
  const std::string names = lv::cli::command_names();
  EXPECT_EQ(std::count(names.begin(), names.end(), ','),
            static_cast<long>(lv::cli::commands().size()) - 1);
}

TEST(CommandTable, TheManualPageHasASectionPerCommand) {
  const std::string page = lv::test::read_file(std::string(LV_BINARY_DIR) + "/lora-verify.1");
  ASSERT_FALSE(page.empty()) << "the build writes lora-verify.1";
  EXPECT_EQ(page, lv::cli::manual_page(LV_VERSION));
  for (const auto& c : lv::cli::commands()) {
    std::string upper(c.name);
    for (char& ch : upper) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
    EXPECT_NE(page.find(".SH \"COMMAND " + upper + "\""), std::string::npos) << c.name;
  }
  // man renders it without a warning, when man is installed.
  if (!shell("command -v man").empty()) {
    const std::string warnings = shell("MANWIDTH=100 man --warnings -l " + std::string(LV_BINARY_DIR) +
                                       "/lora-verify.1 2>&1 >/dev/null");
    EXPECT_EQ(warnings, "");
  }
}

TEST(CommandTable, TheCompletionOffersEveryCommandOptionAndValue) {
  if (shell("command -v bash").empty()) GTEST_SKIP() << "no bash";
  std::set<std::string> commands;
  for (const auto& c : lv::cli::commands()) commands.insert(std::string(c.name));
  auto first = complete({""});
  for (const auto& c : commands) EXPECT_TRUE(first.count(c)) << c;
  for (const auto& c : lv::cli::commands()) {
    auto offered = complete({std::string(c.name), "-"});
    EXPECT_EQ(offered, as_set(option_names(c))) << c.name;
  }
  EXPECT_EQ(complete({"x.safetensors", "--for", ""}), as_set(lv::cli::choices(lv::cli::Values::kLoaders)));
  EXPECT_EQ(complete({"x.safetensors", "--model", ""}), as_set(lv::cli::choices(lv::cli::Values::kFamilies)));
  EXPECT_EQ(complete({"sample", "x", "--dialect", ""}), as_set(lv::cli::choices(lv::cli::Values::kDialects)));
  EXPECT_EQ(complete({"matrix", "--styles", ""}), as_set(lv::cli::choices(lv::cli::Values::kColumns)));
  EXPECT_TRUE(complete({"x.safetensors", "--threads", ""}).empty());
}
