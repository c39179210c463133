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
#include "cli/args.h"
#include "cli/commands.h"
#include "cli/feedback.h"
#include "cli/messages.h"
#include "cli/matrix_cmd.h"
#include "report/inspect.h"
#include "report/loader_rows.h"
#include "report/pipeline.h"
#include "safetensors/reader.h"
#include "safetensors/writer.h"

namespace {

using lv::Error;
using lv::ErrorCode;
using lv::cli::Args;

using lv::cli::fail;
using lv::cli::usage;
bool g_quiet = false;  // --quiet: errors only

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
  for (const char* opt : {"--output", "--json", "--markdown"})
    if (auto it = a.values.find(opt); it != a.values.end()) dests.emplace_back(opt, it->second);
  for (size_t i = 0; i < dests.size(); ++i)
    for (size_t j = i + 1; j < dests.size(); ++j)
      if (same_destination(dests[i].second, dests[j].second)) {
        const std::string where = dests[i].second == "-" ? "standard output" : "the same file " + dests[i].second;
        return dests[i].first + " and " + dests[j].first + " both write to " + where + "; give each its own destination";
      }
  return std::nullopt;
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
    auto layout = lv::layout_from_name(it->second);
    if (!layout) {
      std::string names;
      for (const auto& n : lv::cli::choices(lv::cli::Values::kLayouts)) names += (names.empty() ? "" : " or ") + n;
      return "--to must be " + names + ", got '" + it->second + "'";
    }
    o.to = *layout;
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
    if (auto e = lv::cli::parse_integer(it->second, 1, 256, n)) return "--threads: " + *e;
    o.threads = static_cast<int>(n);
  }
  o.progress = [](std::string_view phase, double fraction) { lv::cli::feedback()(phase, fraction); };
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
  lv::cli::feedback().finish();
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

int cmd_verify(const Args& a) {
  if (a.positional.size() != 1) return usage("verify takes exactly one input file");
  lv::report::PipelineOptions o;
  if (auto e = pipeline_options(a, o)) return usage(*e);
  const std::string& path = a.positional[0];
  auto in = open_input(path);
  if (!in.ok()) return fail(in.error());
  auto r = lv::report::run_verify(*in, o);
  if (!r.ok()) return fail(r.error());
  return emit(*r, a, {path});
}

int cmd_convert(const Args& a) {
  if (a.positional.size() != 1) return usage("convert takes one input file and -o OUTPUT");
  auto out = a.values.find("--output");
  if (out == a.values.end()) return usage("convert needs -o OUTPUT");
  lv::report::PipelineOptions o;
  o.default_for_loaders = true;
  if (auto e = pipeline_options(a, o)) return usage(*e);
  if (out->second == "-" && ::isatty(1))
    return usage("-o - writes the safetensors file to standard output, which is a terminal: redirect it "
                 "(> out.safetensors) or give a file");
  auto in = open_input(a.positional[0]);
  if (!in.ok()) return fail(in.error());
  // -o - (and a device or FIFO): converted into a private scratch file, re-read, verified,
  // then streamed; the text report goes to stderr so that stdout carries only the file.
  const bool to_stdout = out->second == "-";
  auto r = lv::report::run_convert(*in, out->second, o);
  if (!r.ok()) return fail(r.error());
  return emit(*r, a, {a.positional[0], out->second}, to_stdout ? stderr : stdout);
}

int cmd_compare(const Args& a) {
  if (a.positional.size() != 2) return usage("compare takes SOURCE and CONVERTED");
  lv::report::PipelineOptions o;
  if (auto e = pipeline_options(a, o)) return usage(*e);
  auto src = open_input(a.positional[0]);
  if (!src.ok()) return fail(src.error());
  auto conv = open_input(a.positional[1]);
  if (!conv.ok()) return fail(conv.error());
  auto r = lv::report::run_compare(*src, *conv, o);
  if (!r.ok()) return fail(r.error());
  return emit(*r, a, {a.positional[0], a.positional[1]});
}

int cmd_inspect(const Args& a) {
  if (a.positional.size() != 1) return usage("inspect takes exactly one file");
  const std::string& path = a.positional[0];
  auto file = open_input(path);
  if (!file.ok()) return fail(file.error());
  const auto& f = **file;
  std::map<std::string, std::pair<int64_t, uint64_t>> by_dtype;
  for (const auto& t : f.tensors()) {
    auto& e = by_dtype[std::string(lv::st::dtype_name(t.dtype))];
    e.first++;
    e.second += t.nbytes;
  }
  lv::cli::feedback()("reading", 0);
  lv::LoadOptions lo;
  if (auto e = model_option(a, lo.family)) return usage(*e);
  auto model = lv::load_lora(*file, lo);
  auto inspection = lv::report::inspect(f, model, [](const char* phase, double x) { lv::cli::feedback()(phase, x); });
  const nlohmann::ordered_json& j = inspection.json;
  const lv::report::Report& loaders = inspection.loaders;
  lv::cli::feedback()("done", 1);
  lv::cli::feedback().finish();
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

int cmd_sample(const Args& a) {
  if (a.positional.size() != 1) return usage("sample takes exactly one output file");
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
  const lv::DialectRow* dialect = nullptr;
  std::string names;
  for (const auto& d : lv::dialect_rows()) {
    if (!d.generated.writes) continue;
    names += (names.empty() ? "" : ", ") + std::string(d.name);
    if (spec.dialect == d.name) dialect = &d;
  }
  if (!dialect) return usage("unknown dialect '" + spec.dialect + "'; sample writes " + names);
  auto cannot_hold = [&](const char* option, const char* what) {
    return usage("the " + spec.dialect + " dialect cannot hold " + what + ": " + option + " does not apply to --dialect " +
                 spec.dialect);
  };
  if (a.values.count("--alpha") && !dialect->generated.alpha) return cannot_hold("--alpha", ".alpha tensors");
  if (a.flags.count("--bias") && !dialect->generated.bias) return cannot_hold("--bias", "bias deltas");
  if (a.flags.count("--no-proj-mlp") && !dialect->generated.no_proj_mlp)
    return cannot_hold("--no-proj-mlp", "a single block without proj_mlp (its linear1 is one fused module)");
  int64_t n = 0;
  if (auto it = a.values.find("--rank"); it != a.values.end()) {
    if (auto e = lv::cli::parse_integer(it->second, 1, 4096, n)) return usage("--rank: " + *e);
    spec.rank = n;
  }
  if (auto it = a.values.find("--seed"); it != a.values.end()) {
    if (auto e = lv::cli::parse_integer(it->second, 0, INT64_MAX, n)) return usage("--seed: " + *e);
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
  lv::cli::feedback()("generating", 0);
  auto bytes = lv::generate_lora(spec);
  if (!bytes.ok()) return fail(bytes.error());
  lv::cli::feedback()("writing", 0.5);
  const bool to_stdout = a.positional[0] == "-";
  if (to_stdout) {
    if (::isatty(1))
      return usage("sample - writes the safetensors file to standard output, which is a terminal: redirect it "
                   "(> out.safetensors) or give a file");
    if (std::fwrite(bytes->data(), 1, bytes->size(), stdout) != bytes->size() || std::fflush(stdout) != 0)
      return fail({ErrorCode::kIo, std::string("cannot write to standard output: ") + std::strerror(errno)});
  } else {
    auto st = lv::st::write_bytes_atomic(a.positional[0], *bytes, {});
    if (!st.ok()) return fail(st.error());
  }
  lv::cli::feedback()("done", 1);
  lv::cli::feedback().finish();
  if (g_quiet) return 0;
  const std::string model_name = family ? std::string(family->display) : "FLUX.1";
  std::fprintf(to_stdout ? stderr : stdout, "wrote %s: %s %s LoRA, rank %lld, %s, %zu bytes\n",
               to_stdout ? kStdoutName : a.positional[0].c_str(), spec.dialect.c_str(), model_name.c_str(),
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
  std::string best;
  size_t best_d = 3;  // suggest only close spellings
  for (const auto& c : lv::cli::commands())
    if (size_t d = edit_distance(w, std::string(c.name)); d < best_d) best_d = d, best = std::string(c.name);
  return usage("unknown command '" + w + "'" + (best.empty() ? "" : " (did you mean " + best + "?)") +
               "; the commands are " + lv::cli::command_names() + ", and no file of that name exists");
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

// Settles --quiet, --verbose and --progress, and refuses two outputs on one destination.
std::optional<std::string> configure_output(const Args& a) {
  g_quiet = a.flags.count("--quiet") > 0;
  if (g_quiet && (a.flags.count("--verbose") || a.flags.count("--progress")))
    return std::string("--quiet prints errors only: not with ") + (a.flags.count("--verbose") ? "--verbose" : "--progress");
  lv::cli::feedback().configure(a.flags.count("--progress") > 0 || (!g_quiet && ::isatty(2)), ::isatty(2) != 0,
                       a.flags.count("--verbose") > 0);
  if (auto e = check_destinations(a)) return e;
  if (std::count(a.positional.begin(), a.positional.end(), "-") > 1)
    return std::string("'-' (standard input) is given twice; it can be read only once");
  return std::nullopt;
}

int dispatch(std::string_view cmd, const Args& a) {
  if (cmd == "matrix") return run_matrix_command(a);
  if (cmd == "corpus") return run_corpus_command(a);
  if (auto e = configure_output(a)) return usage(*e);
  if (cmd == "convert") return cmd_convert(a);
  if (cmd == "compare") return cmd_compare(a);
  if (cmd == "inspect") return cmd_inspect(a);
  if (cmd == "sample") return cmd_sample(a);
  return cmd_verify(a);
}

// The command word picks the command (none: verify, with the top level's help); its table
// row decides which options it takes.
int run(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  const lv::cli::Command* command = nullptr;
  if (auto w = lv::cli::command_word(args)) {
    command = lv::cli::find_command(args[*w]);
    if (command) args.erase(args.begin() + static_cast<std::ptrdiff_t>(*w));
    else if (looks_like_a_command(args[*w])) return unknown_command(args[*w]);
  }
  const lv::cli::Command& c = command ? *command : lv::cli::top_level();
  if (command) lv::cli::set_usage_command(command->name);
  Args a;
  if (auto e = lv::cli::parse(c, args, a)) return usage(*e);
  if (a.flags.count("--help")) {
    std::fputs(lv::cli::help_text(c).c_str(), stdout);
    return 0;
  }
  if (a.flags.count("--version")) {
    std::printf("lora-verify %s\n", LV_VERSION);
    return 0;
  }
  if (!command && a.positional.empty()) return usage("no input file");
  return dispatch(command ? command->name : "verify", a);
}

}  // namespace

int main(int argc, char** argv) {
  lv::st::remove_temporaries_on_signals();
  return finish_stdout(run(argc, argv));
}
