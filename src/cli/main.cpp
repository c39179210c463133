// The lora-verify command line: parses options, runs a pipeline, renders the report, and
// maps the outcome to a documented exit code. No logic of its own beyond that.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <iostream>
#include <map>
#include <optional>
#include <cctype>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "flux/family.h"
#include "loaders/profile.h"
#include "lora/generate.h"
#include "lora/loader.h"
#include "cli/corpus_cmd.h"
#include "cli/feedback.h"
#include "cli/matrix_cmd.h"
#include "report/inspect.h"
#include "report/loader_rows.h"
#include "report/pipeline.h"
#include "safetensors/reader.h"
#include "safetensors/writer.h"

namespace {

using lv::Error;
using lv::ErrorCode;

constexpr const char* kHelp = R"(lora-verify — proves FLUX LoRA conversions correct (FLUX.1, Chroma, Flex.1, FLUX.2)

usage:
  lora-verify IN.safetensors [options]       convert in memory, verify, report
  lora-verify verify IN.safetensors [options]  (the same, spelled out)
  lora-verify convert IN.safetensors -o OUT.safetensors [options]
                                             convert, re-read, verify, then write atomically
  lora-verify compare SOURCE CONVERTED [options]
                                             verify a conversion made by any tool
  lora-verify inspect FILE [--json]          container validity, metadata, dtypes, dialect
  lora-verify sample OUT.safetensors [sample options]
                                             write a generated FLUX.1 LoRA (seeded)
  lora-verify matrix [options] [INPUTS...]   the compatibility matrix for release notes
  lora-verify corpus DIR [--filter TEXT]     the matrix's variants as files + manifest.json
  lora-verify COMMAND --help                 the options of one command, with an example

options:
  --to bfl|diffusers     output layout (default: diffusers-named inputs go to bfl,
                         BFL-named inputs go to diffusers)
  --style S              key style: kohya (default for bfl), comfy, peft, bfl;
                         diffusers (the only style of the diffusers layout)
  --dtype D              output dtype: F32, F64, F16, BF16 (default: the input's)
  --json FILE            also write the report as JSON (FILE "-" prints it instead of text)
  --markdown FILE        also write the report as Markdown ("-" prints it instead of text)
  --all                  list every module in the text report, not only failing ones
  --threads N            threads for the equivalence checks (default 2)
  --no-dense             refuse LoKr/LoHa deltas on fused targets instead of writing
                         them as dense .diff tensors
  -o, --output FILE      output file of convert (never the input; written atomically)
  --for LOADER           write (or, without convert, verify in memory) the form LOADER
                         loads completely: invokeai, invokeai-5.1, comfyui, diffusers,
                         sd-scripts, forge, sdcpp. Tensors LOADER cannot take in any form it
                         reads, or a file LOADER rejects in every form, are refused (exit 65); not
                         with --style or --to
  --drop-unsupported     with --for: leave those tensors out instead, and report each with
                         the share of its target's delta that is lost
  --allow-unknown        with --for: write the output even where how LOADER reads it is
                         not established (refused with exit 65 otherwise)
  --model FAMILY         the model family when the file's evidence does not settle it
                         (verify, convert, compare, inspect, sample): flux1, chroma, flex1,
                         flux2-dev, flux2-klein-9b, flux2-klein-4b (see docs/families.md)

Values are matched without regard to case (--dtype bf16, --for ComfyUI).

Without --for, --style or --to, convert writes the style that loads completely in the most
profiled loaders for this input (kohya when the file has only block modules). Every report
ends with each loader's verdict on the input and the output (loads, drops, rejects,
unknown) and, for each loader the input does not serve, the command that writes a file it
loads.
  --quiet                print errors only: no report on standard output unless --json -
                         or --markdown - asks for one (report files are still written);
                         the exit code tells the outcome
  --verbose              print each phase with its time on standard error
  --progress             a progress line on standard error even when it is not a terminal
                         (on a terminal it is shown unless --quiet)
  -h, --help             this text (after a command: that command's options)
  --version              the version

sample options:
  --dialect D            diffusers (default), diffusers-old, fal, onetrainer, kohya, comfy,
                         ai-toolkit, bfl, onetrainer-bfl, xlabs
  --rank R               LoRA rank (default 4)
  --dtype D              F32, F64, F16, BF16 (default BF16)
  --seed N               random seed (default 1)
  --alpha A              write .alpha tensors with value A
  --no-proj-mlp          leave out the single blocks' proj_mlp (the historic crash case)
  --bias                 add bias deltas
  --tiny                 a tiny FLUX-shaped layout instead of FLUX.1-dev's

exit codes:
  0   ok: every module equivalent and no error finding (inspect: a valid container)
  1   checks failed: a module differs beyond tolerance, an error finding, or no module
      could be checked ("nothing converted: ...")
  64  usage error (also: an option the command does not use, an unknown command)
  65  invalid input data (malformed safetensors, not a FLUX.1 LoRA, refused conversion)
  66  cannot open an input file
  70  internal error (a bug in lora-verify; please report it)
  73  cannot create an output file
  74  I/O error while reading or writing (also: standard output could not be written)
  130, 143  interrupted by SIGINT or SIGTERM (temporary files removed, outputs unchanged)
)";

constexpr const char* kVerifyHelp = R"(lora-verify verify — convert in memory, re-read, verify, report

usage:
  lora-verify IN.safetensors [options]
  lora-verify verify IN.safetensors [options]

Reads IN, detects its dialect, converts it in memory to the other layout, re-reads the
converted bytes with the same strict reader and checks module by module that both apply
the same weight deltas. Nothing is written except the reports asked for.

options:
  --to bfl|diffusers     output layout (default: diffusers-named inputs go to bfl,
                         BFL-named inputs go to diffusers)
  --style S              key style: kohya (default for bfl), comfy, peft, bfl; diffusers
  --dtype D              output dtype: F32, F64, F16, BF16 (default: the input's)
  --json FILE            also write the report as JSON ("-": print it instead of text)
  --markdown FILE        also write the report as Markdown ("-": print it instead of text)
  --all                  list every module in the text report, not only failing ones
  --threads N            threads for the equivalence checks (default 2)
  --no-dense             refuse LoKr/LoHa deltas on fused targets instead of writing
                         them as dense .diff tensors
  --for LOADER           check the form LOADER loads completely instead (invokeai,
                         invokeai-5.1, comfyui, diffusers, sd-scripts, forge, sdcpp); not with
                         --style or --to
  --drop-unsupported     with --for: leave out what LOADER cannot take, and report it
  --allow-unknown        with --for: check it even where how LOADER reads it is not established
  --quiet                print errors only: no report on standard output unless --json -
                         or --markdown - asks for one (report files are still written);
                         the exit code tells the outcome
  --verbose              print each phase with its time on standard error
  --progress             a progress line on standard error even when it is not a terminal
                         (on a terminal it is shown unless --quiet)
  --model FAMILY         the model family when the evidence does not settle it (flux1,
                         chroma, flex1, flux2-dev, flux2-klein-9b, flux2-klein-4b)
  -h, --help             this text

The report ends with each profiled loader's verdict on the input and on the conversion
(loads, drops, rejects, unknown) and, for each loader the input does not serve, the command
that writes a file it loads.

example:
  lora-verify my_lora.safetensors --style comfy --json report.json
  lora-verify my_lora.safetensors --for invokeai
)";

constexpr const char* kConvertHelp = R"(lora-verify convert — convert, re-read, verify, then write atomically

usage:
  lora-verify convert IN.safetensors -o OUT.safetensors [options]

Converts IN, writes a temporary file beside OUT (never over IN), re-reads it and verifies
it against IN, and only then renames it onto OUT (a replaced file keeps its mode; a symbolic
link is written through). On FAIL nothing is written and a previous OUT is unchanged. A
device or FIFO (and -, standard output) gets the verified file streamed into it.
Without --for, --style or --to, OUT gets the style that loads completely in the most
profiled loaders for this input (kohya when the file has only block modules); the report
names the loaders it does not serve.

options:
  -o, --output FILE      the output file (required)
  --to bfl|diffusers     output layout (default: diffusers-named inputs go to bfl,
                         BFL-named inputs go to diffusers)
  --style S              key style: kohya (default for bfl), comfy, peft, bfl; diffusers
  --dtype D              output dtype: F32, F64, F16, BF16 (default: the input's)
  --json FILE            also write the report as JSON ("-": print it instead of text)
  --markdown FILE        also write the report as Markdown ("-": print it instead of text)
  --all                  list every module in the text report, not only failing ones
  --threads N            threads for the equivalence checks (default 2)
  --no-dense             refuse LoKr/LoHa deltas on fused targets instead of writing
                         them as dense .diff tensors
  --for LOADER           write the form LOADER loads completely: invokeai, invokeai-5.1,
                         comfyui, diffusers, sd-scripts, forge, sdcpp. Tensors LOADER cannot
                         take in any form it reads, or a file it rejects in every form, are refused
                         (exit 65); not with --style/--to
  --drop-unsupported     with --for: leave those tensors out instead, and report each with
                         the share of its target's delta that is lost
  --allow-unknown        with --for: write the output even where how LOADER reads it is
                         not established (refused with exit 65 otherwise)
  --quiet                print errors only: no report on standard output unless --json -
                         or --markdown - asks for one (report files are still written);
                         the exit code tells the outcome
  --verbose              print each phase with its time on standard error
  --progress             a progress line on standard error even when it is not a terminal
                         (on a terminal it is shown unless --quiet)
  --model FAMILY         the model family when the evidence does not settle it (flux1,
                         chroma, flex1, flux2-dev, flux2-klein-9b, flux2-klein-4b)
  -h, --help             this text

example:
  lora-verify convert my_lora.safetensors -o my_lora_comfy.safetensors --style comfy
  lora-verify convert my_lora.safetensors -o my_lora.invokeai.safetensors --for invokeai
)";

constexpr const char* kCompareHelp = R"(lora-verify compare — verify a conversion made by any tool

usage:
  lora-verify compare SOURCE.safetensors CONVERTED.safetensors [options]

Checks module by module that CONVERTED (in any dialect lora-verify reads) applies the same
weight deltas as SOURCE, to the rounding of the coarser dtype.

options:
  --json FILE            also write the report as JSON ("-": print it instead of text)
  --markdown FILE        also write the report as Markdown ("-": print it instead of text)
  --all                  list every module in the text report, not only failing ones
  --threads N            threads for the equivalence checks (default 2)
  --quiet                print errors only: no report on standard output unless --json -
                         or --markdown - asks for one (report files are still written);
                         the exit code tells the outcome
  --verbose              print each phase with its time on standard error
  --progress             a progress line on standard error even when it is not a terminal
                         (on a terminal it is shown unless --quiet)
  --model FAMILY         the model family when the evidence does not settle it (flux1,
                         chroma, flex1, flux2-dev, flux2-klein-9b, flux2-klein-4b)
  -h, --help             this text

example:
  lora-verify compare original.safetensors someone_elses_conversion.safetensors --all
)";

constexpr const char* kInspectHelp = R"(lora-verify inspect — container validity, metadata, dtypes, dialect

usage:
  lora-verify inspect FILE.safetensors [--json]

Validates the container with the strict reader and describes it: tensors and bytes per
dtype, the metadata, the detected dialect with its evidence, unrecognised tensors, the
modules with their ranks and alphas, tensors holding NaN or Inf, an untrained LoRA (every
up factor zero) and the other findings. Exit 0 for a valid container whatever it holds.

options:
  --json                 print the description as JSON
  --quiet                print errors only: no report on standard output unless --json -
                         or --markdown - asks for one (report files are still written);
                         the exit code tells the outcome
  --verbose              print each phase with its time on standard error
  --progress             a progress line on standard error even when it is not a terminal
                         (on a terminal it is shown unless --quiet)
  --model FAMILY         the model family when the evidence does not settle it (flux1,
                         chroma, flex1, flux2-dev, flux2-klein-9b, flux2-klein-4b)
  -h, --help             this text

example:
  lora-verify inspect my_lora.safetensors --json
)";

constexpr const char* kSampleHelp = R"(lora-verify sample — write a generated FLUX.1 LoRA (seeded)

usage:
  lora-verify sample OUT.safetensors [options]

options:
  --dialect D            diffusers (default), diffusers-old, fal, onetrainer, kohya, comfy,
                         ai-toolkit, bfl, onetrainer-bfl, xlabs
  --rank R               LoRA rank (default 4)
  --dtype D              F32, F64, F16, BF16 (default BF16)
  --seed N               random seed (default 1)
  --alpha A              write .alpha tensors with value A (finite, positive, within F32)
  --no-proj-mlp          leave out the single blocks' proj_mlp (the historic crash case)
  --bias                 add bias deltas
  --tiny                 a tiny FLUX-shaped layout instead of FLUX.1-dev's
  --quiet                print errors only: no report on standard output unless --json -
                         or --markdown - asks for one (report files are still written);
                         the exit code tells the outcome
  --verbose              print each phase with its time on standard error
  --progress             a progress line on standard error even when it is not a terminal
                         (on a terminal it is shown unless --quiet)
  --model FAMILY         the model family when the evidence does not settle it (flux1,
                         chroma, flex1, flux2-dev, flux2-klein-9b, flux2-klein-4b)
  -h, --help             this text

example:
  lora-verify sample test.safetensors --dialect kohya --rank 16 --dtype F16
)";

const std::map<std::string, const char*> kCommandHelp = {
    {"verify", kVerifyHelp}, {"convert", kConvertHelp}, {"compare", kCompareHelp},
    {"inspect", kInspectHelp}, {"sample", kSampleHelp},
};

std::string g_help_hint = "lora-verify --help";  // where usage errors point
lv::cli::Feedback g_feedback;  // progress and phase times on stderr
bool g_quiet = false;          // --quiet: errors only

int fail(const Error& e) {
  g_feedback.finish();
  std::fprintf(stderr, "error: %s\n", e.message.c_str());
  return static_cast<int>(e.code);
}

int usage(const std::string& msg) {
  g_feedback.finish();
  std::fprintf(stderr, "error: %s (see %s)\n", msg.c_str(), g_help_hint.c_str());
  return static_cast<int>(ErrorCode::kUsage);
}

struct Args {
  std::vector<std::string> positional;
  std::map<std::string, std::string> values;  // options with a value
  std::map<std::string, bool> flags;
  std::vector<std::pair<std::string, std::string>> given;  // (canonical name, as typed), in order
};

const std::map<std::string, bool> kOptions = {  // name → takes a value
    {"--to", true},      {"--style", true},  {"--dtype", true},  {"--json", true},    {"--markdown", true},
    {"--threads", true}, {"-o", true},       {"--output", true}, {"--dialect", true}, {"--rank", true},
    {"--seed", true},    {"--alpha", true},  {"--all", false},   {"--no-proj-mlp", false},
    {"--bias", false},   {"--tiny", false},  {"--no-dense", false},  {"--help", false},  {"-h", false},  {"--version", false},
    {"--for", true},     {"--drop-unsupported", false}, {"--allow-unknown", false}, {"--model", true},  {"--quiet", false},  {"--verbose", false},
    {"--progress", false},
};

// Values that name something (a dtype, loader, style, layout, model, dialect) are matched
// without regard to case: --dtype bf16, --for ComfyUI.
const std::set<std::string> kCaseless = {"--to", "--style", "--for", "--model", "--dialect"};

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string upper(std::string s) {
  for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

std::optional<std::string> parse_args(int argc, char** argv, Args& a) {
  for (int i = 1; i < argc; ++i) {
    std::string s = argv[i];
    if (s.size() > 1 && s[0] == '-' && s != "-") {
      std::string name = s, value;
      bool has_inline = false;
      if (auto eq = s.find('='); eq != std::string::npos && s.rfind("--", 0) == 0) {
        name = s.substr(0, eq);
        value = s.substr(eq + 1);
        has_inline = true;
      }
      auto it = kOptions.find(name);
      if (it == kOptions.end()) return "unknown option " + name;
      if (!it->second) {
        if (has_inline) return "option " + name + " takes no value";
        const std::string typed = name;
        if (name == "-h") name = "--help";
        a.flags[name] = true;
        a.given.emplace_back(name, typed);
        continue;
      }
      if (!has_inline) {
        if (i + 1 >= argc) return "option " + name + " needs a value";
        value = argv[++i];
      }
      const std::string typed = name;
      if (name == "--output") name = "-o";
      if (a.values.count(name)) return "option " + name + " given twice";
      if (kCaseless.count(name)) value = lower(value);
      if (name == "--dtype") value = upper(value);
      a.values[name] = value;
      a.given.emplace_back(name, typed);
    } else {
      a.positional.push_back(s);
    }
  }
  return std::nullopt;
}

// Which options each command uses; anything else given to it is a usage error, never
// silently ignored. --help and --version apply everywhere. (--for, --drop-unsupported and
// --model are listed for the commands they will apply to; an option is accepted only when
// kOptions knows it too.)
const std::map<std::string, std::vector<std::string>> kCommandOptions = {
    {"verify", {"--to", "--style", "--dtype", "--json", "--markdown", "--all", "--threads", "--no-dense", "--for",
                "--drop-unsupported", "--allow-unknown", "--model", "--quiet", "--verbose", "--progress"}},
    {"convert", {"-o", "--to", "--style", "--dtype", "--json", "--markdown", "--all", "--threads", "--no-dense", "--for",
                 "--drop-unsupported", "--allow-unknown", "--model", "--quiet", "--verbose", "--progress"}},
    {"compare", {"--json", "--markdown", "--all", "--threads", "--model", "--quiet", "--verbose", "--progress"}},
    {"inspect", {"--json", "--model", "--quiet", "--verbose", "--progress"}},
    {"sample", {"--dialect", "--rank", "--dtype", "--seed", "--alpha", "--no-proj-mlp", "--bias", "--tiny", "--model",
                "--quiet", "--verbose", "--progress"}},
};

// The options `command` accepts that the parser knows, for messages.
std::string options_of(const std::string& command) {
  std::string list;
  for (const auto& o : kCommandOptions.at(command))
    if (kOptions.count(o)) list += (list.empty() ? "" : ", ") + o;
  return list;
}

// Refuses an option the command does not use.
std::optional<std::string> check_options_apply(const Args& a, const std::string& command) {
  const auto& allowed = kCommandOptions.at(command);
  for (const auto& [name, typed] : a.given) {
    if (name == "--help" || name == "--version") continue;
    if (std::find(allowed.begin(), allowed.end(), name) == allowed.end())
      return "option " + typed + " does not apply to " + command + " (" + command + " takes " + options_of(command) + ")";
  }
  return std::nullopt;
}

// True when `a` and `b` name the same file: the same spelling after resolving symbolic links
// and `.`/`..`, or the same device and inode.
bool same_destination(const std::string& a, const std::string& b) {
  if (a == "-" || b == "-") return a == b;
  auto ra = lv::st::resolve_links(a), rb = lv::st::resolve_links(b);
  if (!ra.ok() || !rb.ok()) return false;
  std::error_code ea, eb;
  auto ca = std::filesystem::weakly_canonical(std::filesystem::absolute(*ra, ea), ea);
  auto cb = std::filesystem::weakly_canonical(std::filesystem::absolute(*rb, eb), eb);
  if (!ea && !eb && ca == cb) return true;
  std::error_code e;
  return std::filesystem::equivalent(a, b, e) && !e;
}

// Refuses two outputs (reports, the converted file) written to one destination.
std::optional<std::string> check_destinations(const Args& a) {
  std::vector<std::pair<std::string, std::string>> dests;  // (option, destination)
  for (const char* opt : {"-o", "--json", "--markdown"})
    if (auto it = a.values.find(opt); it != a.values.end()) dests.emplace_back(opt, it->second);
  for (size_t i = 0; i < dests.size(); ++i)
    for (size_t j = i + 1; j < dests.size(); ++j)
      if (same_destination(dests[i].second, dests[j].second)) {
        const std::string where = dests[i].second == "-" ? "standard output" : "the same file " + dests[i].second;
        return dests[i].first + " and " + dests[j].first + " both write to " + where + "; give each its own destination";
      }
  return std::nullopt;
}

std::optional<std::string> parse_int(const std::string& s, int64_t lo, int64_t hi, int64_t& out) {
  try {
    size_t used = 0;
    long long v = std::stoll(s, &used);
    if (used != s.size() || v < lo || v > hi) throw std::out_of_range("range");
    out = v;
    return std::nullopt;
  } catch (...) {
    return "'" + s + "' is not an integer in " + std::to_string(lo) + ".." + std::to_string(hi);
  }
}

// --model FAMILY, or null.
std::optional<std::string> model_option(const Args& a, const lv::flux::Family*& family) {
  family = nullptr;
  auto it = a.values.find("--model");
  if (it == a.values.end()) return std::nullopt;
  family = lv::flux::find_family(it->second);
  if (!family) return "--model: unknown model family '" + it->second + "' (choose one of " + lv::flux::family_names() + ")";
  return std::nullopt;
}

std::optional<std::string> pipeline_options(const Args& a, lv::report::PipelineOptions& o) {
  if (auto e = model_option(a, o.family)) return e;
  if (auto it = a.values.find("--to"); it != a.values.end()) {
    if (it->second == "bfl") o.to = lv::OutputLayout::kBfl;
    else if (it->second == "diffusers") o.to = lv::OutputLayout::kDiffusers;
    else return "--to must be bfl or diffusers, got '" + it->second + "'";
  }
  if (auto it = a.values.find("--style"); it != a.values.end()) {
    o.style = lv::style_from_name(it->second);
    if (!o.style) return "--style must be kohya, comfy, peft, bfl or diffusers, got '" + it->second + "'";
    if (!o.to) o.to = *o.style == lv::Style::kDiffusers ? lv::OutputLayout::kDiffusers : lv::OutputLayout::kBfl;
  }
  if (auto it = a.values.find("--dtype"); it != a.values.end()) {
    o.dtype = lv::st::dtype_from_name(it->second);
    if (!o.dtype || !lv::st::dtype_is_encodable(*o.dtype)) return "--dtype must be F32, F64, F16 or BF16, got '" + it->second + "'";
  }
  if (auto it = a.values.find("--for"); it != a.values.end()) {
    if (a.values.count("--style") || a.values.count("--to"))
      return "--for chooses the output style itself: give --for or --style/--to, not both";
    if (!lv::loaders::find_profile(it->second))
      return "--for: unknown loader '" + it->second + "' (choose one of " + lv::loaders::profile_names() + ")";
    o.for_loader = it->second;
  }
  o.drop_unsupported = a.flags.count("--drop-unsupported") > 0;
  if (o.drop_unsupported && o.for_loader.empty()) return "--drop-unsupported needs --for LOADER";
  o.allow_unknown = a.flags.count("--allow-unknown") > 0;
  if (o.allow_unknown && o.for_loader.empty()) return "--allow-unknown needs --for LOADER";
  o.allow_dense = a.flags.count("--no-dense") == 0;
  if (auto it = a.values.find("--threads"); it != a.values.end()) {
    int64_t n = 0;
    if (auto e = parse_int(it->second, 1, 256, n)) return "--threads: " + *e;
    o.threads = static_cast<int>(n);
  }
  o.progress = [](std::string_view phase, double fraction) { g_feedback(phase, fraction); };
  return std::nullopt;
}

constexpr const char* kStdinName = "(standard input)";
constexpr const char* kStdoutName = "(standard output)";

// Reads all of standard input (at most Limits::max_stream_bytes: it is held in memory).
lv::Result<std::vector<uint8_t>> read_stdin() {
  if (::isatty(0))
    return lv::make_error(ErrorCode::kUsage, "input '-' is standard input, which is a terminal: pipe a safetensors file "
                                             "into it (< file.safetensors) or give the file's path");
  const uint64_t limit = lv::st::kDefaultLimits.max_stream_bytes;
  std::vector<uint8_t> out;
  std::vector<uint8_t> buf(1 << 20);
  for (;;) {
    ssize_t n = ::read(0, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return lv::make_error(ErrorCode::kIo, std::string(kStdinName) + ": read failed: " + std::strerror(errno));
    if (n == 0) break;
    if (out.size() + static_cast<uint64_t>(n) > limit)
      return lv::make_error(ErrorCode::kBadInput, std::string(kStdinName) + ": more than " + std::to_string(limit) +
                                                      " bytes, the limit for a file read into memory; give its path instead");
    out.insert(out.end(), buf.begin(), buf.begin() + n);
  }
  return out;
}

// The paths an output must never replace (standard input is no file).
std::vector<std::string> guarded(std::vector<std::string> paths) {
  paths.erase(std::remove(paths.begin(), paths.end(), "-"), paths.end());
  return paths;
}

lv::Result<std::shared_ptr<const lv::st::SafetensorsFile>> open_input(const std::string& path) {
  if (path == "-") {
    auto bytes = read_stdin();
    if (!bytes.ok()) return bytes.take_error();
    auto f = lv::st::SafetensorsFile::from_bytes(std::move(bytes).value(), kStdinName);
    if (!f.ok()) return f.take_error();
    return std::make_shared<const lv::st::SafetensorsFile>(std::move(f).value());
  }
  auto f = lv::st::SafetensorsFile::open(path);
  if (!f.ok()) return f.take_error();
  return std::make_shared<const lv::st::SafetensorsFile>(std::move(f).value());
}

// Writes the report where asked: text on `text_to` (stdout) unless --json - or --markdown -
// took stdout.
int emit(const lv::report::Report& r, const Args& a, const std::vector<std::string>& paths, FILE* text_to = stdout) {
  g_feedback.finish();
  const std::vector<std::string> inputs = guarded(paths);
  bool stdout_taken = false;
  for (const char* opt : {"--json", "--markdown"}) {
    auto it = a.values.find(opt);
    if (it == a.values.end()) continue;
    std::string body = std::string(opt) == "--json" ? lv::report::render_json(r) : lv::report::render_markdown(r);
    if (it->second == "-") {
      std::fwrite(body.data(), 1, body.size(), stdout);
      stdout_taken = true;
      continue;
    }
    auto st = lv::st::write_bytes_atomic(it->second, {reinterpret_cast<const uint8_t*>(body.data()), body.size()}, inputs);
    if (!st.ok()) return fail(st.error());
  }
  if (!stdout_taken && !g_quiet) {  // --quiet: the exit code tells
    std::string text = lv::report::render_text(r, a.flags.count("--all") > 0, a.flags.count("--verbose") > 0);
    std::fwrite(text.data(), 1, text.size(), text_to);
  }
  std::fflush(text_to);
  return r.pass ? 0 : static_cast<int>(ErrorCode::kChecksFailed);
}

int cmd_verify(const Args& a, size_t first) {
  if (a.positional.size() != first + 1) return usage("verify takes exactly one input file");
  lv::report::PipelineOptions o;
  if (auto e = pipeline_options(a, o)) return usage(*e);
  const std::string& path = a.positional[first];
  auto in = open_input(path);
  if (!in.ok()) return fail(in.error());
  auto r = lv::report::run_verify(*in, o);
  if (!r.ok()) return fail(r.error());
  return emit(*r, a, {path});
}

int cmd_convert(const Args& a) {
  if (a.positional.size() != 2) return usage("convert takes one input file and -o OUTPUT");
  auto out = a.values.find("-o");
  if (out == a.values.end()) return usage("convert needs -o OUTPUT");
  lv::report::PipelineOptions o;
  o.default_for_loaders = true;
  if (auto e = pipeline_options(a, o)) return usage(*e);
  if (out->second == "-" && ::isatty(1))
    return usage("-o - writes the safetensors file to standard output, which is a terminal: redirect it "
                 "(> out.safetensors) or give a file");
  auto in = open_input(a.positional[1]);
  if (!in.ok()) return fail(in.error());
  // -o - (and a device or FIFO): converted into a private scratch file, re-read, verified,
  // then streamed; the text report goes to stderr so that stdout carries only the file.
  const bool to_stdout = out->second == "-";
  auto r = lv::report::run_convert(*in, out->second, o);
  if (!r.ok()) return fail(r.error());
  return emit(*r, a, {a.positional[1], out->second}, to_stdout ? stderr : stdout);
}

int cmd_compare(const Args& a) {
  if (a.positional.size() != 3) return usage("compare takes SOURCE and CONVERTED");
  lv::report::PipelineOptions o;
  if (auto e = pipeline_options(a, o)) return usage(*e);
  auto src = open_input(a.positional[1]);
  if (!src.ok()) return fail(src.error());
  auto conv = open_input(a.positional[2]);
  if (!conv.ok()) return fail(conv.error());
  auto r = lv::report::run_compare(*src, *conv, o);
  if (!r.ok()) return fail(r.error());
  return emit(*r, a, {a.positional[1], a.positional[2]});
}

int cmd_inspect(const Args& a) {
  if (a.positional.size() != 2) return usage("inspect takes exactly one file");
  const std::string& path = a.positional[1];
  auto file = open_input(path);
  if (!file.ok()) return fail(file.error());
  const auto& f = **file;
  std::map<std::string, std::pair<int64_t, uint64_t>> by_dtype;
  for (const auto& t : f.tensors()) {
    auto& e = by_dtype[std::string(lv::st::dtype_name(t.dtype))];
    e.first++;
    e.second += t.nbytes;
  }
  g_feedback("reading", 0);
  lv::LoadOptions lo;
  if (auto e = model_option(a, lo.family)) return usage(*e);
  auto model = lv::load_lora(*file, lo);
  auto inspection = lv::report::inspect(f, model, [](const char* phase, double x) { g_feedback(phase, x); });
  const nlohmann::ordered_json& j = inspection.json;
  const lv::report::Report& loaders = inspection.loaders;
  g_feedback("done", 1);
  g_feedback.finish();
  if (a.values.count("--json")) return usage("inspect --json takes no value: it prints the JSON on standard output");
  if (a.flags.count("--json")) {
    std::cout << j.dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace) << "\n";
    return 0;
  }
  if (g_quiet) return 0;  // a valid container; the exit code tells
  std::cout << f.path() << ": valid safetensors, " << f.tensors().size() << " tensors, " << f.file_bytes()
            << " bytes (header " << f.header_bytes() << ")\n";
  for (const auto& [d, e] : by_dtype) std::cout << "  " << d << ": " << e.first << " tensors, " << e.second << " bytes\n";
  std::cout << "metadata: " << f.metadata().size() << " entries\n";
  for (const auto& [k, v] : f.metadata())
    std::cout << "  " << k << " = " << (v.size() > 120 ? v.substr(0, 117) + "..." : v) << "\n";
  if (model.ok()) {
    if (j.contains("model")) {
      std::cout << "model: " << j["model"]["display"].get<std::string>() << " (" << j["model"]["family"].get<std::string>() << ")";
      std::cout << "\n";
      if (a.flags.count("--verbose"))  // the evidence; one short line otherwise
        for (const auto& e : j["model"]["evidence"]) std::cout << "  " << e.get<std::string>() << "\n";
    }
    std::cout << "dialect: " << model->dialect << " (";
    for (size_t i = 0; i < model->dialect_counts.size(); ++i)
      std::cout << (i ? ", " : "") << model->dialect_counts[i].first << ": " << model->dialect_counts[i].second << " tensors";
    std::cout << "); " << model->parts.size() << " deltas, " << model->passthrough.size() << " passed through\n";
    for (const auto& u : j["unrecognised_tensors"]) std::cout << "  unrecognised: " << u.get<std::string>() << "\n";
    std::cout << "modules: " << j["modules"].get<size_t>() << " (on " << j["targets"].get<size_t>() << " BFL targets)";
    if (!j["ranks"].is_null())
      std::cout << "; ranks " << j["ranks"]["min"].get<int64_t>() << ".." << j["ranks"]["max"].get<int64_t>();
    std::cout << "; alphas ";
    if (j["alphas"].empty()) std::cout << "none (no .alpha tensors)";
    for (size_t i = 0; i < j["alphas"].size(); ++i) {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%.6g", j["alphas"][i].get<double>());
      std::cout << (i ? ", " : "") << buf;
    }
    std::cout << "\nnon-finite values: ";
    if (j["nonfinite_tensors"].empty()) std::cout << "none\n";
    else std::cout << j["nonfinite_tensors"].size() << " tensors\n";
    if (!j["findings"].empty()) std::cout << "findings:\n";
    for (const auto& fd : j["findings"]) {
      const std::string tensor = fd["tensor"].get<std::string>();
      std::cout << "  " << fd["severity"].get<std::string>() << " " << fd["id"].get<std::string>();
      if (!tensor.empty()) std::cout << " " << tensor;
      std::cout << ": " << fd["message"].get<std::string>() << "\n";
    }
    std::cout << lv::report::render_loaders_text(loaders);
  } else {
    std::cout << "dialect: none (" << model.error().message << ")\n";
  }
  return 0;
}

// What each generator dialect can hold: an option it cannot hold is refused, not ignored.
struct SampleDialect {
  const char* name;
  bool alpha, bias, no_proj_mlp;
};
constexpr SampleDialect kSampleDialects[] = {
    {"diffusers", true, true, true},     {"diffusers-old", false, false, true}, {"fal", true, true, true},
    {"onetrainer", true, true, true},    {"kohya", true, true, false},          {"comfy", true, true, false},
    {"ai-toolkit", true, true, false},   {"bfl", true, true, false},            {"onetrainer-bfl", true, false, true},
    {"xlabs", false, false, false},
};

int cmd_sample(const Args& a) {
  if (a.positional.size() != 2) return usage("sample takes exactly one output file");
  lv::GenSpec spec;
  if (a.flags.count("--tiny")) spec.layout = lv::flux::Layout::tiny();
  const lv::flux::Family* family = nullptr;
  if (auto e = model_option(a, family)) return usage(*e);
  if (family && a.flags.count("--tiny")) return usage("--tiny and --model both choose the layout: give one");
  if (family) {
    spec.layout = lv::flux::layout_of(*family);
    spec.family = std::string(family->name);
  }
  if (auto it = a.values.find("--dialect"); it != a.values.end()) spec.dialect = it->second;
  const SampleDialect* dialect = nullptr;
  std::string names;
  for (const auto& d : kSampleDialects) {
    names += (names.empty() ? "" : ", ") + std::string(d.name);
    if (spec.dialect == d.name) dialect = &d;
  }
  if (!dialect) return usage("unknown dialect '" + spec.dialect + "'; sample writes " + names);
  auto cannot_hold = [&](const char* option, const char* what) {
    return usage("the " + spec.dialect + " dialect cannot hold " + what + ": " + option + " does not apply to --dialect " +
                 spec.dialect);
  };
  if (a.values.count("--alpha") && !dialect->alpha) return cannot_hold("--alpha", ".alpha tensors");
  if (a.flags.count("--bias") && !dialect->bias) return cannot_hold("--bias", "bias deltas");
  if (a.flags.count("--no-proj-mlp") && !dialect->no_proj_mlp)
    return cannot_hold("--no-proj-mlp", "a single block without proj_mlp (its linear1 is one fused module)");
  int64_t n = 0;
  if (auto it = a.values.find("--rank"); it != a.values.end()) {
    if (auto e = parse_int(it->second, 1, 4096, n)) return usage("--rank: " + *e);
    spec.rank = n;
  }
  if (auto it = a.values.find("--seed"); it != a.values.end()) {
    if (auto e = parse_int(it->second, 0, INT64_MAX, n)) return usage("--seed: " + *e);
    spec.seed = static_cast<uint64_t>(n);
  }
  if (auto it = a.values.find("--alpha"); it != a.values.end()) {
    try {
      size_t used = 0;
      spec.alpha = std::stod(it->second, &used);
      // .alpha tensors are F32: the value must survive the rounding, neither inf nor 0.
      const float f = static_cast<float>(spec.alpha);
      if (used != it->second.size() || !std::isfinite(spec.alpha) || !(spec.alpha > 0) || !std::isfinite(f) || !(f > 0))
        throw std::invalid_argument("alpha");
    } catch (...) {
      return usage("--alpha must be a finite positive number that F32 (the dtype of .alpha tensors) holds, about 1.4e-45 to 3.4e38, got '" + it->second + "'");
    }
  }
  if (auto it = a.values.find("--dtype"); it != a.values.end()) {
    auto d = lv::st::dtype_from_name(it->second);
    if (!d || !lv::st::dtype_is_encodable(*d)) return usage("--dtype must be F32, F64, F16 or BF16");
    spec.dtype = *d;
  }
  spec.proj_mlp = !a.flags.count("--no-proj-mlp");
  spec.bias = a.flags.count("--bias") > 0;
  g_feedback("generating", 0);
  auto bytes = lv::generate_lora(spec);
  if (!bytes.ok()) return fail(bytes.error());
  g_feedback("writing", 0.5);
  const bool to_stdout = a.positional[1] == "-";
  if (to_stdout) {
    if (::isatty(1))
      return usage("sample - writes the safetensors file to standard output, which is a terminal: redirect it "
                   "(> out.safetensors) or give a file");
    if (std::fwrite(bytes->data(), 1, bytes->size(), stdout) != bytes->size() || std::fflush(stdout) != 0)
      return fail({ErrorCode::kIo, std::string("cannot write to standard output: ") + std::strerror(errno)});
  } else {
    auto st = lv::st::write_bytes_atomic(a.positional[1], *bytes, {});
    if (!st.ok()) return fail(st.error());
  }
  g_feedback("done", 1);
  g_feedback.finish();
  if (g_quiet) return 0;
  const std::string model_name = family ? std::string(family->display) : "FLUX.1";
  std::fprintf(to_stdout ? stderr : stdout, "wrote %s: %s %s LoRA, rank %lld, %s, %zu bytes\n",
               to_stdout ? kStdoutName : a.positional[1].c_str(), spec.dialect.c_str(), model_name.c_str(),
               static_cast<long long>(spec.rank),
               std::string(lv::st::dtype_name(spec.dtype)).c_str(), bytes->size());
  return 0;
}

// A first word that names no file and looks like no path is a mistyped command, not an
// input: no path separator, no extension, and nothing of that name exists.
bool looks_like_a_command(const std::string& w) {
  std::error_code ec;
  if (w.empty() || w == "-" || w.find('/') != std::string::npos || w.find('.') != std::string::npos) return false;
  return !std::filesystem::exists(std::filesystem::symlink_status(w, ec));
}

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

int unknown_command(const std::string& w) {
  const char* commands[] = {"verify", "convert", "compare", "inspect", "sample", "matrix", "corpus"};
  std::string list, best;
  size_t best_d = 3;  // suggest only close spellings
  for (const char* c : commands) {
    list += (list.empty() ? "" : ", ") + std::string(c);
    if (size_t d = edit_distance(w, c); d < best_d) best_d = d, best = c;
  }
  return usage("unknown command '" + w + "'" + (best.empty() ? "" : " (did you mean " + best + "?)") +
               "; the commands are " + list + ", and no file of that name exists");
}

// Flushes and closes standard output: a report that did not reach it is an I/O error (74),
// never a success.
int finish_stdout(int rc) {
  std::cout.flush();
  bool bad = !std::cout.good();
  errno = 0;
  if (std::fflush(stdout) != 0 || std::ferror(stdout)) bad = true;
  int err = errno;
  if (std::fclose(stdout) != 0 && !bad) {
    bad = true;
    err = errno;
  }
  if (!bad) return rc;
  std::fprintf(stderr, "error: cannot write to standard output: %s\n", err ? std::strerror(err) : "write failed");
  return rc == 0 || rc == static_cast<int>(ErrorCode::kChecksFailed) ? static_cast<int>(ErrorCode::kIo) : rc;
}

int run(int argc, char** argv) {
  if (argc > 1 && std::strcmp(argv[1], "matrix") == 0)
    return run_matrix_command(std::vector<std::string>(argv + 2, argv + argc));
  if (argc > 1 && std::strcmp(argv[1], "corpus") == 0)
    return run_corpus_command(std::vector<std::string>(argv + 2, argv + argc));
  Args a;
  // `inspect FILE --json` takes --json as a flag; allow it by rewriting before parsing.
  std::vector<char*> args(argv, argv + argc);
  bool inspect = argc > 1 && std::strcmp(argv[1], "inspect") == 0;
  bool inspect_json = false;
  if (inspect) {
    std::vector<char*> kept;
    for (char* s : args)
      if (std::strcmp(s, "--json") == 0) inspect_json = true;
      else kept.push_back(s);
    args = kept;
  }
  if (auto e = parse_args(static_cast<int>(args.size()), args.data(), a)) return usage(*e);
  if (inspect_json) a.flags["--json"] = true;
  const std::string first = a.positional.empty() ? "" : a.positional[0];
  if (kCommandHelp.count(first)) g_help_hint = "lora-verify " + first + " --help";
  if (a.flags.count("--help")) {
    auto it = kCommandHelp.find(first);
    std::fputs(it != kCommandHelp.end() ? it->second : kHelp, stdout);
    return 0;
  }
  if (a.flags.count("--version")) {
    std::printf("lora-verify %s\n", LV_VERSION);
    return 0;
  }
  if (a.positional.empty()) return usage("no input file");
  const std::string& cmd = a.positional[0];
  const bool named = kCommandOptions.count(cmd) > 0;
  if (!named && looks_like_a_command(cmd)) return unknown_command(cmd);
  if (auto e = check_options_apply(a, named ? cmd : "verify")) return usage(*e);
  g_quiet = a.flags.count("--quiet") > 0;
  if (g_quiet && (a.flags.count("--verbose") || a.flags.count("--progress")))
    return usage(std::string("--quiet prints errors only: not with ") + (a.flags.count("--verbose") ? "--verbose" : "--progress"));
  g_feedback.configure(a.flags.count("--progress") > 0 || (!g_quiet && ::isatty(2)), ::isatty(2) != 0,
                       a.flags.count("--verbose") > 0);
  if (auto e = check_destinations(a)) return usage(*e);
  if (std::count(a.positional.begin() + (named ? 1 : 0), a.positional.end(), "-") > 1)
    return usage("'-' (standard input) is given twice; it can be read only once");
  if (cmd == "verify") return cmd_verify(a, 1);
  if (cmd == "convert") return cmd_convert(a);
  if (cmd == "compare") return cmd_compare(a);
  if (cmd == "inspect") return cmd_inspect(a);
  if (cmd == "sample") return cmd_sample(a);
  return cmd_verify(a, 0);
}

}  // namespace

int main(int argc, char** argv) {
  lv::st::remove_temporaries_on_signals();
  return finish_stdout(run(argc, argv));
}
