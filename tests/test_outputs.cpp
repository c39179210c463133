// What happens to the files around a write: a regular output is replaced only by a verified
// file, a device, FIFO or socket is never replaced, and a failure or a signal in any phase
// leaves a previous output byte for byte as it was.
#include <gtest/gtest.h>

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "support/lora_support.h"

using lv::test::read_file;
using lv::test::run_cli;

namespace {

namespace fs = std::filesystem;

// Starts the CLI with `env` added, stdout and stderr to files; returns its pid.
pid_t spawn(const std::vector<std::string>& args, const std::vector<std::string>& env, const std::string& out,
            const std::string& err) {
  pid_t pid = fork();
  if (pid == 0) {
    for (const auto& e : env) putenv(strdup(e.c_str()));
    FILE* i = std::freopen("/dev/null", "r", stdin);
    FILE* o = std::freopen(out.c_str(), "w", stdout);
    FILE* r = std::freopen(err.c_str(), "w", stderr);
    (void)i, (void)o, (void)r;
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

int wait_status(pid_t pid) {
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// Every entry of `dir`, by name.
std::vector<std::string> entries(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

class Outputs : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = lv::test::temp_dir();
    work_ = dir_ + "/work";
    tmp_ = dir_ + "/tmp";
    fs::create_directories(work_);
    fs::create_directories(tmp_);
    sample_ = dir_ + "/sample.safetensors";
    auto r = run_cli({"sample", sample_, "--tiny", "--rank", "8"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  void TearDown() override { fs::remove_all(dir_); }
  // A previous output in `work_`; returns its path.
  std::string previous(const std::string& name = "out.safetensors") {
    const std::string p = work_ + "/" + name;
    std::ofstream(p, std::ios::binary) << "previous output \x01\x02\x03";
    return p;
  }
  std::string dir_, work_, tmp_, sample_;
};

const std::string kPrevious = "previous output \x01\x02\x03";

// A file whose every module cannot be used (up factors with rows that fit no target):
// nothing converted.
std::vector<uint8_t> unusable_file() {
  std::vector<lv::test::Tensor> t;
  for (const char* m : {"to_q", "to_k", "to_v"}) {
    const std::string base = std::string("transformer.transformer_blocks.0.attn.") + m;
    t.push_back({base + ".lora_A.weight", {2, 3072}, lv::test::random_values(2 * 3072, 1, 0.01)});
    t.push_back({base + ".lora_B.weight", {5, 2}, lv::test::random_values(10, 2, 0.01)});
  }
  return lv::test::build_file(t);
}

// Everything written into the FIFO `path` by one writer, within 20 s (never blocks for good:
// a FIFO that was replaced by a regular file never gets a writer).
std::string read_fifo(const std::string& path) {
  std::string got;
  int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK);
  if (fd < 0) return got;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  bool any = false;
  char buf[65536];
  while (std::chrono::steady_clock::now() < deadline) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n > 0) {
      got.append(buf, static_cast<size_t>(n));
      any = true;
    } else if (n == 0 && any) {
      break;  // the writer closed it
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }
  ::close(fd);
  return got;
}

}  // namespace

// FAIL (an error finding, or nothing converted): exit 1, the report says nothing was
// written, the previous output is unchanged and no other file appears; with no previous
// output, none appears.
TEST_F(Outputs, AFailingConvertLeavesThePreviousOutputAndWritesNothing) {
  // NaN in one factor: an error finding, so the check fails although every module converts.
  const std::string nan_in = dir_ + "/nan.safetensors";
  ASSERT_EQ(run_cli({"sample", nan_in, "--tiny", "--rank", "2", "--dtype", "F32"}).exit_code, 0);
  {
    // Put a NaN into the first F32 value of the data section.
    std::fstream f(nan_in, std::ios::in | std::ios::out | std::ios::binary);
    uint64_t header = 0;
    f.read(reinterpret_cast<char*>(&header), 8);
    const uint32_t nan_bits = 0x7fc00000u;
    f.seekp(static_cast<std::streamoff>(8 + header));
    f.write(reinterpret_cast<const char*>(&nan_bits), 4);
  }
  const std::string unusable = dir_ + "/unusable.safetensors";
  {
    auto b = unusable_file();
    std::ofstream(unusable, std::ios::binary).write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
  }
  for (const std::string& in : {nan_in, unusable}) {
    const std::string out = previous();
    auto r = run_cli({"convert", in, "-o", out, "--json", dir_ + "/r.json", "--model", in == unusable ? "flux1" : "flux1-tiny"});
    EXPECT_EQ(r.exit_code, 1) << in << "\n" << r.out << r.err;
    EXPECT_NE(r.out.find("not written"), std::string::npos) << r.out;
    EXPECT_EQ(read_file(out), kPrevious) << in;
    EXPECT_EQ(entries(work_), std::vector<std::string>{"out.safetensors"});
    EXPECT_EQ(nlohmann::json::parse(read_file(dir_ + "/r.json"))["output_written"], false);
    fs::remove(out);
    r = run_cli({"convert", in, "-o", out, "--model", in == unusable ? "flux1" : "flux1-tiny"});
    EXPECT_EQ(r.exit_code, 1) << r.err;
    EXPECT_TRUE(entries(work_).empty()) << in;
  }
  // A passing convert says it wrote the file.
  auto ok = run_cli({"convert", sample_, "-o", work_ + "/good.safetensors", "--json", dir_ + "/r.json"});
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
  EXPECT_EQ(nlohmann::json::parse(read_file(dir_ + "/r.json"))["output_written"], true);
  EXPECT_TRUE(fs::is_regular_file(work_ + "/good.safetensors"));
}

// SIGINT or SIGTERM in any phase of convert (reading … done, before the rename): exit
// 128 + signal, the previous output byte for byte, no temporary left. The documented hook
// LV_TEST_PHASE_DELAY_MS holds each phase long enough to signal it.
TEST_F(Outputs, ASignalInAnyPhaseLeavesThePreviousOutput) {
  struct Phase {
    const char* name;
    const char* marker;  // the stderr line that shows the phase has begun
  };
  const Phase phases[] = {{"reading", "% reading"},     {"converting", "% converting"}, {"writing", "% writing"},
                          {"re-reading", "% re-reading"}, {"verifying", "% verifying"},   {"loaders", "% loaders"},
                          {"done", "loaders took"}};
  int i = 0;
  for (const Phase& ph : phases) {
    for (int sig : {SIGINT, SIGTERM}) {
      const std::string out = previous();
      const std::string err = dir_ + "/err";
      pid_t pid = spawn({"convert", sample_, "-o", out, "--progress", "--verbose"},
                        {"LV_TEST_PHASE_DELAY_MS=600", "TMPDIR=" + tmp_}, "/dev/null", err);
      bool seen = false;
      for (int k = 0; k < 2000 && !seen; ++k) {
        seen = read_file(err).find(ph.marker) != std::string::npos;
        if (!seen) std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
      ASSERT_TRUE(seen) << ph.name << ": " << read_file(err);
      kill(pid, sig);
      EXPECT_EQ(wait_status(pid), 128 + sig) << ph.name << " " << read_file(err);
      EXPECT_EQ(read_file(out), kPrevious) << ph.name << " signal " << sig;
      EXPECT_EQ(entries(work_), std::vector<std::string>{"out.safetensors"}) << ph.name;
      EXPECT_TRUE(entries(tmp_).empty()) << ph.name;
      ++i;
    }
  }
  EXPECT_EQ(i, 14);
}

// A character device or FIFO is written into, like a shell redirection, and stays what it
// was; /dev/full gives a write error (74), never PASS. Report files and sample alike.
TEST_F(Outputs, DevicesAndFifosAreWrittenIntoNeverReplaced) {
  // Nodes of the null and full devices made for the test (a broken writer then replaces
  // these, never the machine's /dev/null); without the right to make them, /dev's own are
  // only checked where nothing can replace them.
  const std::string null_dev = work_ + "/null", full_dev = work_ + "/full";
  auto is_char = [](const std::string& p) {
    struct stat st {};
    return ::stat(p.c_str(), &st) == 0 && S_ISCHR(st.st_mode);
  };
  auto usable = [&](const std::string& p, dev_t dev) {
    if (::mknod(p.c_str(), S_IFCHR | 0666, dev) != 0) return false;
    int fd = ::open(p.c_str(), O_WRONLY);
    if (fd < 0) return false;
    ::close(fd);
    return true;
  };
  if (!usable(null_dev, makedev(1, 3)) || !usable(full_dev, makedev(1, 7)))
    GTEST_SKIP() << "cannot make and open device nodes in " << work_ << " (needs root and a filesystem without nodev)";
  auto r = run_cli({"convert", sample_, "-o", null_dev, "--json", work_ + "/r.json"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(is_char(null_dev));
  for (const auto& args : std::vector<std::vector<std::string>>{{"convert", sample_, "-o", full_dev},
                                                                {sample_, "--json", full_dev},
                                                                {sample_, "--markdown", full_dev},
                                                                {"sample", full_dev, "--tiny"},
                                                                {"convert", sample_, "-o", work_ + "/o.safetensors",
                                                                 "--markdown", full_dev}}) {
    auto f = run_cli(args);
    EXPECT_EQ(f.exit_code, 74) << args[1] << " " << f.out << f.err;
    EXPECT_NE(f.err.find(full_dev), std::string::npos) << f.err;
    EXPECT_EQ(f.out.find("PASS"), std::string::npos) << f.out;
    EXPECT_TRUE(is_char(full_dev));
  }
  for (const auto& args : std::vector<std::vector<std::string>>{{sample_, "--json", null_dev},
                                                                {"sample", null_dev, "--tiny"}})
    EXPECT_EQ(run_cli(args).exit_code, 0) << args[1];
  EXPECT_TRUE(is_char(null_dev));

  // A FIFO: the converted file (then a report) arrives through it, and it stays a FIFO.
  const std::string fifo = work_ + "/fifo";
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  for (const auto& args : std::vector<std::vector<std::string>>{{"convert", sample_, "-o", fifo},
                                                                {sample_, "--json", fifo}}) {
    std::string got;
    std::thread reader([&] { got = read_fifo(fifo); });
    auto c = run_cli(args);
    reader.join();
    EXPECT_EQ(c.exit_code, 0) << c.err;
    struct stat st {};
    ASSERT_EQ(::stat(fifo.c_str(), &st), 0);
    EXPECT_TRUE(S_ISFIFO(st.st_mode));
    if (args[0] == "convert") {
      auto f = lv::st::SafetensorsFile::from_bytes(std::vector<uint8_t>(got.begin(), got.end()), "fifo");
      EXPECT_TRUE(f.ok()) << "the FIFO did not carry a safetensors file (" << got.size() << " bytes)";
    } else {
      EXPECT_EQ(nlohmann::json::parse(got)["verdict"], "pass");
    }
  }
  // (o.safetensors: a verified output is in place before a report file fails to be written)
  EXPECT_EQ(entries(work_), (std::vector<std::string>{"fifo", "full", "null", "o.safetensors", "r.json"}));
}

// A socket (or block device) is refused with the reason; nothing replaces it.
TEST_F(Outputs, ASocketIsRefusedAndStaysASocket) {
  const std::string sock = work_ + "/s.sock";
  int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", sock.c_str());
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  for (const auto& args : std::vector<std::vector<std::string>>{{"convert", sample_, "-o", sock},
                                                                {sample_, "--json", sock}}) {
    auto r = run_cli(args);
    EXPECT_EQ(r.exit_code, 73) << r.err;
    EXPECT_NE(r.err.find("is a socket"), std::string::npos) << r.err;
    struct stat st {};
    ASSERT_EQ(::stat(sock.c_str(), &st), 0);
    EXPECT_TRUE(S_ISSOCK(st.st_mode));
  }
  ::close(fd);
}

// `matrix --out`: a FIFO among the set's files is refused (73) and nothing of the set is
// written; the FIFO stays.
TEST_F(Outputs, MatrixRefusesADeviceOrFifoInItsSet) {
  const std::string out = work_ + "/reports";
  fs::create_directories(out);
  ASSERT_EQ(mkfifo((out + "/compatibility.json").c_str(), 0600), 0);
  auto r = run_cli({"matrix", "--out", out, "--filter", "kohya / complete / BF16"});
  EXPECT_EQ(r.exit_code, 73) << r.out << r.err;
  EXPECT_NE(r.err.find("compatibility.json"), std::string::npos) << r.err;
  EXPECT_EQ(entries(out), std::vector<std::string>{"compatibility.json"});
  struct stat st {};
  ASSERT_EQ(::stat((out + "/compatibility.json").c_str(), &st), 0);
  EXPECT_TRUE(S_ISFIFO(st.st_mode));
}
