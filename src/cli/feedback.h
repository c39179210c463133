// What lora-verify tells a person while it works, on standard error: a progress line (on a
// terminal, or forced with --progress), the phases with their times (--verbose), or nothing
// but errors (--quiet).
#pragma once

#include <chrono>
#include <string>
#include <string_view>

namespace lv::cli {

class Feedback {
 public:
  // progress: show progress lines; tty: stderr is a terminal (one line redrawn in place,
  // otherwise one line per phase); verbose: each phase's time when it ends.
  void configure(bool progress, bool tty, bool verbose);
  // The pipeline entered `phase`, with `fraction` of the work done.
  void operator()(std::string_view phase, double fraction);
  // Ends the feedback: clears a progress line on a terminal, prints the last phase's time.
  // Called before the report or an error is printed; may be called several times.
  void finish();

 private:
  void report(std::string_view phase, double fraction);
  bool progress_ = false, tty_ = false, verbose_ = false;
  bool line_open_ = false;  // a progress line on the terminal waits to be cleared
  std::string phase_;
  std::chrono::steady_clock::time_point start_{}, phase_start_{};
};

}  // namespace lv::cli
