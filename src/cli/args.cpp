#include "cli/args.h"

#include <CLI/CLI.hpp>

#include <cctype>
#include <list>

namespace lv::cli {
namespace {

std::string recase(std::string s, Values v) {
  for (char& c : s)
    c = static_cast<char>(v == Values::kDtypes ? std::toupper(static_cast<unsigned char>(c))
                                               : std::tolower(static_cast<unsigned char>(c)));
  return s;
}

bool is_option_word(const std::string& s) { return s.size() > 1 && s[0] == '-'; }

std::string name_of(const std::string& word) { return word.substr(0, word.find('=')); }

struct Registered {
  const BoundOption* bound;
  CLI::Option* cli;
  std::vector<std::string>* values;  // null for a flag
};

// The option a CLI11 message is about: it starts with one of the option's names.
const Registered* about(const std::string& what, const std::vector<Registered>& reg) {
  for (const Registered& r : reg) {
    const Option& o = r.bound->option;
    for (std::string_view n : {o.name, o.alias}) {
      if (n.empty()) continue;
      const std::string bare(n.substr(n.find_first_not_of('-')));
      for (const std::string& prefix : {std::string(n), bare})
        if (what.rfind(prefix, 0) == 0 && what.size() > prefix.size() &&
            (what[prefix.size()] == ':' || what[prefix.size()] == ' ' || what[prefix.size()] == ','))
          return &r;
    }
  }
  return nullptr;
}

std::string explain(const CLI::ParseError& e, const std::vector<Registered>& reg) {
  const std::string what = e.what();
  const Registered* r = about(what, reg);
  const std::string name = r ? std::string(r->bound->option.name) : std::string();
  if (r && what.find("flag override") != std::string::npos) return "option " + name + " takes no value";
  if (r && what.find("missing") != std::string::npos) return "option " + name + " needs a value";
  return "cannot read the arguments: " + what;
}

std::string takes_list(const Command& c) {
  std::string list;
  for (const BoundOption& b : options_of(c)) list += (list.empty() ? "" : ", ") + std::string(b.option.name);
  return list;
}

// An option word CLI11 did not take: one the table knows (another command's) or none.
std::string refuse_extra(const Command& c, const std::string& word) {
  const std::string name = name_of(word);
  const std::string command = c.name.empty() ? "verify" : std::string(c.name);
  if (find_option(name))
    return "option " + name + " does not apply to " + command + " (" + command + " takes " + takes_list(c) + ")";
  return "unknown option " + name;
}

}  // namespace

std::optional<size_t> command_word(const std::vector<std::string>& args) {
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& s = args[i];
    if (s == "--") return i + 1 < args.size() ? std::optional<size_t>(i + 1) : std::nullopt;
    if (!is_option_word(s)) return i;
    const Option* o = find_option(name_of(s));
    if (o && !o->value.empty() && s.find('=') == std::string::npos) ++i;  // its value
  }
  return std::nullopt;
}

std::optional<std::string> parse(const Command& command, const std::vector<std::string>& args, Args& out) {
  const std::vector<BoundOption> bound = options_of(command);
  CLI::App app;
  app.set_help_flag();  // --help is a table option like any other
  app.allow_extras();   // reported below with the table's words
  std::list<std::vector<std::string>> storage;  // stable addresses for CLI11
  std::vector<Registered> reg;
  for (const BoundOption& b : bound) {
    const Option& o = b.option;
    const std::string names = o.alias.empty() ? std::string(o.name) : std::string(o.alias) + "," + std::string(o.name);
    if (o.value.empty()) {
      reg.push_back({&b, app.add_flag(names)->disable_flag_override(), nullptr});
      continue;
    }
    std::vector<std::string>& values = storage.emplace_back();
    CLI::Option* opt = app.add_option(names, values)
                           ->expected(1)
                           ->allow_extra_args(false)
                           ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
    if (names_a_set(o.values)) opt->transform([v = o.values](std::string s) { return recase(std::move(s), v); });
    reg.push_back({&b, opt, &values});
  }
  std::vector<std::string> positional;
  app.add_option("arguments", positional);
  try {
    app.parse(std::vector<std::string>(args.rbegin(), args.rend()));
  } catch (const CLI::ParseError& e) {
    return explain(e, reg);
  }
  for (const std::string& extra : app.remaining())
    if (is_option_word(extra) && extra != "--") return refuse_extra(command, extra);
  out.positional = std::move(positional);
  for (const Registered& r : reg) {
    const std::string name(r.bound->option.name);
    if (r.cli->count() == 0) continue;
    out.given.push_back(name);
    if (!r.values) out.flags.insert(name);
    else if (r.bound->option.repeatable) out.lists[name] = *r.values;
    else if (r.values->size() > 1) return "option " + name + " given twice";
    else out.values[name] = r.values->front();
  }
  return std::nullopt;
}

}  // namespace lv::cli
