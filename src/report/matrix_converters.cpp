// Converter columns of the compatibility matrix (see matrix_converters.h).
#include "report/matrix_converters.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <thread>

#include "report/pipeline.h"

extern char** environ;

namespace lv::report {
namespace {

// ---- running processes ---------------------------------------------------------------------

// Process groups of the converters running now (0: free slot), for the signal handlers.
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
  kill_running_converters();
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

std::string quote(const std::string& s) {
  std::string o = "'";
  for (char c : s) {
    if (c == '\'') o += "'\\''";
    else o += c;
  }
  return o + "'";
}

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  if (from.empty()) return s;
  for (size_t at = 0; (at = s.find(from, at)) != std::string::npos; at += to.size()) s.replace(at, from.size(), to);
  return s;
}

struct Run {
  bool started = false;
  std::string spawn_error;
  bool timed_out = false;
  int exit_code = -1;  // when exited
  int signal = 0;      // when killed by a signal
};

// Runs `/bin/sh -c cmd` in `dir` (its own process group, stdin /dev/null, stdout/stderr to
// files, RLIMIT_FSIZE = max_output) and waits at most `timeout` seconds.
Run run_shell(const std::string& cmd, const std::string& dir, const std::string& out_log, const std::string& err_log,
              const ConverterLimits& limits) {
  Run r;
  // Everything the child needs is prepared here: after fork it only makes system calls.
  int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  int out_fd = ::open(out_log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  int err_fd = ::open(err_log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  auto close_all = [&] {
    for (int fd : {null_fd, out_fd, err_fd})
      if (fd >= 0) ::close(fd);
  };
  if (null_fd < 0 || out_fd < 0 || err_fd < 0) {
    r.spawn_error = std::string("cannot open the cell's files in ") + dir + ": " + std::strerror(errno);
    close_all();
    return r;
  }
  struct rlimit fsize {};
  ::getrlimit(RLIMIT_FSIZE, &fsize);
  const rlim_t want = limits.max_output >= static_cast<uint64_t>(RLIM_INFINITY) ? RLIM_INFINITY : static_cast<rlim_t>(limits.max_output);
  if (fsize.rlim_max == RLIM_INFINITY || want < fsize.rlim_max) fsize.rlim_max = want;
  fsize.rlim_cur = fsize.rlim_max;
  std::string sh = "/bin/sh", dash_c = "-c", command = cmd;
  char* argv[] = {sh.data(), dash_c.data(), command.data(), nullptr};
  sigset_t none;
  sigemptyset(&none);

  const pid_t pid = ::fork();
  if (pid < 0) {
    r.spawn_error = std::string("cannot start /bin/sh: ") + std::strerror(errno);
    close_all();
    return r;
  }
  if (pid == 0) {
    ::setpgid(0, 0);
    for (int s : {SIGINT, SIGTERM, SIGHUP, SIGPIPE, SIGXFSZ}) ::signal(s, SIG_DFL);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    if (::dup2(null_fd, 0) < 0 || ::dup2(out_fd, 1) < 0 || ::dup2(err_fd, 2) < 0) ::_exit(126);
    if (::chdir(dir.c_str()) != 0) ::_exit(126);
    ::setrlimit(RLIMIT_FSIZE, &fsize);
#ifdef SYS_close_range
    ::syscall(SYS_close_range, 3u, ~0u, 0u);
#endif
    ::execve(argv[0], argv, environ);
    ::_exit(127);
  }
  ::setpgid(pid, pid);  // also in the parent, so the group exists before any kill
  close_all();
  const int slot = track(pid);
  r.started = true;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(limits.timeout_seconds);
  int sleep_us = 500;
  for (;;) {
    siginfo_t si{};
    int w = ::waitid(P_PID, static_cast<id_t>(pid), &si, WEXITED | WNOHANG | WNOWAIT);
    if (w == 0 && si.si_pid == pid) break;  // exited; reaped below
    if (w < 0 && errno != EINTR) break;
    if (std::chrono::steady_clock::now() >= deadline) {
      r.timed_out = true;
      break;
    }
    std::this_thread::sleep_for(std::chrono::microseconds(sleep_us));
    sleep_us = std::min(sleep_us * 2, 20000);
  }
  // The whole group goes: a hung converter, and anything a finished one left running.
  ::kill(-pid, SIGKILL);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  untrack(slot);
  if (WIFEXITED(status)) r.exit_code = WEXITSTATUS(status);
  else if (WIFSIGNALED(status)) r.signal = WTERMSIG(status);
  return r;
}

// The last `max` bytes of a file ("" when it cannot be read).
std::string tail(const std::string& path, size_t max, uint64_t* total = nullptr) {
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

std::string last_line(const std::string& text) {
  size_t end = text.size();
  while (end > 0) {
    size_t begin = text.rfind('\n', end - 1);
    begin = begin == std::string::npos ? 0 : begin + 1;
    std::string line = clean_line(text.substr(begin, end - begin), 300);
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

std::string fmt(double e) {
  if (std::isinf(e)) return "inf";
  if (std::isnan(e)) return "nan";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1e", e);
  return buf;
}

// "not equivalent: …; worst: a (different, 1.0e+00), b (missing), …" — at most three.
std::string worst_modules(const Report& r) {
  std::vector<const ModuleRow*> bad;
  for (const auto& m : r.modules)
    if (m.status != "equivalent") bad.push_back(&m);
  auto weight = [](const ModuleRow* m) { return m->status == "different" ? m->relative_error : INFINITY; };
  std::stable_sort(bad.begin(), bad.end(), [&](const ModuleRow* a, const ModuleRow* b) {
    const double wa = weight(a), wb = weight(b);
    if (wa != wb) return wa > wb;
    return a->target < b->target;
  });
  std::string out;
  for (size_t i = 0; i < bad.size() && i < 3; ++i) {
    out += (i ? ", " : "") + bad[i]->target + " (" + bad[i]->status;
    if (bad[i]->status == "different") out += ", rel. error " + fmt(bad[i]->relative_error);
    out += ")";
  }
  if (bad.size() > 3) out += ", and " + std::to_string(bad.size() - 3) + " more";
  return out;
}

bool write_all(const std::string& path, const uint8_t* data, size_t n) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return false;
  size_t done = 0;
  while (done < n) {
    ssize_t w = ::write(fd, data + done, n - done);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) break;
    done += static_cast<size_t>(w);
  }
  return ::close(fd) == 0 && done == n;
}

}  // namespace

std::string variant_slug(const std::string& variant) {
  std::string o;
  for (unsigned char c : variant) {
    if (std::isalnum(c)) o += static_cast<char>(std::tolower(c));
    else if (c == '.' || c == '_') o += static_cast<char>(c);
    else if (!o.empty() && o.back() != '-') o += '-';
  }
  while (!o.empty() && (o.back() == '-' || o.back() == '.')) o.pop_back();
  while (!o.empty() && (o.front() == '-' || o.front() == '.')) o.erase(0, 1);
  if (o.size() > 150) o = o.substr(o.size() - 150);
  return o.empty() ? "variant" : o;
}

std::optional<std::string> parse_converter(const std::string& spec, MatrixConverter& out) {
  const size_t eq = spec.find('=');
  if (eq == std::string::npos || eq == 0) return "--converter needs NAME=CMD, got '" + spec + "'";
  out.name = spec.substr(0, eq);
  out.command = spec.substr(eq + 1);
  for (unsigned char c : out.name)
    if (!std::isalnum(c) && c != '.' && c != '_' && c != '-')
      return "--converter NAME may hold only letters, digits, '.', '_' and '-', got '" + out.name + "'";
  if (out.name.size() > 64) return "--converter NAME is longer than 64 characters: '" + out.name + "'";
  if (out.name == "." || out.name == "..") return "--converter NAME cannot be '" + out.name + "'";
  for (const auto& c : style_columns())
    if (out.name == c) return "--converter NAME '" + out.name + "' is a built-in column; choose another name";
  if (out.command.find("{in}") == std::string::npos || out.command.find("{out}") == std::string::npos)
    return "--converter " + out.name + ": CMD must contain {in} and {out}, got '" + out.command + "'";
  return std::nullopt;
}

void kill_running_converters() {
  for (auto& slot : g_running) {
    pid_t p = slot.load();
    if (p > 0) ::kill(-p, SIGKILL);
  }
}

void kill_converters_on_signals() {
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

MatrixCell run_converter_cell(const MatrixConverter& conv, const ConverterLimits& limits,
                              const std::shared_ptr<const st::SafetensorsFile>& source, const ConverterInput& input,
                              const std::string& variant, const flux::Family* family) {
  namespace fs = std::filesystem;
  MatrixCell c;
  c.column = conv.name;
  const std::string log_rel = "logs/" + conv.name + "/" + variant_slug(variant) + ".log";

  std::error_code ec;
  fs::path base = fs::temp_directory_path(ec);
  if (ec) base = "/tmp";
  std::string templ = (base / "lv-cell-XXXXXX").string();
  if (!::mkdtemp(templ.data())) {
    c.outcome = "failed";
    c.reason = "cannot create a temporary directory in " + base.string() + ": " + std::strerror(errno);
    return c;
  }
  const std::string dir = templ;
  struct Cleanup {
    std::string dir;
    ~Cleanup() {
      std::error_code e;
      std::filesystem::remove_all(dir, e);
    }
  } cleanup{dir};
  const std::string in = dir + "/in.safetensors", out = dir + "/out.safetensors";
  const std::string out_log = dir + "/.stdout", err_log = dir + "/.stderr";

  bool wrote = false;
  if (input.bytes) {
    wrote = write_all(in, input.bytes->data(), input.bytes->size());
  } else {
    fs::copy_file(input.path, in, fs::copy_options::overwrite_existing, ec);
    wrote = !ec;
  }
  if (!wrote) {
    c.outcome = "failed";
    c.reason = "cannot write the input file for the converter in " + dir;
    return c;
  }

  std::string cmd = replace_all(replace_all(conv.command, "{in}", quote(in)), "{out}", quote(out));
  Run run = run_shell(cmd, dir, out_log, err_log, limits);

  // What the converter said, with the cell's paths made stable.
  auto stable = [&](std::string s) { return replace_all(replace_all(replace_all(s, in, "{in}"), out, "{out}"), dir, "{dir}"); };
  uint64_t out_total = 0, err_total = 0;
  const std::string so_raw = tail(out_log, 32 << 10, &out_total), se_raw = tail(err_log, 32 << 10, &err_total);
  const bool out_cut = out_total > so_raw.size(), err_cut = err_total > se_raw.size();
  const std::string so = stable(so_raw), se = stable(se_raw);

  if (!run.started) {
    c.outcome = "failed";
    c.reason = run.spawn_error;
  } else if (run.timed_out) {
    c.outcome = "timed out";
    char buf[64];
    std::snprintf(buf, sizeof buf, "%g", limits.timeout_seconds);
    c.reason = std::string("no result within ") + buf + " s (--converter-timeout); its process group was killed";
  } else if (run.signal != 0 || run.exit_code != 0) {
    c.outcome = "failed";
    c.reason = run.signal ? signal_text(run.signal) : "exit code " + std::to_string(run.exit_code);
    if (run.signal == SIGXFSZ)
      c.reason += ": a file grew past --converter-max-output " + std::to_string(limits.max_output) + " bytes";
    const std::string line = last_line(se);
    if (!line.empty()) c.reason += ": " + line;
  } else {
    struct stat st {};
    if (::lstat(out.c_str(), &st) != 0) {
      c.outcome = "no output";
      c.reason = "exit code 0, but {out} was not written";
      const std::string line = last_line(se);
      if (!line.empty()) c.reason += " (stderr: " + line + ")";
    } else if (!S_ISREG(st.st_mode)) {
      c.outcome = "unreadable output";
      c.reason = "{out} is not a regular file";
    } else if (static_cast<uint64_t>(st.st_size) >= limits.max_output) {
      // Writes past the limit fail (RLIMIT_FSIZE), so a file at the limit was cut there.
      c.outcome = "unreadable output";
      c.reason = "{out} reached the --converter-max-output limit of " + std::to_string(limits.max_output) +
                 " bytes (writes past it fail)";
    } else {
      const std::string name = "output of " + conv.name;
      auto file = st::SafetensorsFile::open(out);
      if (!file.ok()) {
        c.outcome = "unreadable output";
        c.reason = stable(replace_all(file.error().message, out, name));
      } else {
        auto converted = std::make_shared<const st::SafetensorsFile>(std::move(file).value());
        PipelineOptions cmp;
        cmp.family = family;
        cmp.threads = 1;  // parallelism is across rows
        auto r = run_compare(source, converted, cmp);
        if (!r.ok()) {
          c.outcome = "unreadable output";
          c.reason = stable(replace_all(r.error().message, out, name));
        } else if (r->pass) {
          c.outcome = "equivalent";
          c.worst_error = r->summary.worst_relative_error;
        } else {
          c.outcome = "not equivalent";
          c.worst_error = r->summary.worst_relative_error;
          c.reason = r->verdict;
          const std::string worst = worst_modules(*r);
          if (!worst.empty()) c.reason += "; worst: " + worst;
          c.reason = stable(replace_all(c.reason, out, name));
        }
      }
    }
  }

  if (c.outcome != "equivalent") {
    c.log = log_rel;
    std::string t;
    t += "converter: " + conv.name + "\ncommand: " + conv.command + "\nvariant: " + variant + "\n";
    t += "ran: " + cmd + "\n";
    t += "paths: {dir} is " + dir + " (the converter's temporary directory, removed after the run), {in} is " + in +
         ", {out} is " + out + "\n";
    t += "outcome: " + c.outcome + (c.reason.empty() ? "" : ": " + c.reason) + "\n";
    auto section = [&](const char* what, const std::string& text, uint64_t total, bool cut, size_t kept) {
      t += std::string("--- ") + what;
      if (cut) t += " (last " + std::to_string(kept) + " of " + std::to_string(total) + " bytes)";
      t += " ---\n" + text;
      if (!text.empty() && text.back() != '\n') t += "\n";
    };
    section("stdout", so, out_total, out_cut, so_raw.size());
    section("stderr", se, err_total, err_cut, se_raw.size());
    c.log_text = std::move(t);
  }
  return c;
}

}  // namespace lv::report
