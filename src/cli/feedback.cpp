#include "cli/feedback.h"

#include <unistd.h>

#include <cstdio>
#include <algorithm>
#include <cstdlib>

namespace lv::cli {

void Feedback::configure(bool progress, bool tty, bool verbose) {
  progress_ = progress;
  tty_ = tty;
  verbose_ = verbose;
  start_ = phase_start_ = std::chrono::steady_clock::now();
}

namespace {

// Test hook: LV_TEST_PHASE_DELAY_MS=N sleeps N ms as each phase begins (after its progress
// line), so a test can deliver a signal in any phase. Not meant for anything else.
void phase_delay() {
  static const int ms = [] {
    const char* v = std::getenv("LV_TEST_PHASE_DELAY_MS");
    return v ? std::max(0, std::atoi(v)) : 0;
  }();
  if (ms > 0) ::usleep(static_cast<useconds_t>(ms) * 1000);
}

}  // namespace

void Feedback::operator()(std::string_view phase, double fraction) {
  report(phase, fraction);
  phase_delay();
}

void Feedback::report(std::string_view phase, double fraction) {
  if (!progress_ && !verbose_) return;
  const auto now = std::chrono::steady_clock::now();
  if (phase != phase_) {
    if (verbose_ && !phase_.empty()) {
      if (line_open_) std::fputs("\r\033[K", stderr);
      line_open_ = false;
      std::fprintf(stderr, "lora-verify: %s took %.2f s\n", phase_.c_str(),
                   std::chrono::duration<double>(now - phase_start_).count());
    }
    phase_ = std::string(phase);
    phase_start_ = now;
  }
  if (progress_ && phase != "done") {
    const int percent = static_cast<int>(fraction * 100 + 0.5);
    if (tty_) {
      std::fprintf(stderr, "\r\033[Klora-verify: %3d%% %.60s", percent, phase_.c_str());
      line_open_ = true;
    } else {
      std::fprintf(stderr, "lora-verify: %3d%% %s\n", percent, phase_.c_str());
    }
  }
  std::fflush(stderr);
}

void Feedback::finish() {
  if (line_open_) std::fputs("\r\033[K", stderr);
  line_open_ = false;
  if (verbose_ && !phase_.empty()) {
    const auto now = std::chrono::steady_clock::now();
    if (phase_ != "done")
      std::fprintf(stderr, "lora-verify: %s took %.2f s\n", phase_.c_str(),
                   std::chrono::duration<double>(now - phase_start_).count());
    std::fprintf(stderr, "lora-verify: %.2f s in all\n", std::chrono::duration<double>(now - start_).count());
  }
  phase_.clear();
  std::fflush(stderr);
}

}  // namespace lv::cli
