// Converter columns of the matrix (`matrix --converter NAME=CMD`): the peer stand-ins of
// tests/standins/peer.py (docs/formats.md#flux1-peer-failures) each get exactly the expected
// cell on every applicable variant; lora-verify's own convert is equivalent; hangs, missing and
// garbage outputs are graded without stalling; logs, shards, merges and baselines work.
#include <gtest/gtest.h>

#include <algorithm>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <fstream>
#include <set>
#include <thread>

#include "matrix/combine.h"
#include "matrix/converter_cell.h"
#include "matrix/io.h"
#include "matrix/process.h"
#include "matrix/render.h"
#include "matrix/run.h"
#include "matrix/variants.h"
#include "support/lora_support.h"

using namespace lv::matrix;

namespace {

const std::string kPeer = std::string(LV_SOURCE_DIR) + "/tests/standins/peer.py";

// The stand-ins and `ours` call `lora-verify` from PATH: this build's.
void put_build_on_path() {
  static bool done = [] {
    const std::string dir = std::filesystem::path(LV_CLI_PATH).parent_path().string();
    const char* old = std::getenv("PATH");
    ::setenv("PATH", (dir + ":" + (old ? old : "/usr/bin:/bin")).c_str(), 1);
    return true;
  }();
  (void)done;
}

MatrixConverter peer(const std::string& mode) { return {mode, "python3 " + kPeer + " " + mode + " {in} {out}"}; }

const MatrixCell& cell(const MatrixRow& r, const std::string& column) {
  for (const auto& c : r.cells)
    if (c.column == column) return c;
  static MatrixCell none;
  ADD_FAILURE() << r.variant << " has no column " << column;
  return none;
}

bool partial(const std::string& structure) {
  static const std::set<std::string> kPartial = {"no-proj-mlp", "only-proj-mlp", "missing-q", "missing-k", "missing-v"};
  return kPartial.count(structure) > 0;
}

}  // namespace

// Each stand-in on every variant of every dialect (BF16: the dtype does not change what these
// converters do; the F32/F16 rows would only repeat the cells).
TEST(MatrixConverters, EveryStandInGetsExactlyItsCatalogedCell) {
  put_build_on_path();
  MatrixOptions o;
  o.filter = "/ BF16";
  o.styles = std::vector<std::string>{};
  o.converters = {peer("assert-partial"), peer("identity-fill"), peer("no-norm-out-swap"), peer("drop-top-level")};
  o.jobs = 2;
  auto m = run_matrix(o);
  ASSERT_TRUE(m.ok()) << m.error().message;
  const auto names = builtin_variant_names();  // FLUX.1 rows come in three dtypes; family rows are BF16 "f: d, s, BF16"
  ASSERT_EQ(m->rows.size(), static_cast<size_t>(std::count_if(names.begin(), names.end(), [](const std::string& n) {
              return n.find(": ") == std::string::npos;
            })) / 3);
  EXPECT_EQ(m->columns, (std::vector<std::string>{"assert-partial", "identity-fill", "no-norm-out-swap", "drop-top-level"}));
  std::map<std::string, int> failing;
  for (const MatrixRow& r : m->rows) {
    SCOPED_TRACE(r.variant);
    const std::string dialect = r.variant.substr(0, r.variant.find(" / "));
    const std::string structure = r.variant.substr(dialect.size() + 3, r.variant.rfind(" / ") - dialect.size() - 3);

    // The stand-in reads diffusers names (transformer.… or bare): its assert fires on the
    // partial blocks of those dialects, and it converts everything else correctly.
    const MatrixCell& ap = cell(r, "assert-partial");
    if (partial(structure) && (dialect == "diffusers" || dialect == "diffusers-old")) {
      EXPECT_EQ(ap.outcome, Outcome::kFailed);
      EXPECT_EQ(ap.reason.rfind("exit code 1: AssertionError: partial block ", 0), 0u) << ap.reason;
      EXPECT_EQ(ap.log, "logs/assert-partial/" + variant_slug(r.variant) + ".log");
      EXPECT_NE(ap.log_text.find("Traceback (most recent call last)"), std::string::npos) << ap.log_text;
    } else {
      EXPECT_EQ(ap.outcome, Outcome::kEquivalent) << ap.reason;
      EXPECT_TRUE(ap.log.empty());
    }

    // Identity instead of zero matters exactly where a fused target lacks a part.
    const MatrixCell& idf = cell(r, "identity-fill");
    if (r.zero_filled > 0) {
      EXPECT_EQ(idf.outcome, Outcome::kNotEquivalent);
      const bool mlp_or_qkv = idf.reason.find("linear1 (different") != std::string::npos ||
                              idf.reason.find("qkv (different") != std::string::npos;
      EXPECT_TRUE(mlp_or_qkv) << idf.reason;
      EXPECT_EQ(idf.reason.find("final_layer"), std::string::npos) << idf.reason;
    } else {
      EXPECT_EQ(idf.outcome, Outcome::kEquivalent) << idf.reason;
    }
    if (partial(structure) && dialect != "xlabs") {
      EXPECT_GT(r.zero_filled, 0);
    }

    // Every dialect but xlabs carries norm_out.linear and the other top-level modules.
    const bool top_level = dialect != "xlabs";
    const MatrixCell& nos = cell(r, "no-norm-out-swap");
    const MatrixCell& dtl = cell(r, "drop-top-level");
    if (top_level) {
      EXPECT_EQ(nos.outcome, Outcome::kNotEquivalent);
      EXPECT_NE(nos.reason.find(": 1 of "), std::string::npos) << nos.reason;
      EXPECT_NE(nos.reason.find("worst: final_layer.adaLN_modulation.1 (different"), std::string::npos) << nos.reason;
      EXPECT_EQ(dtl.outcome, Outcome::kNotEquivalent);
      EXPECT_NE(dtl.reason.find("final_layer.adaLN_modulation.1 (missing)"), std::string::npos) << dtl.reason;
      EXPECT_EQ(dtl.reason.find("blocks."), std::string::npos) << "only top-level modules are lost: " << dtl.reason;
    } else {
      EXPECT_EQ(nos.outcome, Outcome::kEquivalent) << nos.reason;
      EXPECT_EQ(dtl.outcome, Outcome::kEquivalent) << dtl.reason;
    }
    for (const auto& c : r.cells) failing[c.column] += c.outcome != Outcome::kEquivalent;
  }
  // The counts of the run recorded in the summary note (BF16 rows).
  EXPECT_EQ(failing["assert-partial"], 10);
  EXPECT_EQ(failing["identity-fill"], 25);
  EXPECT_EQ(failing["no-norm-out-swap"], 101);
  EXPECT_EQ(failing["drop-top-level"], 101);
}

// The failures that are about the process, not the file, through the command line: a hang is
// killed at the time limit, no output and garbage are graded, logs are kept only for cells
// that are not equivalent, and the files are byte-identical between runs.
TEST(MatrixConvertersCli, HangsMissingAndGarbageOutputsAreGradedWithoutStalling) {
  put_build_on_path();
  const std::string dir = lv::test::temp_dir();
  std::vector<std::string> args = {"matrix", "--filter", "diffusers / complete / BF16", "--styles", "kohya,round-trip",
                                   "--converter-timeout", "1.5", "--converter", "ours=lora-verify convert {in} -o {out}"};
  for (const char* mode : {"hang", "no-output", "garbage"}) {
    args.push_back("--converter");
    args.push_back(std::string(mode) + "=python3 " + kPeer + " " + mode + " {in} {out}");
  }
  // A shell-level hang with a child in the background: the whole group must go.
  args.push_back("--converter");
  args.push_back("sleeper=sleep 300 & sleep 300; : {in} {out}");
  // stdin is /dev/null: a converter reading it gets EOF at once instead of stalling.
  args.push_back("--converter");
  args.push_back("reads-stdin=cat > /dev/null && exit 3; : {in} {out}");
  auto run = [&](const std::string& out) {
    auto a = args;
    a.push_back("--out");
    a.push_back(out);
    const auto start = std::chrono::steady_clock::now();
    auto r = lv::test::run_cli(a);
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    EXPECT_LT(secs, 30) << "a hanging converter stalled the matrix";
    return r;
  };
  auto r = run(dir + "/a");
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;  // a built-in row is not equivalent in every column
  auto m = read_matrix_json(lv::test::read_file(dir + "/a/compatibility.json"), "a");
  ASSERT_TRUE(m.ok()) << m.error().message;
  ASSERT_EQ(m->rows.size(), 1u);
  EXPECT_EQ(m->columns, (std::vector<std::string>{"kohya", "round-trip", "ours", "hang", "no-output", "garbage", "sleeper", "reads-stdin"}));
  const MatrixRow& row = m->rows[0];
  EXPECT_EQ(cell(row, "kohya").outcome, Outcome::kEquivalent);
  EXPECT_EQ(cell(row, "ours").outcome, Outcome::kEquivalent);
  EXPECT_EQ(cell(row, "hang").outcome, Outcome::kTimedOut);
  EXPECT_EQ(cell(row, "hang").reason, "no result within 1.5 s (--converter-timeout); its process group was killed");
  EXPECT_EQ(cell(row, "sleeper").outcome, Outcome::kTimedOut);
  EXPECT_EQ(cell(row, "no-output").outcome, Outcome::kNoOutput);
  EXPECT_EQ(cell(row, "no-output").reason, "exit code 0, but {out} was not written");
  EXPECT_EQ(cell(row, "garbage").outcome, Outcome::kUnreadableOutput);
  EXPECT_EQ(cell(row, "garbage").reason.rfind("output of garbage: not a safetensors file", 0), 0u) << cell(row, "garbage").reason;
  EXPECT_EQ(cell(row, "reads-stdin").outcome, Outcome::kFailed);
  EXPECT_EQ(cell(row, "reads-stdin").reason, "exit code 3");
  // Logs: one per cell that is not equivalent, none for the equivalent ones.
  const std::string slug = "diffusers-complete-bf16";
  EXPECT_FALSE(std::filesystem::exists(dir + "/a/logs/ours"));
  for (const char* c : {"hang", "no-output", "garbage", "sleeper", "reads-stdin"}) {
    EXPECT_EQ(cell(row, c).log, std::string("logs/") + c + "/" + slug + ".log");
    const std::string log = lv::test::read_file(dir + "/a/logs/" + c + "/" + slug + ".log");
    EXPECT_NE(log.find(std::string("converter: ") + c), std::string::npos) << log;
    EXPECT_NE(log.find("--- stderr ---"), std::string::npos) << log;
  }
  // Reasons and cells render in all three files.
  const std::string md = lv::test::read_file(dir + "/a/compatibility.md");
  EXPECT_NE(md.find("| ours | 1 | 0 | 0 | 0 | 0 | 0 | 0 |"), std::string::npos) << md;
  EXPECT_NE(md.find("timed out: no result within 1.5 s"), std::string::npos) << md;
  EXPECT_NE(lv::test::read_file(dir + "/a/compatibility.html").find("timed out"), std::string::npos);
  // Byte-stable: the temporary directories never leak into the files.
  auto again = run(dir + "/b");
  EXPECT_EQ(again.exit_code, 1);
  for (const char* f : {"compatibility.md", "compatibility.json", "compatibility.html"})
    EXPECT_TRUE(lv::test::read_file(dir + "/a/" + f) == lv::test::read_file(dir + "/b/" + f)) << f;
  EXPECT_EQ(lv::test::read_file(dir + "/a/compatibility.json").find("lv-cell-"), std::string::npos);
  std::filesystem::remove_all(dir);
}

TEST(MatrixConvertersCli, OursIsEquivalentAndShardsMergeAndBaselinesWork) {
  put_build_on_path();
  const std::string dir = lv::test::temp_dir();
  const std::vector<std::string> base = {"matrix", "--filter", "norm-out / F16", "--styles", "none",
                                         "--converter", "ours=lora-verify convert {in} -o {out}"};
  auto with = [&](std::vector<std::string> extra) {
    auto a = base;
    a.insert(a.end(), extra.begin(), extra.end());
    return lv::test::run_cli(a);
  };
  auto full = with({"--out", dir + "/full"});
  ASSERT_EQ(full.exit_code, 0) << full.out << full.err;
  auto m = read_matrix_json(lv::test::read_file(dir + "/full/compatibility.json"), "full");
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->rows.size(), 9u);  // every dialect but xlabs
  for (const auto& r : m->rows) EXPECT_EQ(cell(r, "ours").outcome, Outcome::kEquivalent) << r.variant << ": " << cell(r, "ours").reason;
  for (const char* s : {"0/2", "1/2"}) {
    auto r = with({"--shard", s, "--out", dir + "/s" + std::string(1, s[0])});
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  }
  auto merged = lv::test::run_cli({"matrix", "--merge", dir + "/s0/compatibility.json", dir + "/s1/compatibility.json", "--out", dir + "/merged"});
  ASSERT_EQ(merged.exit_code, 0) << merged.out << merged.err;
  for (const char* f : {"compatibility.md", "compatibility.json", "compatibility.html"})
    EXPECT_TRUE(lv::test::read_file(dir + "/merged/" + f) == lv::test::read_file(dir + "/full/" + f)) << f;
  // A shard of another converter command is another run.
  auto other = lv::test::run_cli({"matrix", "--filter", "norm-out / F16", "--styles", "none", "--converter",
                                  "ours=lora-verify convert {in} -o {out} --style comfy", "--shard", "1/2", "--out", dir + "/o1"});
  ASSERT_EQ(other.exit_code, 0) << other.out << other.err;
  auto mixed = lv::test::run_cli({"matrix", "--merge", dir + "/s0/compatibility.json", dir + "/o1/compatibility.json", "--out", dir + "/mixed"});
  EXPECT_EQ(mixed.exit_code, 65) << mixed.out << mixed.err;
  // Against a baseline: a converter that stopped working is a regression (exit 1).
  auto reg = lv::test::run_cli({"matrix", "--filter", "norm-out / F16", "--styles", "none", "--converter",
                                "ours=python3 " + kPeer + " no-norm-out-swap {in} {out}", "--baseline",
                                dir + "/full/compatibility.json", "--out", dir + "/reg"});
  EXPECT_EQ(reg.exit_code, 1) << reg.out << reg.err;
  EXPECT_NE(reg.out.find("regression: diffusers / norm-out / F16, ours: equivalent → not equivalent"), std::string::npos) << reg.out;
  std::filesystem::remove_all(dir);
}

TEST(MatrixConvertersCli, BadConverterOptionsAreUsageErrors) {
  for (std::vector<std::string> bad : {
           std::vector<std::string>{"matrix", "--converter", "noequals"},
           {"matrix", "--converter", "=cmd {in} {out}"},
           {"matrix", "--converter", "a b=cmd {in} {out}"},
           {"matrix", "--converter", "x=cmd {in}"},
           {"matrix", "--converter", "kohya=cmd {in} {out}"},
           {"matrix", "--converter", "x=a {in} {out}", "--converter", "x=b {in} {out}"},
           {"matrix", "--styles", "none"},
           {"matrix", "--styles", "kohya,nope"},
           {"matrix", "--converter-timeout", "5"},
           {"matrix", "--converter", "x=a {in} {out}", "--converter-timeout", "0"},
           {"matrix", "--converter", "x=a {in} {out}", "--converter-max-output", "12Q"},
       }) {
    auto r = lv::test::run_cli(bad);
    EXPECT_EQ(r.exit_code, 64) << bad.back() << ": " << r.err;
    EXPECT_NE(r.err.find("error: matrix: "), std::string::npos) << r.err;
  }
}

// A converter writing past --converter-max-output is stopped by the file-size limit.
TEST(MatrixConvertersCli, OutputLargerThanTheLimitFails) {
  const std::string dir = lv::test::temp_dir();
  auto r = lv::test::run_cli({"matrix", "--filter", "xlabs / complete / F32", "--styles", "none", "--converter-max-output", "64K",
                              "--converter", "big=head -c 1000000 /dev/zero > {out}; : {in}", "--out", dir});
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  auto m = read_matrix_json(lv::test::read_file(dir + "/compatibility.json"), "m");
  ASSERT_TRUE(m.ok());
  const MatrixCell& c = cell(m->rows[0], "big");
  // head is stopped at the limit (SIGXFSZ); sh goes on and exits 0 with a cut file.
  EXPECT_EQ(c.outcome, Outcome::kUnreadableOutput) << c.reason;
  EXPECT_EQ(c.reason, "{out} reached the --converter-max-output limit of 65536 bytes (writes past it fail)");
  std::filesystem::remove_all(dir);
}

// The README's claim: lora-verify's own convert, as a converter column, is equivalent on every
// built-in variant.
TEST(MatrixConvertersCli, OursIsEquivalentOnEveryBuiltinVariant) {
  put_build_on_path();
  const std::string dir = lv::test::temp_dir();
  auto r = lv::test::run_cli({"matrix", "--styles", "none", "--converter", "ours=lora-verify convert {in} -o {out}", "--jobs", "2",
                              "--out", dir});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  auto m = read_matrix_json(lv::test::read_file(dir + "/compatibility.json"), "m");
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->rows.size(), builtin_variant_names().size());
  EXPECT_EQ(m->rows.size(), 522u);  // FLUX.1, Chroma, FLUX.2 [dev], [klein] 9B and 4B
  for (const auto& row : m->rows) EXPECT_EQ(cell(row, "ours").outcome, Outcome::kEquivalent) << row.variant << ": " << cell(row, "ours").reason;
  std::filesystem::remove_all(dir);
}

// INPUTS with a converter column: each file is copied for the converter (the original is
// never handed to it), and a file lora-verify cannot read is a refused row.
TEST(MatrixConvertersCli, InputFilesGetConverterCellsAndStayUntouched) {
  put_build_on_path();
  const std::string dir = lv::test::temp_dir();
  std::filesystem::create_directories(dir + "/loras");
  lv::GenSpec spec;
  spec.layout = lv::flux::Layout::tiny();
  spec.dialect = "diffusers";
  spec.proj_mlp = false;
  auto bytes = lv::generate_lora(spec);
  ASSERT_TRUE(bytes.ok());
  const std::string mine = dir + "/loras/mine.safetensors";
  std::ofstream(mine, std::ios::binary).write(reinterpret_cast<const char*>(bytes->data()), static_cast<std::streamsize>(bytes->size()));
  std::ofstream(dir + "/loras/broken.safetensors") << "garbage";
  const std::string before = lv::test::read_file(mine);
  // "vandal" overwrites its input: only the copy in its temporary directory is hit.
  auto r = lv::test::run_cli({"matrix", "--no-builtin", "--styles", "none", "--converter", "ours=lora-verify convert {in} -o {out}",
                              "--converter", "ap=python3 " + kPeer + " assert-partial {in} {out}", "--converter",
                              "vandal=printf x > {in}; lora-verify convert {in} -o {out}", "--out", dir + "/out", dir + "/loras"});
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;  // only inputs, and no row is equivalent in every column
  auto m = read_matrix_json(lv::test::read_file(dir + "/out/compatibility.json"), "m");
  ASSERT_TRUE(m.ok());
  ASSERT_EQ(m->rows.size(), 2u);
  EXPECT_EQ(m->rows[0].variant, dir + "/loras/broken.safetensors");
  for (const auto& c : m->rows[0].cells) EXPECT_EQ(c.outcome, Outcome::kRefused) << c.column;
  EXPECT_EQ(cell(m->rows[1], "ours").outcome, Outcome::kEquivalent) << cell(m->rows[1], "ours").reason;
  EXPECT_EQ(cell(m->rows[1], "ap").outcome, Outcome::kFailed);
  EXPECT_EQ(cell(m->rows[1], "ap").reason.rfind("exit code 1: AssertionError: partial block single_transformer_blocks.0", 0), 0u)
      << cell(m->rows[1], "ap").reason;
  EXPECT_EQ(cell(m->rows[1], "vandal").outcome, Outcome::kFailed);  // lora-verify refuses the one-byte input
  EXPECT_TRUE(lv::test::read_file(mine) == before) << "a converter changed the original input";
  std::filesystem::remove_all(dir);
}

namespace {

// Processes whose command line starts with `needle` (from /proc).
int processes_with(const std::string& needle) {
  int n = 0;
  for (const auto& e : std::filesystem::directory_iterator("/proc")) {
    const std::string pid = e.path().filename().string();
    if (pid.find_first_not_of("0123456789") != std::string::npos) continue;
    std::string cmd = lv::test::read_file(e.path().string() + "/cmdline");
    for (auto& c : cmd)
      if (c == '\0') c = ' ';
    if (cmd.rfind(needle, 0) == 0) ++n;
  }
  return n;
}

}  // namespace

// SIGTERM during a run: lora-verify exits 143 and takes its converters' process groups along.
TEST(MatrixConvertersCli, ASignalKillsTheRunningConverters) {
  const std::string dir = lv::test::temp_dir();
  const std::string marker = "sleep 3" + std::to_string(getpid() % 10000) + "7";
  pid_t pid = fork();
  if (pid == 0) {
    freopen("/dev/null", "w", stdout);
    freopen("/dev/null", "w", stderr);
    std::string bin = LV_CLI_PATH;
    std::vector<std::string> args = {bin, "matrix", "--filter", "complete / F32", "--styles", "none", "--jobs", "2",
                                      "--converter", "s=" + marker + " & " + marker + "; : {in} {out}", "--out", dir};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(bin.c_str(), argv.data());
    _exit(127);
  }
  for (int i = 0; i < 100 && processes_with(marker) < 2; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_GE(processes_with(marker), 2) << "the converters' sleeps did not start";
  kill(pid, SIGTERM);
  int status = 0;
  waitpid(pid, &status, 0);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM) << status;
  for (int i = 0; i < 40 && processes_with(marker) > 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(processes_with(marker), 0) << "converters outlived lora-verify";
  EXPECT_FALSE(std::filesystem::exists(dir + "/compatibility.json"));
  std::filesystem::remove_all(dir);
}
