// The lora-verify binary end to end: commands, exit codes, error lines, report files.
#include <gtest/gtest.h>

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include <sys/wait.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "support/lora_support.h"

using lv::test::run_cli;

namespace {

std::string slurp(const std::string& p) { return lv::test::read_file(p); }

class Cli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = lv::test::temp_dir();
    sample_ = dir_ + "/sample.safetensors";
    auto r = run_cli({"sample", sample_, "--tiny", "--rank", "3", "--no-proj-mlp", "--bias"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string dir_, sample_;
};

int error_lines(const std::string& err) {
  int n = 0;
  std::istringstream in(err);
  for (std::string line; std::getline(in, line);) n += line.rfind("error: ", 0) == 0;
  return n;
}

// Entries of `dir` whose name holds ".tmp." (the writer's temporaries).
int temporaries(const std::string& dir) {
  int n = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) n += e.path().filename().string().find(".tmp.") != std::string::npos;
  return n;
}

// Starts the CLI with `env` added (NAME=VALUE), stdout to `out`, stderr to `err`; returns
// its pid.
pid_t spawn_cli(const std::vector<std::string>& args, const std::vector<std::string>& env,
                const std::string& out = "/dev/null", const std::string& err = "/dev/null",
                const std::string& in = "/dev/null", const std::string& cwd = "") {
  pid_t pid = fork();
  if (pid == 0) {
    for (const auto& e : env) putenv(strdup(e.c_str()));
    if (!cwd.empty() && chdir(cwd.c_str()) != 0) _exit(126);
    FILE* i = std::freopen(in.c_str(), "r", stdin);
    (void)i;
    FILE* o = std::freopen(out.c_str(), "w", stdout);
    FILE* r = std::freopen(err.c_str(), "w", stderr);
    (void)o;
    (void)r;
    std::vector<std::string> copy = args;
    std::string bin = LV_CLI_PATH;
    std::vector<char*> argv{bin.data()};
    for (auto& a : copy) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(bin.c_str(), argv.data());
    _exit(127);
  }
  return pid;
}

// Waits for `pid`; returns the shell-style status (128 + signal when killed).
int wait_status(pid_t pid) {
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

}  // namespace

TEST_F(Cli, HelpAndVersion) {
  auto h = run_cli({"--help"});
  EXPECT_EQ(h.exit_code, 0);
  EXPECT_NE(h.out.find("exit codes"), std::string::npos);
  EXPECT_NE(h.out.find("compare SOURCE.safetensors CONVERTED.safetensors"), std::string::npos);
  auto v = run_cli({"--version"});
  EXPECT_EQ(v.exit_code, 0);
  EXPECT_EQ(v.out, std::string("lora-verify ") + LV_VERSION + "\n");
}

TEST_F(Cli, UsageErrorsExit64) {
  for (const auto& args : std::vector<std::vector<std::string>>{
           {}, {"--bogus"}, {sample_, "--to", "sideways"}, {sample_, "--style", "x"}, {"convert", sample_}, {"compare", sample_},
           {sample_, "--threads", "0"}}) {
    auto r = run_cli(args);
    EXPECT_EQ(r.exit_code, 64) << r.err;
    EXPECT_EQ(error_lines(r.err), 1) << r.err;
  }
}

TEST_F(Cli, MissingFileExits66AndMalformedExits65) {
  auto missing = run_cli({dir_ + "/nope.safetensors"});
  EXPECT_EQ(missing.exit_code, 66);
  EXPECT_EQ(error_lines(missing.err), 1);
  EXPECT_NE(missing.err.find("nope.safetensors"), std::string::npos);
  std::string bad = dir_ + "/bad.safetensors";
  std::ofstream(bad, std::ios::binary) << std::string("\x10\0\0\0\0\0\0\0{\"a\":1}        ", 23);
  for (const char* cmd : {"inspect", "verify"}) {
    auto r = run_cli({cmd, bad});
    EXPECT_EQ(r.exit_code, 65) << cmd << r.err;
    EXPECT_EQ(error_lines(r.err), 1) << r.err;
    EXPECT_NE(r.err.find("bad.safetensors"), std::string::npos) << r.err;
  }
}

TEST_F(Cli, VerifyPassesOnTheSampleAndWritesReports) {
  auto r = run_cli({sample_, "--json", dir_ + "/r.json", "--markdown", dir_ + "/r.md"});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_EQ(r.out.rfind("PASS: equivalent", 0), 0u) << r.out;
  EXPECT_NE(r.out.find("missing parts zero-filled"), std::string::npos);
  auto j = nlohmann::json::parse(slurp(dir_ + "/r.json"));
  EXPECT_EQ(j["verdict"], "pass");
  EXPECT_EQ(j["dialect"], "diffusers");
  EXPECT_EQ(j["summary"]["zero_filled_parts"], 2);  // two single blocks without proj_mlp
  ASSERT_FALSE(j["modules"].empty());
  for (const char* key : {"target", "status", "relative_error", "tolerance", "ranks_in", "ranks_out"})
    EXPECT_TRUE(j["modules"][0].contains(key)) << key;
  EXPECT_NE(slurp(dir_ + "/r.md").find("| target | status |"), std::string::npos);
  // Deterministic bytes for the same input.
  auto again = run_cli({sample_, "--json", "-"});
  EXPECT_EQ(again.out, slurp(dir_ + "/r.json"));
}

TEST_F(Cli, ConvertWritesAVerifiedFileAndNeverTheInput) {
  std::string out = dir_ + "/out.safetensors";
  auto r = run_cli({"convert", sample_, "-o", out, "--style", "comfy"});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_TRUE(std::filesystem::exists(out));
  auto cmp = run_cli({"compare", sample_, out});
  EXPECT_EQ(cmp.exit_code, 0) << cmp.out;
  std::string before = slurp(sample_);
  auto self = run_cli({"convert", sample_, "-o", sample_});
  EXPECT_EQ(self.exit_code, 73) << self.err;
  EXPECT_EQ(slurp(sample_), before);
  // Back to diffusers, then compare against the original.
  std::string back = dir_ + "/back.safetensors";
  EXPECT_EQ(run_cli({"convert", out, "-o", back}).exit_code, 0);
  EXPECT_EQ(run_cli({"compare", sample_, back}).exit_code, 0);
}

TEST_F(Cli, CompareFailsOnAWrongConversionWithExit1) {
  std::string other = dir_ + "/other.safetensors";
  ASSERT_EQ(run_cli({"sample", other, "--tiny", "--rank", "3", "--seed", "99", "--dialect", "kohya"}).exit_code, 0);
  auto r = run_cli({"compare", sample_, other, "--json", "-"});
  EXPECT_EQ(r.exit_code, 1);
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["verdict"], "fail");
  EXPECT_GT(j["summary"]["not_equivalent"].get<int>(), 0);
}

TEST_F(Cli, InspectDescribesTheContainerAndDialect) {
  auto r = run_cli({"inspect", sample_});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("valid safetensors"), std::string::npos);
  EXPECT_NE(r.out.find("dialect: diffusers"), std::string::npos) << r.out;
  auto j = run_cli({"inspect", sample_, "--json"});
  EXPECT_EQ(j.exit_code, 0);
  auto parsed = nlohmann::json::parse(j.out);
  EXPECT_EQ(parsed["valid"], true);
  EXPECT_EQ(parsed["dialect"], "diffusers");
}

// A signal during convert's write removes the temporary file and leaves the old output as
// it was. LV_TEST_WRITE_DELAY_MS (a documented test hook) slows each write so the signal
// lands mid-write.
TEST_F(Cli, SignalDuringConvertRemovesTheTemporaryAndKeepsTheOldOutput) {
  std::string big = dir_ + "/big.safetensors";
  ASSERT_EQ(run_cli({"sample", big, "--tiny", "--rank", "64"}).exit_code, 0);
  for (int sig : {SIGTERM, SIGINT}) {
    std::string out = dir_ + "/out.safetensors";
    { std::ofstream(out, std::ios::binary) << "previous output"; }
    pid_t pid = spawn_cli({"convert", big, "-o", out}, {"LV_TEST_WRITE_DELAY_MS=100"});
    bool seen = false;
    for (int i = 0; i < 2000 && !seen; ++i) {
      seen = temporaries(dir_) > 0;
      if (!seen) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    ASSERT_TRUE(seen) << "the temporary file never appeared";
    kill(pid, sig);
    EXPECT_EQ(wait_status(pid), 128 + sig);
    EXPECT_EQ(temporaries(dir_), 0) << "signal " << sig;
    EXPECT_EQ(slurp(out), "previous output");
  }
}

// A report that cannot be written to standard output is an I/O error, never a success.
TEST_F(Cli, AFailedWriteToStandardOutputExits74) {
  ASSERT_TRUE(std::filesystem::exists("/dev/full"));
  const std::string err = dir_ + "/stderr";
  for (const auto& args : std::vector<std::vector<std::string>>{{sample_},
                                                                {sample_, "--json", "-"},
                                                                {sample_, "--markdown", "-"},
                                                                {"inspect", sample_, "--json"},
                                                                {"inspect", sample_},
                                                                {"--help"}}) {
    EXPECT_EQ(wait_status(spawn_cli(args, {}, "/dev/full", err)), 74) << args.back();
    std::string e = slurp(err);
    EXPECT_EQ(error_lines(e), 1) << e;
    EXPECT_NE(e.find("standard output"), std::string::npos) << e;
  }
}

// The output's metadata names the input file, not the path it was typed with.
TEST_F(Cli, OutputMetadataRecordsTheInputFileNameOnly) {
  std::string out = dir_ + "/out.safetensors";
  ASSERT_EQ(run_cli({"convert", sample_, "-o", out}).exit_code, 0);
  auto j = run_cli({"inspect", out, "--json"});
  ASSERT_EQ(j.exit_code, 0) << j.err;
  EXPECT_EQ(nlohmann::json::parse(j.out)["metadata"]["lora_verify.source"], "sample.safetensors");
}

// An option a command does not use is a usage error naming the option and the command,
// and nothing is written.
TEST_F(Cli, OptionsThatDoNotApplyToTheCommandAreUsageErrors) {
  const std::string out = dir_ + "/q.safetensors";
  struct Case {
    std::vector<std::string> args;
    std::string option, command;
  };
  for (const auto& c : std::vector<Case>{{{sample_, "-o", out}, "-o", "verify"},
                                         {{"verify", sample_, "--output", out}, "--output", "verify"},
                                         {{sample_, "--rank", "3"}, "--rank", "verify"},
                                         {{"compare", sample_, sample_, "--style", "comfy"}, "--style", "compare"},
                                         {{"compare", sample_, sample_, "--dtype", "F16"}, "--dtype", "compare"},
                                         {{"compare", sample_, sample_, "-o", out}, "-o", "compare"},
                                         {{"compare", sample_, sample_, "--to", "bfl"}, "--to", "compare"},
                                         {{"inspect", sample_, "--style", "kohya"}, "--style", "inspect"},
                                         {{"inspect", sample_, "--all"}, "--all", "inspect"},
                                         {{"inspect", sample_, "--threads", "2"}, "--threads", "inspect"},
                                         {{"sample", out, "--json", dir_ + "/j.json"}, "--json", "sample"},
                                         {{"sample", out, "--style", "comfy"}, "--style", "sample"},
                                         {{"convert", sample_, "-o", out, "--dialect", "kohya"}, "--dialect", "convert"},
                                         {{"convert", sample_, "-o", out, "--tiny"}, "--tiny", "convert"}}) {
    auto r = run_cli(c.args);
    EXPECT_EQ(r.exit_code, 64) << c.option << " " << r.err;
    EXPECT_EQ(error_lines(r.err), 1) << r.err;
    EXPECT_NE(r.err.find("option " + c.option + " does not apply to " + c.command), std::string::npos) << r.err;
    EXPECT_FALSE(std::filesystem::exists(out)) << c.option;
    EXPECT_FALSE(std::filesystem::exists(dir_ + "/j.json"));
  }
  auto inspect_value = run_cli({"inspect", sample_, "--json=" + out});
  EXPECT_EQ(inspect_value.exit_code, 64) << inspect_value.err;
  EXPECT_FALSE(std::filesystem::exists(out));
  // What the commands do use still works.
  EXPECT_EQ(run_cli({"compare", sample_, sample_, "--json", dir_ + "/c.json", "--markdown", dir_ + "/c.md", "--all",
                     "--threads", "1"}).exit_code, 0);
  EXPECT_EQ(run_cli({"convert", sample_, "-o", out, "--style", "comfy", "--dtype", "F32", "--no-dense", "--all"}).exit_code, 0);
  EXPECT_EQ(run_cli({"sample", dir_ + "/s.safetensors", "--tiny", "--dtype", "F16", "--rank", "2", "--seed", "3"}).exit_code, 0);
}

// Two outputs to one destination are refused before anything is written.
TEST_F(Cli, TwoOutputsToOneDestinationAreRefused) {
  const std::string r = dir_ + "/r.txt", out = dir_ + "/out.safetensors";
  std::filesystem::create_symlink(r, dir_ + "/link.txt");
  for (const auto& args : std::vector<std::vector<std::string>>{
           {sample_, "--json", "-", "--markdown", "-"},
           {sample_, "--json", r, "--markdown", r},
           {sample_, "--json", r, "--markdown", dir_ + "/./r.txt"},
           {sample_, "--json", r, "--markdown", dir_ + "/link.txt"},
           {"compare", sample_, sample_, "--json", r, "--markdown", r},
           {"convert", sample_, "-o", out, "--json", out}}) {
    auto res = run_cli(args);
    EXPECT_EQ(res.exit_code, 64) << args.back() << res.err;
    EXPECT_EQ(error_lines(res.err), 1) << res.err;
    EXPECT_NE(res.err.find("both write to"), std::string::npos) << res.err;
    EXPECT_FALSE(std::filesystem::exists(r));
    EXPECT_FALSE(std::filesystem::exists(out));
  }
  EXPECT_EQ(run_cli({sample_, "--json", "-", "--markdown", r}).exit_code, 0);
}

// A mistyped command says so and lists the commands; -h is --help; each command has its
// own help with its options and an example.
TEST_F(Cli, UnknownCommandsAndPerCommandHelp) {
  auto r = run_cli({"convrt", sample_, "-o", dir_ + "/x.safetensors"});
  EXPECT_EQ(r.exit_code, 64) << r.err;
  EXPECT_EQ(error_lines(r.err), 1) << r.err;
  EXPECT_NE(r.err.find("unknown command 'convrt'"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("did you mean convert?"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("verify, convert, compare, inspect, sample, matrix"), std::string::npos) << r.err;
  // Paths are still inputs: a missing file with an extension or a separator is exit 66.
  EXPECT_EQ(run_cli({"nope.safetensors"}).exit_code, 66);
  EXPECT_EQ(run_cli({dir_ + "/nope"}).exit_code, 66);
  auto h = run_cli({"-h"});
  EXPECT_EQ(h.exit_code, 0);
  EXPECT_EQ(h.out, run_cli({"--help"}).out);
  struct Case {
    std::string command, option;
  };
  for (const auto& c : std::vector<Case>{{"verify", "--no-dense"},
                                         {"convert", "-o, --output"},
                                         {"compare", "--threads"},
                                         {"inspect", "--json"},
                                         {"sample", "--dialect"}}) {
    for (const char* flag : {"--help", "-h"}) {
      auto ch = run_cli({c.command, flag});
      EXPECT_EQ(ch.exit_code, 0) << c.command;
      EXPECT_EQ(ch.out.rfind("lora-verify " + c.command + " —", 0), 0u) << ch.out;
      EXPECT_NE(ch.out.find(c.option), std::string::npos) << ch.out;
      EXPECT_TRUE(ch.out.find("example:\n  lora-verify ") != std::string::npos ||
                  ch.out.find("examples:\n  lora-verify ") != std::string::npos)
          << ch.out;
      EXPECT_NE(ch.out, h.out);
    }
  }
  EXPECT_EQ(run_cli({"compare", "--help"}).out.find("--style"), std::string::npos);
  // A usage error of a command points at its own help.
  auto u = run_cli({"compare", sample_, sample_, "--style", "comfy"});
  EXPECT_NE(u.err.find("see lora-verify compare --help"), std::string::npos) << u.err;
}

// sample refuses an alpha F32 cannot hold and options its dialect cannot hold.
TEST_F(Cli, SampleRefusesValuesAndOptionsItCannotWrite) {
  const std::string out = dir_ + "/s.safetensors";
  for (const char* alpha : {"inf", "-inf", "nan", "1e39", "1e-50", "0", "-2", "3x"}) {
    auto r = run_cli({"sample", out, "--tiny", "--alpha", alpha});
    EXPECT_EQ(r.exit_code, 64) << alpha;
    EXPECT_EQ(error_lines(r.err), 1) << r.err;
    EXPECT_NE(r.err.find(std::string("got '") + alpha + "'"), std::string::npos) << r.err;
    EXPECT_FALSE(std::filesystem::exists(out)) << alpha;
  }
  struct Case {
    std::vector<std::string> extra;
    std::string needle;
  };
  for (const auto& c : std::vector<Case>{{{"--dialect", "xlabs", "--bias"}, "--bias does not apply to --dialect xlabs"},
                                         {{"--dialect", "xlabs", "--alpha", "2"}, "--alpha does not apply to --dialect xlabs"},
                                         {{"--dialect", "diffusers-old", "--alpha", "2"}, "--alpha does not apply"},
                                         {{"--dialect", "onetrainer-bfl", "--bias"}, "--bias does not apply"},
                                         {{"--dialect", "kohya", "--no-proj-mlp"}, "--no-proj-mlp does not apply"},
                                         {{"--dialect", "foo"}, "unknown dialect 'foo'; sample writes diffusers, diffusers-old"}}) {
    std::vector<std::string> args = {"sample", out, "--tiny"};
    args.insert(args.end(), c.extra.begin(), c.extra.end());
    auto r = run_cli(args);
    EXPECT_EQ(r.exit_code, 64) << c.needle;
    EXPECT_NE(r.err.find(c.needle), std::string::npos) << r.err;
    EXPECT_FALSE(std::filesystem::exists(out)) << c.needle;
  }
  EXPECT_EQ(run_cli({"sample", out, "--tiny", "--alpha", "3e38", "--bias", "--no-proj-mlp"}).exit_code, 0);
  EXPECT_EQ(run_cli({"sample", out, "--tiny", "--dialect", "kohya", "--alpha", "8", "--bias"}).exit_code, 0);
}

// An input that cannot be opened names the reason.
TEST_F(Cli, CannotOpenNamesTheReason) {
  auto r = run_cli({"matrix", "--merge", dir_ + "/nope.json", "--out", dir_ + "/m"});
  EXPECT_EQ(r.exit_code, 66) << r.err;
  EXPECT_NE(r.err.find("nope.json: cannot open: No such file or directory"), std::string::npos) << r.err;
  // A JSON report given as a LoRA is named as such.
  ASSERT_EQ(run_cli({sample_, "--json", dir_ + "/r.json"}).exit_code, 0);
  auto j = run_cli({"inspect", dir_ + "/r.json"});
  EXPECT_EQ(j.exit_code, 65);
  EXPECT_NE(j.err.find("r.json: not a safetensors file: it starts with '{' like a JSON file"), std::string::npos) << j.err;
}

// matrix --out writes its three files as a set: a failure on one leaves all as they were.
TEST_F(Cli, MatrixWritesItsThreeFilesAllOrNone) {
  const std::string out = dir_ + "/m";
  std::filesystem::create_directory(out);
  { std::ofstream(out + "/compatibility.md") << "previous"; }
  std::filesystem::create_directory(out + "/compatibility.json");  // the JSON cannot be written
  auto r = run_cli({"matrix", "--filter", "xlabs / complete / F32", "--out", out});
  EXPECT_EQ(r.exit_code, 73) << r.out << r.err;
  EXPECT_EQ(error_lines(r.err), 1) << r.err;
  EXPECT_EQ(slurp(out + "/compatibility.md"), "previous");
  EXPECT_FALSE(std::filesystem::exists(out + "/compatibility.html"));
  EXPECT_EQ(temporaries(out), 0);
}

// A matrix that checked nothing, or whose only inputs all fail, does not pass.
TEST_F(Cli, MatrixThatCheckedNothingOrWhoseInputsAllFailExits1) {
  const std::string out = dir_ + "/m";
  auto none = run_cli({"matrix", "--filter", "nomatch", "--out", out});
  EXPECT_EQ(none.exit_code, 1) << none.out << none.err;
  EXPECT_NE(none.out.find("the matrix checked nothing: no built-in variant matches --filter 'nomatch'"), std::string::npos)
      << none.out;
  EXPECT_FALSE(std::filesystem::exists(out + "/compatibility.json"));
  const std::string bad = dir_ + "/bad.safetensors";
  { std::ofstream(bad) << "garbage"; }
  auto failing = run_cli({"matrix", "--no-builtin", "--out", out, bad});
  EXPECT_EQ(failing.exit_code, 1) << failing.out << failing.err;
  EXPECT_NE(failing.out.find("none of the 1 input converts equivalently"), std::string::npos) << failing.out;
  EXPECT_TRUE(std::filesystem::exists(out + "/compatibility.json"));  // the failures are reported
  // One good input among them: the run passes (a broken input is a row, not a failure).
  EXPECT_EQ(run_cli({"matrix", "--no-builtin", "--out", out, bad, sample_}).exit_code, 0);
}

// A merge proves its shards come from one run: equal row totals are not enough.
TEST_F(Cli, MatrixMergeRefusesShardsOfDifferentRuns) {
  const std::string a = "xlabs / complete", b = "kohya / complete";  // 3 rows each
  ASSERT_EQ(run_cli({"matrix", "--filter", a, "--shard", "0/2", "--out", dir_ + "/a0"}).exit_code, 0);
  ASSERT_EQ(run_cli({"matrix", "--filter", a, "--shard", "1/2", "--out", dir_ + "/a1"}).exit_code, 0);
  ASSERT_EQ(run_cli({"matrix", "--filter", b, "--shard", "1/2", "--out", dir_ + "/b1"}).exit_code, 0);
  auto mixed = run_cli({"matrix", "--merge", dir_ + "/a0/compatibility.json", dir_ + "/b1/compatibility.json", "--out", dir_ + "/m"});
  EXPECT_EQ(mixed.exit_code, 65) << mixed.out << mixed.err;
  EXPECT_EQ(error_lines(mixed.err), 1) << mixed.err;
  EXPECT_NE(mixed.err.find("shards come from different runs"), std::string::npos) << mixed.err;
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/m/compatibility.json"));
  auto same = run_cli({"matrix", "--merge", dir_ + "/a0/compatibility.json", dir_ + "/a1/compatibility.json", "--out", dir_ + "/m"});
  EXPECT_EQ(same.exit_code, 0) << same.out << same.err;
  EXPECT_NE(same.out.find("3 of 3 variants equivalent"), std::string::npos) << same.out;
  // A shard without a fingerprint (an older file) proves nothing.
  auto j = nlohmann::json::parse(slurp(dir_ + "/a1/compatibility.json"));
  j["shard"].erase("run");
  { std::ofstream(dir_ + "/old.json") << j.dump(); }
  auto old = run_cli({"matrix", "--merge", dir_ + "/a0/compatibility.json", dir_ + "/old.json", "--out", dir_ + "/m2"});
  EXPECT_EQ(old.exit_code, 65) << old.err;
  EXPECT_NE(old.err.find("no run fingerprint"), std::string::npos) << old.err;
}

// '-' is standard input for inputs and standard output for convert -o and sample; never a
// file named '-'.
TEST_F(Cli, DashIsStandardInputAndOutput) {
  const std::string work = dir_ + "/work", out = dir_ + "/stdout", err = dir_ + "/stderr";
  std::filesystem::create_directory(work);
  auto run_io = [&](const std::vector<std::string>& args, const std::string& in) {
    return wait_status(spawn_cli(args, {}, out, err, in, work));
  };
  // Inputs.
  EXPECT_EQ(run_io({"-", "--json", "-"}, sample_), 0) << slurp(err);
  EXPECT_EQ(nlohmann::json::parse(slurp(out))["input"], "(standard input)");
  EXPECT_EQ(run_io({"inspect", "-"}, sample_), 0) << slurp(err);
  EXPECT_NE(slurp(out).find("valid safetensors"), std::string::npos);
  EXPECT_EQ(run_io({"compare", "-", sample_}, sample_), 0) << slurp(err);
  EXPECT_EQ(run_io({"compare", "-", "-"}, sample_), 64);
  EXPECT_NE(slurp(err).find("given twice"), std::string::npos) << slurp(err);
  // convert -o - writes the same bytes convert -o FILE writes; the report goes to stderr.
  const std::string file = dir_ + "/converted.safetensors";
  ASSERT_EQ(run_cli({"convert", sample_, "-o", file}).exit_code, 0);
  EXPECT_EQ(run_io({"convert", sample_, "-o", "-"}, "/dev/null"), 0) << slurp(err);
  EXPECT_TRUE(slurp(out) == slurp(file)) << "convert -o - wrote other bytes than convert -o FILE";
  EXPECT_EQ(slurp(err).rfind("PASS: equivalent", 0), 0u) << slurp(err);
  EXPECT_EQ(run_io({"convert", "-", "-o", dir_ + "/from-stdin.safetensors"}, sample_), 0) << slurp(err);
  EXPECT_EQ(run_cli({"compare", sample_, dir_ + "/from-stdin.safetensors"}).exit_code, 0);
  EXPECT_EQ(run_io({"convert", sample_, "-o", "-", "--json", "-"}, "/dev/null"), 64);
  // sample - writes the file to stdout.
  EXPECT_EQ(run_io({"sample", "-", "--tiny"}, "/dev/null"), 0) << slurp(err);
  EXPECT_EQ(run_cli({"inspect", out}).exit_code, 0);
  EXPECT_FALSE(std::filesystem::exists(work + "/-"));
  EXPECT_TRUE(std::filesystem::is_empty(work));
  // A JSON piped in is named as such.
  { std::ofstream(dir_ + "/r.json") << "{\"a\": 1}"; }
  EXPECT_EQ(run_io({"-"}, dir_ + "/r.json"), 65);
  EXPECT_NE(slurp(err).find("(standard input): not a safetensors file"), std::string::npos) << slurp(err);
}

// Reports list modules by block number (double_blocks.2 before double_blocks.10).
TEST_F(Cli, ReportsListModulesInNaturalOrder) {
  const std::string full = dir_ + "/full.safetensors";
  ASSERT_EQ(run_cli({"sample", full, "--rank", "1"}).exit_code, 0);
  auto r = run_cli({full, "--json", "-"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::vector<std::string> targets;
  const auto j = nlohmann::json::parse(r.out);
  for (const auto& m : j["modules"]) targets.push_back(m["target"]);
  auto pos = [&](const std::string& t) { return std::find(targets.begin(), targets.end(), t) - targets.begin(); };
  ASSERT_LT(pos("double_blocks.10.img_attn.qkv"), static_cast<long>(targets.size()));
  EXPECT_LT(pos("double_blocks.2.img_attn.qkv"), pos("double_blocks.10.img_attn.qkv"));
  EXPECT_LT(pos("double_blocks.9.txt_mod.lin"), pos("double_blocks.10.img_attn.proj"));
  EXPECT_LT(pos("single_blocks.3.linear1"), pos("single_blocks.20.linear1"));
  auto md = run_cli({full, "--markdown", "-", "--all"});
  EXPECT_LT(md.out.find("double_blocks.2.img_attn.qkv"), md.out.find("double_blocks.10.img_attn.qkv"));
}
