// The command table: every command of lora-verify with its usage, description, options and
// examples, and every option with its value and help. One table feeds the parser (args.h),
// each --help, the manual page's per-command sections, the unknown-command list and the bash
// completion, so none of them can drift from another.
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace lv::cli {

// What an option's value (or a command's positional argument) is: it decides how the value
// is completed, and for the named sets, that the value is matched without regard to case.
enum class Values {
  kNone,      // a flag
  kText,      // free text or a number: nothing to complete
  kFile,      // a path to a file
  kDir,       // a path to a directory
  kLayouts,   // bfl, diffusers
  kStyles,    // the converter's output styles
  kDtypes,    // the dtypes lora-verify writes
  kLoaders,   // the loader profiles
  kFamilies,  // the model families (--model)
  kDialects,  // the dialects `sample` writes
  kColumns,   // the matrix's built-in columns (a comma-separated list)
};

// True for the named sets (kLayouts … kColumns): values matched without regard to case.
constexpr bool names_a_set(Values v) { return v >= Values::kLayouts; }

struct Option {
  std::string_view name;        // "--json"
  std::string_view alias;       // "-o" for --output, or empty
  std::string_view value;       // the value's name in help ("FILE"), empty for a flag
  Values values = Values::kNone;
  bool repeatable = false;      // may be given more than once (each adds one)
  std::string_view help;        // one paragraph; {loaders}, {families}, {dialects}, {dtypes},
                                // {styles} and {columns} are filled in from their tables
};

// An option as one command uses it: `help`, when given, replaces the option's own; `flag`
// makes an option that elsewhere takes a value a flag here (inspect --json).
struct CommandOption {
  std::string_view name;
  std::string_view help = {};
  bool flag = false;
};

struct Command {
  std::string_view name;     // "convert"; "" is the top level (the default command's options)
  std::string_view title;    // what it does, one line
  std::vector<std::string_view> usage;
  std::string_view positional;  // the positional arguments' name in help, "" for none
  Values positional_values = Values::kFile;
  std::string about;             // paragraphs, separated by blank lines
  std::vector<CommandOption> options;
  std::vector<std::string_view> examples;
  std::string_view exit_codes;  // a command's own exit codes, "" for the common ones
};

std::span<const Command> commands();          // the named commands, in help order
const Command* find_command(std::string_view name);
const Command& top_level();                   // lora-verify --help
const Option* find_option(std::string_view name);  // by name or alias, in the shared table
// A command's option, with that command's help for it.
struct BoundOption {
  Option option;  // as this command takes it
  std::string help;
};
std::vector<BoundOption> options_of(const Command& c);
// The values a set holds (for completion, help and case-insensitive matching).
std::vector<std::string> choices(Values v);
std::string command_names();  // "verify, convert, …" for messages

std::string help_text(const Command& c);
// The whole manual page (roff), every command in its own section.
std::string manual_page(std::string_view version);
// A bash completion script for every command, option and named value in the table.
std::string bash_completion();

}  // namespace lv::cli
