// How every command reports a usage error or a failure, and reads an integer option: one
// place, so all commands word them alike.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "cli/feedback.h"
#include "core/result.h"

namespace lv::cli {

Feedback& feedback();  // the progress and phase times of this run

// Names the command that usage errors are about ("" for the top level).
void set_usage_command(std::string_view command);
// Prints "error: [COMMAND: ]MSG (see lora-verify [COMMAND] --help)"; returns 64.
int usage(const std::string& msg);
// Prints "error: MESSAGE"; returns the error's exit code.
int fail(const Error& e);

// A decimal integer in lo..hi, or a message saying what was expected.
std::optional<std::string> parse_integer(const std::string& s, int64_t lo, int64_t hi, int64_t& out);

}  // namespace lv::cli
