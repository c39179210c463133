// Parses one command's arguments with CLI11, from the command table (commands.h): the
// options a command takes are exactly those its table row lists.
#pragma once

#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "cli/commands.h"

namespace lv::cli {

struct Args {
  std::vector<std::string> positional;                   // in order, without the command word
  std::map<std::string, std::string> values;             // by the option's long name
  std::map<std::string, std::vector<std::string>> lists; // repeatable options, in order
  std::set<std::string> flags;                           // flags given, by long name
  std::vector<std::string> given;                        // long names of every option given, in order

  bool has(const std::string& name) const { return values.count(name) || flags.count(name) || lists.count(name); }
  const std::string* value(const std::string& name) const {
    auto it = values.find(name);
    return it == values.end() ? nullptr : &it->second;
  }
};

// The index of the command word in `args`: the first argument that is neither an option nor
// an option's value (nullopt when there is none).
std::optional<size_t> command_word(const std::vector<std::string>& args);

// Parses `args` (the command word removed) as `command` takes them; returns a message for a
// usage error: an unknown option, one the command does not take, a missing value, a value
// given to a flag, an option given twice.
std::optional<std::string> parse(const Command& command, const std::vector<std::string>& args, Args& out);

}  // namespace lv::cli
