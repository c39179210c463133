// Child processes under limits (see process.h).
#include "matrix/process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>
#include <utility>

extern char** environ;

namespace lv::process {
namespace {

// Process groups of the children running now (0: free slot), for the signal handlers.
constexpr int kSlots = 512;
std::atomic<pid_t> g_running[kSlots];

int track(pid_t pgid) {
  for (int i = 0; i < kSlots; ++i) {
    pid_t expected = 0;
    if (g_running[i].compare_exchange_strong(expected, pgid)) return i;
  }
  return -1;
}

void untrack(int slot) {
  if (slot >= 0) g_running[slot].store(0);
}

struct sigaction g_previous[3];
const int kSignals[3] = {SIGINT, SIGTERM, SIGHUP};

void on_signal(int sig) {
  kill_running();
  for (int i = 0; i < 3; ++i) {
    if (kSignals[i] != sig) continue;
    const struct sigaction& prev = g_previous[i];
    if (!(prev.sa_flags & SA_SIGINFO) && prev.sa_handler != SIG_DFL && prev.sa_handler != SIG_IGN) {
      prev.sa_handler(sig);  // the writer's handler removes temporaries and re-raises
      return;
    }
  }
  signal(sig, SIG_DFL);
  raise(sig);
}

// Printable ASCII and valid-looking UTF-8 kept; control bytes become spaces.
std::string clean_line(const std::string& s, size_t max) {
  std::string o;
  for (unsigned char c : s) {
    if (c == '\t' || (c < 0x20) || c == 0x7f) o += ' ';
    else o += static_cast<char>(c);
  }
  while (!o.empty() && o.back() == ' ') o.pop_back();
  size_t b = 0;
  while (b < o.size() && o[b] == ' ') ++b;
  o = o.substr(b);
  if (o.size() > max) {
    size_t cut = max;
    while (cut > 0 && (static_cast<unsigned char>(o[cut]) & 0xC0) == 0x80) --cut;  // not inside a UTF-8 sequence
    o = o.substr(0, cut) + "…";
  }
  return o;
}

// The files the child's standard streams go to, opened before fork (close-on-exec).
struct StreamFiles {
  int in = -1, out = -1, err = -1;
  ~StreamFiles() { close(); }
  void close() {
    for (int* fd : {&in, &out, &err})
      if (*fd >= 0) ::close(std::exchange(*fd, -1));
  }
  bool open(const std::string& out_path, const std::string& err_path) {
    in = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    out = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    err = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    return in >= 0 && out >= 0 && err >= 0;
  }
};

// RLIMIT_FSIZE for the child: `max` bytes, never above the current hard limit.
struct rlimit file_size_limit(uint64_t max) {
  struct rlimit fsize {};
  ::getrlimit(RLIMIT_FSIZE, &fsize);
  const rlim_t want = max >= static_cast<uint64_t>(RLIM_INFINITY) ? RLIM_INFINITY : static_cast<rlim_t>(max);
  if (fsize.rlim_max == RLIM_INFINITY || want < fsize.rlim_max) fsize.rlim_max = want;
  fsize.rlim_cur = fsize.rlim_max;
  return fsize;
}

// In the child, after fork: only system calls, then exec (126/127 when that fails).
[[noreturn]] void exec_child(const StreamFiles& files, const std::string& dir, const struct rlimit& fsize, char* const argv[]) {
  sigset_t none;
  sigemptyset(&none);
  ::setpgid(0, 0);
  for (int s : {SIGINT, SIGTERM, SIGHUP, SIGPIPE, SIGXFSZ}) ::signal(s, SIG_DFL);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  if (::dup2(files.in, 0) < 0 || ::dup2(files.out, 1) < 0 || ::dup2(files.err, 2) < 0) ::_exit(126);
  if (::chdir(dir.c_str()) != 0) ::_exit(126);
  ::setrlimit(RLIMIT_FSIZE, &fsize);
#ifdef SYS_close_range
  ::syscall(SYS_close_range, 3u, ~0u, 0u);
#endif
  ::execve(argv[0], argv, environ);
  ::_exit(127);
}

// Waits for `pid` to exit (without reaping it) until the deadline; true when it timed out.
bool wait_until(pid_t pid, double timeout_seconds) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_seconds);
  int sleep_us = 500;
  for (;;) {
    siginfo_t si{};
    int w = ::waitid(P_PID, static_cast<id_t>(pid), &si, WEXITED | WNOHANG | WNOWAIT);
    if (w == 0 && si.si_pid == pid) return false;  // exited; reaped by the caller
    if (w < 0 && errno != EINTR) return false;
    if (std::chrono::steady_clock::now() >= deadline) return true;
    std::this_thread::sleep_for(std::chrono::microseconds(sleep_us));
    sleep_us = std::min(sleep_us * 2, 20000);
  }
}

// Kills the group (a hung child, and anything a finished one left running) and reaps the child.
void kill_and_reap(pid_t pid, Outcome& r) {
  ::kill(-pid, SIGKILL);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status)) r.exit_code = WEXITSTATUS(status);
  else if (WIFSIGNALED(status)) r.signal = WTERMSIG(status);
}

}  // namespace

Outcome run_shell(const std::string& command, const std::string& dir, const std::string& stdout_path,
                  const std::string& stderr_path, const Limits& limits) {
  Outcome r;
  // Everything the child needs is prepared here: after fork it only makes system calls.
  StreamFiles files;
  if (!files.open(stdout_path, stderr_path)) {
    r.spawn_error = std::string("cannot open the cell's files in ") + dir + ": " + std::strerror(errno);
    return r;
  }
  const struct rlimit fsize = file_size_limit(limits.max_file_size);
  std::string sh = "/bin/sh", dash_c = "-c", cmd = command;
  char* argv[] = {sh.data(), dash_c.data(), cmd.data(), nullptr};
  const pid_t pid = ::fork();
  if (pid < 0) {
    r.spawn_error = std::string("cannot start /bin/sh: ") + std::strerror(errno);
    return r;
  }
  if (pid == 0) exec_child(files, dir, fsize, argv);
  ::setpgid(pid, pid);  // also in the parent, so the group exists before any kill
  files.close();
  const int slot = track(pid);
  r.started = true;
  r.timed_out = wait_until(pid, limits.timeout_seconds);
  kill_and_reap(pid, r);
  untrack(slot);
  return r;
}

std::string shell_quote(const std::string& s) {
  std::string o = "'";
  for (char c : s) {
    if (c == '\'') o += "'\\''";
    else o += c;
  }
  return o + "'";
}

std::string file_tail(const std::string& path, size_t max, uint64_t* total) {
  std::string out;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return out;
  struct stat st {};
  if (::fstat(fd, &st) == 0 && st.st_size > 0) {
    const uint64_t size = static_cast<uint64_t>(st.st_size);
    if (total) *total = size;
    const uint64_t from = size > max ? size - max : 0;
    out.resize(static_cast<size_t>(size - from));
    size_t got = 0;
    while (got < out.size()) {
      ssize_t n = ::pread(fd, out.data() + got, out.size() - got, static_cast<off_t>(from + got));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      got += static_cast<size_t>(n);
    }
    out.resize(got);
  }
  ::close(fd);
  return out;
}

std::string last_line(const std::string& text, size_t max) {
  size_t end = text.size();
  while (end > 0) {
    size_t begin = text.rfind('\n', end - 1);
    begin = begin == std::string::npos ? 0 : begin + 1;
    std::string line = clean_line(text.substr(begin, end - begin), max);
    if (!line.empty()) return line;
    if (begin == 0) break;
    end = begin - 1;
  }
  return "";
}

std::string signal_text(int sig) {
  const char* name = sig == SIGKILL ? "SIGKILL" : sig == SIGSEGV ? "SIGSEGV" : sig == SIGABRT ? "SIGABRT"
                   : sig == SIGXFSZ ? "SIGXFSZ" : sig == SIGTERM ? "SIGTERM" : sig == SIGBUS ? "SIGBUS"
                   : sig == SIGINT ? "SIGINT" : sig == SIGPIPE ? "SIGPIPE" : sig == SIGFPE ? "SIGFPE" : sig == SIGILL ? "SIGILL" : nullptr;
  return "killed by signal " + std::to_string(sig) + (name ? std::string(" (") + name + ")" : "");
}

void kill_running() {
  for (auto& slot : g_running) {
    pid_t p = slot.load();
    if (p > 0) ::kill(-p, SIGKILL);
  }
}

void kill_running_on_signals() {
  for (int i = 0; i < 3; ++i) {
    struct sigaction sa {};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    struct sigaction prev {};
    ::sigaction(kSignals[i], nullptr, &prev);
    if (!(prev.sa_flags & SA_SIGINFO) && prev.sa_handler == SIG_IGN) continue;  // e.g. nohup
    if (!(prev.sa_flags & SA_SIGINFO) && prev.sa_handler == on_signal) continue;  // installed already
    g_previous[i] = prev;
    ::sigaction(kSignals[i], &sa, nullptr);
  }
}

}  // namespace lv::process
