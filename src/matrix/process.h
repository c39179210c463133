// Running a shell command as a child process under limits: its own process group, stdin
// /dev/null, stdout and stderr into files, a file-size limit and a wall-clock timeout after
// which the whole group is killed. Signal handlers kill every group still running.
#pragma once

#include <cstdint>
#include <string>

namespace lv::process {

struct Limits {
  double timeout_seconds = 120;
  uint64_t max_file_size = UINT64_MAX;  // RLIMIT_FSIZE for the child
};

struct Outcome {
  bool started = false;
  std::string spawn_error;  // why it did not start
  bool timed_out = false;
  int exit_code = -1;  // when it exited
  int signal = 0;      // when it was killed by a signal
};

// Runs `/bin/sh -c command` in `dir` and waits at most `limits.timeout_seconds`; whatever
// happens, the child's process group is killed before this returns.
Outcome run_shell(const std::string& command, const std::string& dir, const std::string& stdout_path,
                  const std::string& stderr_path, const Limits& limits);

// A word the shell reads back as `s` ('…' with every ' escaped).
std::string shell_quote(const std::string& s);
// The last `max` bytes of a file ("" when it cannot be read); `total` gets its size.
std::string file_tail(const std::string& path, size_t max, uint64_t* total = nullptr);
// The last non-blank line of `text`, control bytes as spaces, at most `max` bytes (then "…").
std::string last_line(const std::string& text, size_t max = 300);
// "killed by signal 9 (SIGKILL)".
std::string signal_text(int sig);

// Kills the process group of every child still running (async-signal-safe), and installs
// SIGINT/SIGTERM/SIGHUP handlers that do so before the previous handlers run.
void kill_running();
void kill_running_on_signals();

}  // namespace lv::process
