#include "cli/messages.h"

#include <charconv>
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
  int64_t v = 0;
  const char* end = s.data() + s.size();
  auto [p, ec] = std::from_chars(s.data(), end, v);  // overflow is an error, not a wrap
  if (s.empty() || ec != std::errc() || p != end || v < lo || v > hi)
    return "'" + s + "' is not an integer in " + std::to_string(lo) + ".." + std::to_string(hi);
  out = v;
  return std::nullopt;
}

}  // namespace lv::cli
