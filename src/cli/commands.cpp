#include "cli/commands.h"

#include <algorithm>

#include "flux/family.h"
#include "loaders/profile.h"
#include "lora/converter.h"
#include "lora/generate.h"
#include "matrix/model.h"
#include "safetensors/dtype.h"

namespace lv::cli {
namespace {

// ---- the options, each once ----
const Option kOptions[] = {
    {"--to", "", "LAYOUT", Values::kLayouts, false,
     "output layout, bfl or diffusers (default: diffusers-named inputs go to bfl, BFL-named inputs to diffusers)"},
    {"--style", "", "STYLE", Values::kStyles, false,
     "key style: kohya (the default for bfl), comfy, peft, bfl; diffusers (the one style of the diffusers layout)"},
    {"--dtype", "", "DTYPE", Values::kDtypes, false, "output dtype: {dtypes} (default: the input's)"},
    {"--json", "", "FILE", Values::kFile, false, "also write the report as JSON (\"-\": print it instead of the text)"},
    {"--markdown", "", "FILE", Values::kFile, false,
     "also write the report as Markdown (\"-\": print it instead of the text)"},
    {"--all", "", "", Values::kNone, false, "list every module in the text report, not only failing ones"},
    {"--threads", "", "N", Values::kText, false, "threads for the equivalence checks (default 2)"},
    {"--no-dense", "", "", Values::kNone, false,
     "refuse LoKr/LoHa deltas on fused targets instead of writing them as dense .diff tensors"},
    {"--output", "-o", "FILE", Values::kFile, false,
     "the output file (required; never the input; written atomically after it verified)"},
    {"--for", "", "LOADER", Values::kLoaders, false,
     "write the form LOADER loads completely ({loaders}); a file LOADER rejects or drops parts of in every form is "
     "refused (exit 65); not with --style or --to"},
    {"--drop-unsupported", "", "", Values::kNone, false,
     "with --for: leave out the tensors LOADER cannot take in any form, and report each with the share of its "
     "target's delta that is lost (a DoRA magnitude is never left out)"},
    {"--allow-unknown", "", "", Values::kNone, false,
     "with --for: write the output even where how LOADER reads it is not established (refused with exit 65 "
     "otherwise)"},
    {"--model", "", "FAMILY", Values::kFamilies, false,
     "the model family when the file's evidence does not settle it: {families} (see docs/families.md)"},
    {"--quiet", "", "", Values::kNone, false,
     "print errors only: no report on standard output unless --json - or --markdown - asks for one (report files "
     "are still written); the exit code tells the outcome"},
    {"--verbose", "", "", Values::kNone, false,
     "print each phase with its time on standard error, and the evidence behind the model line"},
    {"--progress", "", "", Values::kNone, false,
     "a progress line on standard error even when it is not a terminal (on a terminal it is shown unless --quiet)"},
    {"--help", "-h", "", Values::kNone, false, "this text"},
    {"--version", "", "", Values::kNone, false, "the version"},
    // sample
    {"--dialect", "", "DIALECT", Values::kDialects, false, "the key dialect to write: {dialects} (default diffusers)"},
    {"--rank", "", "R", Values::kText, false, "LoRA rank (default 4)"},
    {"--seed", "", "N", Values::kText, false, "random seed (default 1)"},
    {"--alpha", "", "A", Values::kText, false,
     "write .alpha tensors with value A (finite, positive, within F32's range)"},
    {"--no-proj-mlp", "", "", Values::kNone, false,
     "leave out the single blocks' proj_mlp (the case that crashed InvokeAI 5.1.1)"},
    {"--bias", "", "", Values::kNone, false, "add bias deltas"},
    {"--tiny", "", "", Values::kNone, false, "a tiny FLUX-shaped layout instead of FLUX.1-dev's"},
    // matrix and corpus
    {"--out", "", "DIR", Values::kDir, false, "where the three files go (default: reports)"},
    {"--baseline", "", "OLD.json", Values::kFile, false,
     "mark every cell that changed against an earlier compatibility.json; exit 1 on a regression"},
    {"--jobs", "", "N", Values::kText, false, "rows run on N threads (default: the number of cores)"},
    {"--shard", "", "i/n", Values::kText, false, "run only rows i, i+n, i+2n, ... (0 <= i < n) of the full list"},
    {"--merge", "", "", Values::kNone, false, "the arguments are shard JSON files: join them into one matrix"},
    {"--filter", "", "TEXT", Values::kText, false, "only built-in variants whose name contains TEXT"},
    {"--no-builtin", "", "", Values::kNone, false, "only the INPUTS"},
    {"--timings", "", "", Values::kNone, false, "add per-row times (the files are then not byte-stable)"},
    {"--styles", "", "LIST", Values::kColumns, false,
     "built-in columns to run, comma-separated from {columns}; or none (default: all)"},
    {"--converter", "", "NAME=CMD", Values::kText, true,
     "add a column grading any converter (repeatable). CMD runs through /bin/sh -c in a fresh temporary directory "
     "(its cwd: give absolute paths), stdin /dev/null, with {in} and {out} replaced by the quoted paths of the "
     "input lora-verify writes and of the output it reads back (any dialect) and compares with the source as "
     "`compare` does. Cells: equivalent, not equivalent, failed, timed out, no output, unreadable output; the log "
     "of each cell that is not equivalent goes to DIR/logs/NAME/VARIANT.log"},
    {"--converter-timeout", "", "S", Values::kText, false,
     "seconds per cell before the converter's process group is killed (default 120)"},
    {"--converter-max-output", "", "BYTES", Values::kText, false,
     "largest {out} (and stdout, stderr) a converter may write; a K, M or G suffix multiplies by 1024s (default 4G)"},
};

constexpr std::string_view kVerifyFor =
    "check the form LOADER loads completely instead ({loaders}); not with --style or --to";
constexpr std::string_view kConvertOptionsNote =
    "Without --for, --style or --to, the output gets the style that loads completely in the most profiled loaders "
    "for this input (kohya when the file has only block modules). Every report ends with each loader's verdict on "
    "the input and on the output (loads, drops, rejects, unknown) and, for each loader the input does not serve, "
    "a command that writes a file it loads; lora-verify has run that command on such a file.";

const std::vector<CommandOption> kReportOptions = {{"--json"}, {"--markdown"}, {"--all"}, {"--threads"}};
const std::vector<CommandOption> kFeedbackOptions = {{"--quiet"}, {"--verbose"}, {"--progress"}, {"--help"}};

std::vector<CommandOption> join(std::initializer_list<std::vector<CommandOption>> lists) {
  std::vector<CommandOption> all;
  for (const auto& l : lists) all.insert(all.end(), l.begin(), l.end());
  return all;
}

std::vector<CommandOption> conversion_options(std::string_view for_help) {
  return {{"--to"}, {"--style"}, {"--dtype"}, {"--no-dense"}, {"--for", for_help}, {"--drop-unsupported"},
          {"--allow-unknown"}, {"--model"}};
}

constexpr std::string_view kCommonExitCodes = R"(0   ok: every module equivalent and no error finding (inspect: a valid container)
1   checks failed: a module differs beyond tolerance, an error finding, or no module could be checked ("nothing converted: ...")
64  usage error (also: an option the command does not use, an unknown command)
65  invalid input data (malformed safetensors, not a FLUX LoRA, refused conversion)
66  cannot open an input file
70  internal error (a bug in lora-verify; please report it)
73  cannot create an output file
74  I/O error while reading or writing (also: standard output could not be written)
130, 143  interrupted by SIGINT or SIGTERM (temporary files removed, outputs unchanged))";

const std::vector<Command>& command_table() {
  static const std::vector<Command> table = {
      {"verify", "convert in memory, re-read, verify, report",
       {"lora-verify IN.safetensors [options]", "lora-verify verify IN.safetensors [options]"}, "IN", Values::kFile,
       "Reads IN, detects its dialect and model family, converts it in memory to the other layout, re-reads the "
       "converted bytes with the same strict reader and checks module by module that both apply the same weight "
       "deltas. Nothing is written except the reports asked for.\n\nThe report ends with each loader's verdict on "
       "the input and on the conversion (loads, drops, rejects, unknown) and, for each loader the input does not "
       "serve, a command that writes a file it loads.",
       join({kReportOptions, conversion_options(kVerifyFor), kFeedbackOptions}),
       {"lora-verify my_lora.safetensors --style comfy --json report.json",
        "lora-verify my_lora.safetensors --for invokeai"},
       ""},
      {"convert", "convert, re-read, verify, then write atomically",
       {"lora-verify convert IN.safetensors -o OUT.safetensors [options]"}, "IN", Values::kFile,
       "Converts IN into a temporary file beside OUT (never over IN), re-reads it and verifies it against IN, and "
       "only then renames it onto OUT (a replaced file keeps its mode; a symbolic link is written through). On "
       "FAIL, on a signal, or when nothing converted, nothing is written and a previous OUT is unchanged. A "
       "device or FIFO (and -, standard output) gets the verified file streamed into it.\n\n" +
           std::string(kConvertOptionsNote),
       join({{{"--output"}}, kReportOptions, conversion_options({}), kFeedbackOptions}),
       {"lora-verify convert my_lora.safetensors -o my_lora_comfy.safetensors --style comfy",
        "lora-verify convert my_lora.safetensors -o my_lora.invokeai.safetensors --for invokeai"},
       ""},
      {"compare", "verify a conversion made by any tool",
       {"lora-verify compare SOURCE.safetensors CONVERTED.safetensors [options]"}, "SOURCE CONVERTED",
       Values::kFile,
       "Checks module by module that CONVERTED (in any dialect lora-verify reads) applies the same weight deltas "
       "as SOURCE, to the rounding of the coarser dtype, and says what each loader does with both.",
       join({kReportOptions, {{"--model"}}, kFeedbackOptions}),
       {"lora-verify compare original.safetensors someone_elses_conversion.safetensors --all"},
       ""},
      {"inspect", "container validity, metadata, dtypes, dialect, loaders",
       {"lora-verify inspect FILE.safetensors [--json]"}, "FILE", Values::kFile,
       "Validates the container with the strict reader and describes it: tensors and bytes per dtype, the "
       "metadata, the detected dialect and model family, unrecognised tensors, the modules with their ranks and "
       "alphas, tensors holding NaN or Inf, an untrained LoRA (every up factor zero), the other findings, and what "
       "each loader does with the file. Exit 0 for a valid container whatever it holds.",
       join({{{"--json", "print the description as JSON on standard output (takes no file)", true},
              {"--model"}},
             kFeedbackOptions}),
       {"lora-verify inspect my_lora.safetensors --json"},
       ""},
      {"sample", "write a generated LoRA (seeded), in any dialect lora-verify reads",
       {"lora-verify sample OUT.safetensors [options]"}, "OUT", Values::kFile,
       "Writes a LoRA with random factors for FLUX.1-dev (or --model's family) in one dialect: the bundled "
       "default input of the quick start, and a file to try converters on. The same options give the same bytes.",
       join({{{"--dialect"}, {"--rank"}, {"--dtype", "F32, F64, F16, BF16 (default BF16)"}, {"--seed"}, {"--alpha"},
              {"--no-proj-mlp"}, {"--bias"}, {"--tiny"},
              {"--model", "the model family whose shapes to use: {families} (default flux1)"}},
             kFeedbackOptions}),
       {"lora-verify sample test.safetensors --dialect kohya --rank 16 --dtype F16"},
       ""},
      {"matrix", "the compatibility matrix for release notes",
       {"lora-verify matrix [options] [INPUTS...]",
        "lora-verify matrix --merge SHARD.json... [--out DIR] [--baseline OLD.json]"},
       "INPUTS", Values::kFile,
       "Runs every built-in variant (dialect x structure x dtype, generated in memory with FLUX.1-dev shapes) "
       "through each output style (kohya, comfy, peft, bfl, diffusers) and a round trip, and writes "
       "compatibility.md, compatibility.json and compatibility.html into DIR. INPUTS (.safetensors files, or "
       "directories searched for them) add one row each. The files are byte-identical between runs on the same "
       "inputs.",
       {{"--out"}, {"--baseline"}, {"--jobs"}, {"--shard"}, {"--merge"}, {"--filter"}, {"--no-builtin"},
        {"--timings"}, {"--styles"}, {"--converter"}, {"--converter-timeout"}, {"--converter-max-output"},
        {"--quiet", "print errors only (no progress, no summary; the exit code tells)"},
        {"--verbose", "also list every row with its outcome and time on standard error"}, {"--help"}},
       {"lora-verify matrix --out reports", "lora-verify matrix --styles none --converter 'mine=python3 convert.py {in} {out}'"},
       R"(0   every built-in variant equivalent, no regression against the baseline
1   a built-in variant is not equivalent, a cell regressed against the baseline, the matrix checked nothing (no rows: nothing is written), or it holds only INPUTS and none of them is equivalent
64  usage error
65  a baseline or shard is not a compatibility.json (or shards do not fit together)
66  an input, baseline or shard cannot be opened
73  the output directory or a file in it cannot be written)"},
      {"corpus", "the matrix's variants as files + manifest.json",
       {"lora-verify corpus DIR [--filter TEXT]"}, "DIR", Values::kDir,
       "Writes every built-in variant of `lora-verify matrix` (dialect x structure x dtype, FLUX.1-dev shapes, "
       "seeded) into DIR as VARIANT.safetensors, and DIR/manifest.json: per file its variant, dialect, structure "
       "and dtype, the BFL targets it touches with their row ranges and which parts are present (a missing part "
       "of a fused target must become zero rows), the expected outcome of a correct conversion, and what each "
       "profiled loader does with the file as it is (and with the form `convert --for` writes for it). The bytes "
       "are identical between runs. Each file is written atomically; manifest.json last.",
       {{"--filter", "only variants whose name contains TEXT"}, {"--help"}},
       {"lora-verify corpus /tmp/flux-corpus --filter kohya"},
       R"(0   written
1   --filter matches no variant (nothing written)
64  usage error
73  DIR or a file in it cannot be written)"},
  };
  return table;
}

}  // namespace

std::span<const Command> commands() { return command_table(); }

const Command* find_command(std::string_view name) {
  for (const Command& c : command_table())
    if (c.name == name) return &c;
  return nullptr;
}

const Command& top_level() {
  static const Command top = {
      "", "proves FLUX LoRA conversions correct (FLUX.1, Chroma, Flex.1, FLUX.2)", {}, "IN", Values::kFile,
      std::string(kConvertOptionsNote), join({kReportOptions, conversion_options({}), kFeedbackOptions, {{"--version"}}}),
      {"lora-verify my_lora.safetensors", "lora-verify convert my_lora.safetensors -o fixed.safetensors --for comfyui"},
      kCommonExitCodes};
  return top;
}

const Option* find_option(std::string_view name) {
  for (const Option& o : kOptions)
    if (o.name == name || (!o.alias.empty() && o.alias == name)) return &o;
  return nullptr;
}

std::vector<std::string> choices(Values v) {
  std::vector<std::string> out;
  switch (v) {
    case Values::kLayouts:
      for (OutputLayout l : {OutputLayout::kBfl, OutputLayout::kDiffusers}) out.emplace_back(layout_name(l));
      return out;
    case Values::kStyles:
      for (const StyleRow& s : style_rows()) out.emplace_back(style_name(s.style));
      return out;
    case Values::kDtypes:
      for (st::DType d : {st::DType::kF32, st::DType::kF64, st::DType::kF16, st::DType::kBF16})
        if (st::dtype_is_encodable(d)) out.emplace_back(st::dtype_name(d));
      return out;
    case Values::kLoaders:
      for (const auto& p : loaders::profiles()) out.emplace_back(p.name);
      return out;
    case Values::kFamilies:
      for (const auto& f : flux::families())
        if (!f.test_only) out.emplace_back(f.name);
      return out;
    case Values::kDialects:
      for (const auto& d : dialect_rows())
        if (d.generated.writes) out.emplace_back(d.name);
      return out;
    case Values::kColumns:
      out = matrix::style_columns();
      out.emplace_back("none");
      return out;
    default: return out;
  }
}

std::string command_names() {
  std::string s;
  for (const Command& c : command_table()) s += (s.empty() ? "" : ", ") + std::string(c.name);
  return s;
}

std::vector<BoundOption> options_of(const Command& c) {
  std::vector<BoundOption> out;
  for (const CommandOption& co : c.options) {
    Option o = *find_option(co.name);
    if (co.flag) o.value = {}, o.values = Values::kNone;
    out.push_back({o, std::string(co.help.empty() ? o.help : co.help)});
  }
  return out;
}

}  // namespace lv::cli
