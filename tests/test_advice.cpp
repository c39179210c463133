// Advice that works: every command a report advises is run here, over every corpus variant
// and every real key set, and must exit 0 with a file its app loads (the command's own
// report says `loads` for that app). Advice never names a scratch file, never repeats the
// command just run, and carries --model when the input needed it.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include <sys/wait.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "support/lora_support.h"

using lv::test::read_file;
using lv::test::run_cli;

namespace {

namespace fs = std::filesystem;

// Runs `command` (a line a report printed, starting with "lora-verify") through /bin/sh in
// `cwd`, with the binary under test; returns the exit status.
int run_shell(const std::string& command, const std::string& cwd, const std::string& log) {
  const std::string prefix = "lora-verify ";
  std::string cmd = command;
  if (cmd.rfind(prefix, 0) == 0) cmd = std::string("'") + LV_CLI_PATH + "' " + cmd.substr(prefix.size());
  pid_t pid = fork();
  if (pid == 0) {
    if (chdir(cwd.c_str()) != 0) _exit(126);
    FILE* o = std::freopen(log.c_str(), "w", stdout);
    FILE* e = std::freopen(log.c_str(), "a", stderr);
    (void)o, (void)e;
    execl("/bin/sh", "sh", "-c", ("exec " + cmd).c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// The FLUX key sets of ../shared/fixtures (the other architectures are refused: no advice).
std::vector<std::string> flux_fixtures() {
  std::vector<std::string> names;
  if (!lv::test::fixtures_present()) return names;
  for (const auto& e : fs::directory_iterator(lv::test::fixtures_dir())) {
    const std::string n = e.path().stem().string();
    if (e.path().extension() == ".json" && n.rfind("flux_", 0) == 0) names.push_back(n);
  }
  std::sort(names.begin(), names.end());
  return names;
}

void write_bytes(const std::string& path, const std::vector<uint8_t>& b) {
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

// Attention-only on double block 0 at width 3072: FLUX.1 or FLUX.2 [klein] 4B; --model settles it.
std::vector<uint8_t> ambiguous_file() {
  std::vector<lv::test::Tensor> t;
  for (const char* m : {"to_q", "to_k", "to_v"}) {
    const std::string base = std::string("transformer.transformer_blocks.0.attn.") + m;
    t.push_back({base + ".lora_A.weight", {2, 3072}, lv::test::random_values(2 * 3072, 1, 0.01)});
    t.push_back({base + ".lora_B.weight", {3072, 2}, lv::test::random_values(2 * 3072, 2, 0.01)});
  }
  return lv::test::build_file(t);
}

struct Input {
  std::string path;
  std::vector<std::string> options;  // what the input needs (--model)
  bool all_reports = false;          // also inspect and a default convert, not only verify
};

// The advised commands of a JSON report (loaders[].command) with the loader each is for.
void collect(const nlohmann::json& report, std::map<std::string, std::string>& commands, std::string& problems) {
  if (!report.contains("loaders")) return;
  for (const auto& l : report["loaders"]) {
    const std::string advice = l.value("advice", "");
    if (advice.find("lora-verify-") != std::string::npos)
      problems += "advice names a scratch file: " + advice + "\n";
    if (!l.contains("command")) {
      if (advice.find("lora-verify convert") != std::string::npos)
        problems += "advice names a command that is not recorded as checked: " + advice + "\n";
      continue;
    }
    commands[l["command"].get<std::string>()] = l["loader"].get<std::string>();
  }
}

}  // namespace

TEST(Advice, EveryAdvisedCommandWritesAFileItsAppLoads) {
  const std::string dir = lv::test::temp_dir();
  const std::string corpus = dir + "/corpus", work = dir + "/work", reports = dir + "/reports";
  fs::create_directories(work);
  fs::create_directories(reports);
  auto c = run_cli({"corpus", corpus});
  ASSERT_EQ(c.exit_code, 0) << c.err;
  std::vector<Input> inputs;
  for (const auto& e : fs::directory_iterator(corpus))
    if (e.path().extension() == ".safetensors") {
      const std::string name = e.path().filename().string();
      inputs.push_back({e.path().string(), {}, name.find("-bf16.") != std::string::npos});
    }
  const auto fixtures = flux_fixtures();
  for (const auto& name : fixtures) {
    const std::string p = dir + "/" + name + ".safetensors";
    write_bytes(p, lv::test::fixture_file(name, 1, lv::st::DType::kBF16, 4, 4));
    // The LoKr key set's shapes fit no FLUX weight: only --model reads it (nothing converts).
    inputs.push_back({p, name == "flux_lokr_bfl_format" ? std::vector<std::string>{"--model", "flux1"} : std::vector<std::string>{}, true});
  }
  write_bytes(dir + "/attention-only.safetensors", ambiguous_file());
  inputs.push_back({dir + "/attention-only.safetensors", {"--model", "flux1"}, true});
  std::sort(inputs.begin(), inputs.end(), [](const Input& a, const Input& b) { return a.path < b.path; });

  // Every report of every input: verify; for one dtype per variant and the key sets also
  // inspect and a default convert.
  std::map<std::string, std::string> commands;  // command → loader
  std::map<std::string, std::string> advised_by;
  std::string problems;
  std::mutex mu;
  std::atomic<size_t> next{0};
  std::atomic<int> reports_read{0};
  auto report_worker = [&] {
    for (size_t i; (i = next++) < inputs.size();) {
      const Input& in = inputs[i];
      std::vector<std::vector<std::string>> runs = {{in.path, "--json", "-"}};
      if (in.all_reports) {
        runs.push_back({"inspect", in.path, "--json"});
        runs.push_back({"convert", in.path, "-o", work + "/default-" + std::to_string(i) + ".safetensors", "--json", "-"});
      }
      for (auto args : runs) {
        args.insert(args.end(), in.options.begin(), in.options.end());
        auto r = run_cli(args);
        std::lock_guard<std::mutex> lock(mu);
        if (r.exit_code != 0 && r.exit_code != 1) {
          problems += args[0] + " " + in.path + ": exit " + std::to_string(r.exit_code) + ": " + r.err + "\n";
          continue;
        }
        ++reports_read;
        std::map<std::string, std::string> found;
        collect(nlohmann::json::parse(r.out), found, problems);
        for (const auto& [cmd, loader] : found) {
          commands[cmd] = loader;
          advised_by[cmd] = args[0] == in.path ? "verify" : args[0];
        }
      }
    }
  };
  {
    std::thread a(report_worker), b(report_worker);
    a.join();
    b.join();
  }
  ASSERT_TRUE(problems.empty()) << problems;

  // Run each advised command once (in `work`, where its relative output lands). A corpus
  // variant's F16 and F32 files differ from its BF16 file in values only: a command advised
  // for them that is the BF16 file's command with the file name changed is run for the BF16
  // file; any other is run itself.
  std::vector<std::pair<std::string, std::string>> todo;
  int same_as_bf16 = 0;
  for (const auto& [cmd, loader] : commands) {
    std::string bf16 = cmd;
    for (const char* d : {"-f16", "-f32"})
      for (size_t at; (at = bf16.find(d)) != std::string::npos;) bf16.replace(at, 4, "-bf16");
    if (bf16 != cmd && commands.count(bf16) && commands.at(bf16) == loader) {
      ++same_as_bf16;
      continue;
    }
    todo.emplace_back(cmd, loader);
  }
  std::atomic<size_t> k{0};
  std::atomic<int> ran{0}, loads{0};
  std::map<std::string, int> per_loader;
  auto run_worker = [&] {
    for (size_t i; (i = k++) < todo.size();) {
      const auto& [cmd, loader] = todo[i];
      const std::string json = reports + "/" + std::to_string(i) + ".json", log = reports + "/" + std::to_string(i) + ".log";
      const int rc = run_shell(cmd + " --quiet --json " + json, work, log);
      ++ran;
      std::string outcome = "(no report)";
      if (rc == 0) {
        const nlohmann::json report = nlohmann::json::parse(read_file(json));
        for (const auto& l : report["loaders"])
          if (l["loader"] == loader && l.contains("output")) outcome = l["output"]["outcome"].get<std::string>();
      }
      std::lock_guard<std::mutex> lock(mu);
      if (rc != 0 || outcome != "loads") {
        problems += cmd + "\n  exit " + std::to_string(rc) + ", " + loader + " on the output: " + outcome + "\n  " +
                    read_file(log) + "\n";
      } else {
        ++loads;
        ++per_loader[loader];
      }
      fs::remove(json);
    }
  };
  {
    std::thread a(run_worker), b(run_worker);
    a.join();
    b.join();
  }
  std::cout << "advice: " << inputs.size() << " inputs (" << fixtures.size() << " real key sets), " << reports_read
            << " reports, " << commands.size() << " distinct advised commands (" << same_as_bf16
            << " the BF16 variant's with another dtype), " << ran << " run, " << loads << " load in their app:";
  for (const auto& [l, n] : per_loader) std::cout << " " << l << " " << n;
  std::cout << "\n";
  EXPECT_TRUE(problems.empty()) << problems;
  EXPECT_GT(ran.load(), 0);
  // --model travels with the advice of a file that needed it.
  bool model_carried = false;
  for (const auto& [cmd, _] : commands)
    if (cmd.find("attention-only.safetensors") != std::string::npos) model_carried = cmd.find("--model flux1") != std::string::npos;
  EXPECT_TRUE(model_carried);
  fs::remove_all(dir);
}

// `convert -o -` never points at its scratch file, and `convert --for L` never advises
// itself again.
TEST(Advice, NeverNamesAScratchFileNorRepeatsTheCommandJustRun) {
  const std::string dir = lv::test::temp_dir();
  const std::string in = dir + "/in.safetensors";
  ASSERT_EQ(run_cli({"sample", in, "--tiny", "--rank", "2"}).exit_code, 0);
  auto r = run_cli({"convert", in, "-o", "-", "--json", dir + "/r.json"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  const std::string json = read_file(dir + "/r.json");
  EXPECT_EQ(json.find("lora-verify-"), std::string::npos) << json;
  EXPECT_EQ(r.err.find("lora-verify-"), std::string::npos) << r.err;
  for (const char* loader : {"sd-scripts", "invokeai-5.1"}) {
    const std::string out = dir + "/out.safetensors";
    auto c = run_cli({"convert", in, "-o", out, "--for", loader, "--drop-unsupported", "--json", "-"});
    EXPECT_EQ(c.exit_code, 0) << c.err;
    const nlohmann::json report = nlohmann::json::parse(c.out);
    for (const auto& l : report["loaders"]) {
      const std::string cmd = l.value("command", "");
      EXPECT_EQ(cmd.find(std::string("--for ") + loader), std::string::npos) << cmd;
    }
  }
  fs::remove_all(dir);
}
