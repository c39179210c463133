#include "cli/messages.h"

#include <cstdio>

namespace lv::cli {
namespace {
std::string g_command;  // the command usage errors are about
}  // namespace

Feedback& feedback() {
  static Feedback f;
  return f;
}

void set_usage_command(std::string_view command) { g_command = std::string(command); }

int usage(const std::string& msg) {
  feedback().finish();
  const std::string prefix = g_command.empty() ? "" : g_command + ": ";
  const std::string hint = "lora-verify " + (g_command.empty() ? "" : g_command + " ") + "--help";
  std::fprintf(stderr, "error: %s%s (see %s)\n", prefix.c_str(), msg.c_str(), hint.c_str());
  return static_cast<int>(ErrorCode::kUsage);
}

int fail(const Error& e) {
  feedback().finish();
  std::fprintf(stderr, "error: %s\n", e.message.c_str());
  return static_cast<int>(e.code);
}

std::optional<std::string> parse_integer(const std::string& s, int64_t lo, int64_t hi, int64_t& out) {
  const std::string why = "'" + s + "' is not an integer in " + std::to_string(lo) + ".." + std::to_string(hi);
  const bool negative = !s.empty() && s[0] == '-';
  const size_t digits = s.size() - (negative ? 1 : 0);
  if (digits == 0 || digits > 18) return why;
  int64_t v = 0;
  for (size_t i = negative ? 1 : 0; i < s.size(); ++i) {
    if (s[i] < '0' || s[i] > '9') return why;
    v = v * 10 + (s[i] - '0');
  }
  if (negative) v = -v;
  if (v < lo || v > hi) return why;
  out = v;
  return std::nullopt;
}

}  // namespace lv::cli
