// Renders the command table (commands.cpp) as --help text, a manual page and a bash
// completion script.
#include <algorithm>
#include <cctype>
#include <string>

#include "cli/commands.h"

namespace lv::cli {
namespace {

constexpr size_t kWidth = 92;       // help lines stay within this many columns
constexpr size_t kOptionColumn = 25;  // where an option's help starts

// Fills {loaders}, {families}, … from their tables; other braces ({in}, {out}) stay.
std::string fill(std::string text) {
  const std::pair<const char*, Values> sets[] = {{"{loaders}", Values::kLoaders}, {"{families}", Values::kFamilies},
                                                 {"{dialects}", Values::kDialects}, {"{dtypes}", Values::kDtypes},
                                                 {"{styles}", Values::kStyles}, {"{columns}", Values::kColumns}};
  for (const auto& [key, values] : sets) {
    std::string list;
    for (const std::string& v : choices(values))
      if (v != "none") list += (list.empty() ? "" : ", ") + v;
    for (size_t at = text.find(key); at != std::string::npos; at = text.find(key, at + list.size()))
      text.replace(at, std::string_view(key).size(), list);
  }
  return text;
}

// Word-wraps `text` (one paragraph) into lines: the first starts after `first` (already
// written), the rest after `indent` spaces.
std::string wrap(const std::string& text, size_t first, size_t indent) {
  std::string out;
  size_t col = first;
  size_t at = 0;
  while (at < text.size()) {
    size_t end = text.find(' ', at);
    if (end == std::string::npos) end = text.size();
    const std::string word = text.substr(at, end - at);
    at = end + 1;
    if (word.empty()) continue;
    if (col > indent && col + 1 + word.size() > kWidth) {
      out += "\n" + std::string(indent, ' ');
      col = indent;
    } else if (col > first || (col == first && !out.empty())) {
      out += ' ';
      ++col;
    }
    out += word;
    col += word.size();
  }
  return out;
}

std::string paragraphs(const std::string& text) {
  std::string out;
  size_t at = 0;
  while (at <= text.size()) {
    size_t end = text.find("\n\n", at);
    if (end == std::string::npos) end = text.size();
    out += wrap(fill(text.substr(at, end - at)), 0, 0) + "\n\n";
    at = end + 2;
  }
  return out;
}

std::string option_line(const BoundOption& b) {
  const Option& o = b.option;
  std::string head = "  " + (o.alias.empty() ? std::string() : std::string(o.alias) + ", ") + std::string(o.name);
  if (!o.value.empty()) head += " " + std::string(o.value);
  if (head.size() + 1 >= kOptionColumn) return head + "\n" + std::string(kOptionColumn, ' ') +
                                               wrap(fill(b.help), kOptionColumn, kOptionColumn) + "\n";
  return head + std::string(kOptionColumn - head.size(), ' ') + wrap(fill(b.help), kOptionColumn, kOptionColumn) + "\n";
}

// "0   ok: …" lines: the code, then its meaning wrapped under itself.
std::string exit_code_lines(std::string_view codes) {
  std::string out;
  size_t at = 0;
  while (at < codes.size()) {
    size_t end = codes.find('\n', at);
    if (end == std::string::npos) end = codes.size();
    const std::string line(codes.substr(at, end - at));
    const size_t gap = line.find("  ");
    const std::string code = line.substr(0, gap);
    const std::string text = gap == std::string::npos ? "" : line.substr(line.find_first_not_of(' ', gap));
    const std::string head = "  " + code + std::string(code.size() < 4 ? 4 - code.size() : 2, ' ');
    out += head + wrap(text, head.size(), 6) + "\n";
    at = end + 1;
  }
  return out;
}

std::string command_list() {
  std::string out = "commands:\n";
  for (const Command& c : commands()) {
    std::string head = "  " + std::string(c.name);
    out += head + std::string(12 - head.size(), ' ') + wrap(std::string(c.title), 12, 12) + "\n";
  }
  return out;
}

// True when an option of `c` takes a value from a named set (matched without regard to case).
bool names_values(const Command& c) {
  for (const BoundOption& b : options_of(c))
    if (names_a_set(b.option.values)) return true;
  return false;
}

// Text as roff: a backslash is \e, a line starting with . or ' is escaped, - is a minus.
std::string roff(const std::string& text) {
  std::string out;
  bool line_start = true;
  for (char ch : text) {
    if (line_start && (ch == '.' || ch == '\'')) out += "\\&";
    if (ch == '\\') out += "\\e";
    else if (ch == '-') out += "\\-";
    else out += ch;
    line_start = ch == '\n';
  }
  return out;
}

std::string upper(std::string_view s) {
  std::string out(s);
  for (char& ch : out) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  return out;
}

}  // namespace

std::string help_text(const Command& c) {
  const bool top = c.name.empty();
  std::string out = "lora-verify" + (top ? std::string() : " " + std::string(c.name)) + " — " + std::string(c.title) +
                    "\n\nusage:\n";
  if (top) {
    for (const Command& cmd : commands())
      for (std::string_view u : cmd.usage) out += "  " + std::string(u) + "\n";
    out += "  lora-verify COMMAND --help   the options of one command, with examples\n\n" + command_list() + "\n";
  } else {
    for (std::string_view u : c.usage) out += "  " + std::string(u) + "\n";
    out += "\n";
  }
  if (!top) out += paragraphs(c.about);
  out += top ? "options of verify and convert:\n" : "options:\n";
  for (const BoundOption& b : options_of(c)) out += option_line(b);
  if (names_values(c))
    out += "\n" + wrap("Values that name something (a loader, model family, style, layout, dtype or dialect) are "
                       "matched without regard to case: --dtype bf16, --for ComfyUI.", 0, 0) + "\n";
  out += "\n";
  if (top) out += paragraphs(c.about);
  out += c.examples.size() == 1 ? "example:\n" : "examples:\n";
  for (std::string_view e : c.examples) out += "  " + std::string(e) + "\n";
  out += "\nexit codes:\n" + exit_code_lines(c.exit_codes.empty() ? top_level().exit_codes : c.exit_codes);
  return out;
}

std::string manual_page(std::string_view version) {
  const Command& top = top_level();
  std::string out = ".\\\" Generated from lora-verify's command table (src/cli/commands.cpp).\n";
  out += ".TH LORA-VERIFY 1 \"\" \"lora-verify " + std::string(version) + "\" \"User Commands\"\n";
  out += ".SH NAME\nlora-verify \\- " + roff(std::string(top.title)) + "\n";
  out += ".SH SYNOPSIS\n.nf\n";
  for (const Command& c : commands())
    for (std::string_view u : c.usage) out += roff(std::string(u)) + "\n";
  out += ".fi\n.SH DESCRIPTION\n.nf\n" + roff(help_text(top)) + ".fi\n";
  for (const Command& c : commands())
    out += ".SH \"COMMAND " + upper(c.name) + "\"\n.nf\n" + roff(help_text(c)) + ".fi\n";
  out += ".SH SEE ALSO\nThe README and docs/ of lora-verify: the report schema, the loader profiles, the model "
         "families.\n";
  return out;
}

namespace {

std::string words(const std::vector<std::string>& list) {
  std::string s;
  for (const std::string& w : list) s += (s.empty() ? "" : " ") + w;
  return s;
}

std::string option_names(const Command& c) {
  std::vector<std::string> names;
  for (const BoundOption& b : options_of(c)) {
    if (!b.option.alias.empty()) names.emplace_back(b.option.alias);
    names.emplace_back(b.option.name);
  }
  return words(names);
}

// The case arms for the word after an option: its values, files, directories, or nothing.
std::string value_arms() {
  std::string out;
  std::vector<std::string> files, dirs, text;
  std::vector<std::string_view> seen;
  auto visit = [&](const Command& c) {
    for (const BoundOption& b : options_of(c)) {
      const Option* o = &b.option;
      if (o->value.empty() || std::find(seen.begin(), seen.end(), o->name) != seen.end()) continue;
      seen.push_back(o->name);
      std::string pattern = std::string(o->name) + (o->alias.empty() ? "" : "|" + std::string(o->alias));
      if (o->values == Values::kFile) files.push_back(pattern);
      else if (o->values == Values::kDir) dirs.push_back(pattern);
      else if (o->values == Values::kText) text.push_back(pattern);
      else out += "    " + pattern + ") COMPREPLY=($(compgen -W \"" + words(choices(o->values)) + "\" -- \"$cur\")); return ;;\n";
    }
  };
  visit(top_level());
  for (const Command& c : commands()) visit(c);
  auto join_arm = [](const std::vector<std::string>& p) {
    std::string s;
    for (const std::string& x : p) s += (s.empty() ? "" : "|") + x;
    return s;
  };
  if (!files.empty()) out += "    " + join_arm(files) + ") COMPREPLY=($(compgen -f -- \"$cur\")); return ;;\n";
  if (!dirs.empty()) out += "    " + join_arm(dirs) + ") COMPREPLY=($(compgen -d -- \"$cur\")); return ;;\n";
  if (!text.empty()) out += "    " + join_arm(text) + ") return ;;\n";
  return out;
}

}  // namespace

std::string bash_completion() {
  std::vector<std::string> names;
  for (const Command& c : commands()) names.emplace_back(c.name);
  std::string out =
      "# bash completion for lora-verify (share/bash-completion/completions/lora-verify), generated from its\n"
      "# command table (src/cli/commands.cpp).\n\n"
      "_lora_verify() {\n"
      "  local cur prev words cword\n"
      "  if declare -F _init_completion >/dev/null 2>&1; then\n"
      "    _init_completion || return\n"
      "  else\n"
      "    cur=\"${COMP_WORDS[COMP_CWORD]}\"; prev=\"${COMP_WORDS[COMP_CWORD-1]}\"\n"
      "    words=(\"${COMP_WORDS[@]}\"); cword=$COMP_CWORD\n"
      "  fi\n"
      "  local cmd=\"\" i\n"
      "  for ((i = 1; i < cword; i++)); do\n"
      "    case \"${words[i]}\" in\n"
      "      " + [&] { std::string s; for (const auto& n : names) s += (s.empty() ? "" : "|") + n; return s; }() +
      ") cmd=\"${words[i]}\"; break ;;\n"
      "    esac\n"
      "  done\n"
      "  case \"$prev\" in\n" + value_arms() + "  esac\n"
      "  local opts dirs=\"\"\n"
      "  case \"$cmd\" in\n"
      "    \"\") opts=\"" + option_names(top_level()) + "\" ;;\n";
  for (const Command& c : commands()) {
    out += "    " + std::string(c.name) + ") opts=\"" + option_names(c) + "\"";
    if (c.positional_values == Values::kDir) out += "; dirs=1";
    out += " ;;\n";
  }
  out +=
      "  esac\n"
      "  if [[ \"$cur\" == -* ]]; then\n"
      "    COMPREPLY=($(compgen -W \"$opts\" -- \"$cur\"))\n"
      "  elif [[ -n \"$dirs\" ]]; then\n"
      "    COMPREPLY=($(compgen -d -- \"$cur\"))\n"
      "  elif [[ -z \"$cmd\" ]]; then\n"
      "    COMPREPLY=($(compgen -W \"" + words(names) + "\" -- \"$cur\") $(compgen -f -X '!*.safetensors' -- \"$cur\") "
      "$(compgen -d -- \"$cur\"))\n"
      "  else\n"
      "    COMPREPLY=($(compgen -f -X '!*.safetensors' -- \"$cur\") $(compgen -d -- \"$cur\"))\n"
      "  fi\n"
      "}\n"
      "complete -F _lora_verify -o filenames lora-verify\n";
  return out;
}

}  // namespace lv::cli
