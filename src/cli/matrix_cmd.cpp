// `lora-verify matrix`: parses its options, runs or merges the matrix, compares it with a
// baseline, writes compatibility.{md,json,html} atomically, and picks the exit code.
#include "cli/matrix_cmd.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <thread>

#include "cli/messages.h"
#include "matrix/combine.h"
#include "matrix/converter_cell.h"
#include "matrix/io.h"
#include "matrix/process.h"
#include "matrix/render.h"
#include "matrix/run.h"
#include "safetensors/writer.h"

namespace {

namespace rp = lv::matrix;
using lv::cli::fail;
using lv::cli::usage;
using lv::ErrorCode;

struct MatrixArgs {
  std::string out = "reports";
  std::optional<std::string> baseline;
  int jobs = 0;  // 0: the number of cores
  int shard_index = 0, shard_count = 1;
  bool sharded = false;
  bool merge = false;
  std::string filter;
  bool builtin = true;
  bool timings = false;
  bool quiet = false, verbose = false;
  std::vector<std::string> positional;
  std::optional<std::vector<std::string>> styles;
  std::vector<rp::MatrixConverter> converters;
  rp::ConverterLimits limits;
};


std::optional<long long> parse_int(const std::string& s, long long lo, long long hi) {
  int64_t v = 0;
  if (lv::cli::parse_integer(s, lo, hi, v)) return std::nullopt;
  return v;
}

// --shard i/n.
std::optional<std::string> read_shard(const std::string& value, MatrixArgs& a) {
  auto slash = value.find('/');
  std::optional<long long> idx, cnt;
  if (slash != std::string::npos) {
    idx = parse_int(value.substr(0, slash), 0, 1 << 20);
    cnt = parse_int(value.substr(slash + 1), 1, 1 << 20);
  }
  if (!idx || !cnt || *idx >= *cnt) return "--shard must be i/n with 0 <= i < n, got '" + value + "'";
  a.sharded = true;
  a.shard_index = static_cast<int>(*idx);
  a.shard_count = static_cast<int>(*cnt);
  return std::nullopt;
}

// --styles LIST: built-in columns, or none.
std::optional<std::string> read_styles(const std::string& value, MatrixArgs& a) {
  std::vector<std::string> list;
  if (value != "none") {
    std::stringstream ss(value);
    for (std::string item; std::getline(ss, item, ',');) {
      const auto& known = rp::style_columns();
      if (std::find(known.begin(), known.end(), item) == known.end())
        return "--styles: unknown column '" + item + "' (choose from kohya, comfy, peft, bfl, diffusers, round-trip, or none)";
      if (std::find(list.begin(), list.end(), item) != list.end()) return "--styles names '" + item + "' twice";
      list.push_back(item);
    }
    if (list.empty()) return "--styles needs a list of columns, or none";
  }
  a.styles = list;
  return std::nullopt;
}

// --converter-timeout S and --converter-max-output BYTES.
std::optional<std::string> read_limits(const lv::cli::Args& in, MatrixArgs& a) {
  if (const std::string* v = in.value("--converter-timeout")) {
    char* end = nullptr;
    errno = 0;
    const double t = std::strtod(v->c_str(), &end);
    if (v->empty() || *end != '\0' || errno != 0 || !(t > 0) || t > 86400 * 7)
      return "--converter-timeout must be a number of seconds in (0, 604800], got '" + *v + "'";
    a.limits.timeout_seconds = t;
  }
  if (const std::string* v = in.value("--converter-max-output")) {
    std::string digits = *v;
    unsigned shift = 0;
    if (!digits.empty() && (digits.back() == 'K' || digits.back() == 'M' || digits.back() == 'G')) {
      shift = digits.back() == 'K' ? 10 : digits.back() == 'M' ? 20 : 30;
      digits.pop_back();
    }
    auto n = parse_int(digits, 1, (1ll << 50) >> shift);
    if (!n) return "--converter-max-output must be a positive number of bytes (K, M, G suffixes allowed, at most 1 PiB), got '" + *v + "'";
    a.limits.max_output = static_cast<uint64_t>(*n) << shift;
  }
  return std::nullopt;
}

// The options that need or exclude one another.
std::optional<std::string> check_combinations(const lv::cli::Args& in, const MatrixArgs& a) {
  const bool limits = in.has("--converter-timeout") || in.has("--converter-max-output");
  if (a.quiet && a.verbose) return "--quiet prints errors only: not with --verbose";
  if (a.merge) {
    if (a.positional.empty()) return "--merge needs the shard JSON files";
    if (a.sharded || !a.filter.empty() || !a.builtin || a.jobs || a.styles || !a.converters.empty() || limits)
      return "--merge joins finished shards; --shard, --filter, --no-builtin, --jobs, --styles and --converter options do not apply";
  } else if (!a.builtin && a.positional.empty()) {
    return "--no-builtin needs INPUTS";
  }
  if (a.styles && a.styles->empty() && a.converters.empty()) return "--styles none needs at least one --converter";
  if (limits && a.converters.empty()) return "--converter-timeout and --converter-max-output need a --converter";
  return std::nullopt;
}

// Reads the parsed options into MatrixArgs; returns a message for a usage error.
std::optional<std::string> parse(const lv::cli::Args& in, MatrixArgs& a) {
  a.positional = in.positional;
  a.merge = in.flags.count("--merge") > 0;
  a.timings = in.flags.count("--timings") > 0;
  a.quiet = in.flags.count("--quiet") > 0;
  a.verbose = in.flags.count("--verbose") > 0;
  a.builtin = in.flags.count("--no-builtin") == 0;
  if (const std::string* v = in.value("--out")) {
    if (v->empty()) return "--out needs a directory";
    if (*v == "-") return "--out needs a directory: '-' (standard output) cannot hold three files";
    a.out = *v;
  }
  if (const std::string* v = in.value("--baseline")) a.baseline = *v;
  if (const std::string* v = in.value("--filter")) a.filter = *v;
  if (const std::string* v = in.value("--jobs")) {
    auto n = parse_int(*v, 1, 256);
    if (!n) return "--jobs must be an integer in 1..256, got '" + *v + "'";
    a.jobs = static_cast<int>(*n);
  }
  if (const std::string* v = in.value("--shard"))
    if (auto e = read_shard(*v, a)) return e;
  if (const std::string* v = in.value("--styles"))
    if (auto e = read_styles(*v, a)) return e;
  if (auto it = in.lists.find("--converter"); it != in.lists.end())
    for (const std::string& value : it->second) {
      rp::MatrixConverter c;
      if (auto why = rp::parse_converter(value, c)) return *why;
      for (const auto& other : a.converters)
        if (other.name == c.name) return "--converter " + c.name + " given twice";
      a.converters.push_back(std::move(c));
    }
  if (auto e = read_limits(in, a)) return e;
  return check_combinations(in, a);
}

// Reads a whole file: kCannotOpen when it cannot be opened, kIo when reading fails.
lv::Result<std::string> slurp(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) return lv::make_error(ErrorCode::kCannotOpen, path + ": is a directory");
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return lv::make_error(ErrorCode::kCannotOpen, path + ": cannot open: " + std::strerror(errno));
  std::string out;
  char buf[1 << 16];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int e = errno;
      ::close(fd);
      return lv::make_error(ErrorCode::kIo, path + ": read failed: " + std::strerror(e));
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

lv::Result<rp::MatrixResult> read_json_file(const std::string& path) {
  auto text = slurp(path);
  if (!text.ok()) return text.take_error();
  return rp::read_matrix_json(*text, path);
}

}  // namespace

static bool g_quiet = false;  // --quiet: the summary lines are not printed

// A summary line on stdout, unless --quiet.
template <typename... T>
static void say(const char* format, T... values) {
  if (!g_quiet) std::printf(format, values...);
}

namespace {

// The columns of a run, for the summary line.
std::string columns_list(const rp::MatrixResult& m) {
  std::string s;
  for (const auto& c : m.columns) s += (s.empty() ? "" : ", ") + c;
  return s;
}

lv::Result<rp::MatrixResult> merge_shards(const MatrixArgs& a) {
  std::vector<rp::MatrixResult> shards;
  for (const auto& path : a.positional) {
    auto s = read_json_file(path);
    if (!s.ok()) return s.take_error();
    shards.push_back(std::move(s).value());
  }
  return rp::merge_matrices(shards);
}

lv::Result<rp::MatrixResult> run(const MatrixArgs& a) {
  rp::MatrixOptions o;
  o.inputs = a.positional;
  o.builtin = a.builtin;
  o.filter = a.filter;
  o.jobs = a.jobs > 0 ? a.jobs : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  o.shard_index = a.shard_index;
  o.shard_count = a.shard_count;
  o.progress = !a.quiet;  // shown only when stderr is a terminal
  o.styles = a.styles;
  o.converters = a.converters;
  o.limits = a.limits;
  if (!o.converters.empty()) lv::process::kill_running_on_signals();
  return rp::run_matrix(o);
}

// Marks what changed against --baseline and prints it; the number of regressions.
lv::Result<int64_t> compare_with_baseline(const MatrixArgs& a, rp::MatrixResult& m) {
  // Read completely before anything is written, so --out may be the baseline's folder.
  auto base = read_json_file(*a.baseline);
  if (!base.ok()) return base.take_error();
  const bool partial = !a.filter.empty() || !a.builtin || a.sharded;
  rp::mark_changes(m, rp::diff_against_baseline(*base, m, partial));
  for (const auto& n : m.baseline_notes) say("%s\n", n.c_str());
  return m.regressions;
}

// Why a matrix checked nothing (it must not pass, nor replace the files of one that did), or nothing.
std::optional<std::string> checked_nothing(const MatrixArgs& a, const rp::MatrixResult& m) {
  if (!m.rows.empty() || (a.sharded && m.total_rows > 0)) return std::nullopt;  // an empty shard of a real run is fine
  std::string why = !a.filter.empty() ? "no built-in variant matches --filter '" + a.filter + "'"
                    : a.sharded      ? "shard " + std::to_string(a.shard_index) + "/" + std::to_string(a.shard_count) +
                                      " holds no rows"
                                     : "there are no rows";
  if (!a.positional.empty() && !a.merge) why += ", and the inputs hold no .safetensors file";
  return why;
}

// Only inputs, and not one of them converts equivalently.
bool inputs_all_failed(const rp::MatrixResult& m) {
  return !m.rows.empty() && std::none_of(m.rows.begin(), m.rows.end(), [](const rp::MatrixRow& r) { return r.builtin; }) &&
         std::none_of(m.rows.begin(), m.rows.end(), [](const rp::MatrixRow& r) { return r.equivalent(); });
}

lv::Status write_reports(const MatrixArgs& a, const rp::MatrixResult& m, const std::vector<std::string>& guarded) {
  std::error_code ec;
  std::filesystem::create_directories(a.out, ec);
  if (ec || !std::filesystem::is_directory(a.out, ec))
    return lv::Error{ErrorCode::kCannotCreate, a.out + ": cannot create the output directory" + (ec ? ": " + ec.message() : "")};
  const std::pair<const char*, std::string> files[] = {{"compatibility.md", rp::render_matrix_markdown(m, a.timings)},
                                                       {"compatibility.json", rp::render_matrix_json(m, a.timings)},
                                                       {"compatibility.html", rp::render_matrix_html(m, a.timings)}};
  // All three or none: each is written to a temporary first, then all are renamed.
  std::vector<lv::st::FileToWrite> set;
  for (const auto& [name, body] : files)
    set.push_back({(std::filesystem::path(a.out) / name).string(),
                   {reinterpret_cast<const uint8_t*>(body.data()), body.size()}});
  return lv::st::write_set_atomic(set, guarded);
}

// Converter logs: only for cells that are not equivalent; stale logs of these converters go.
lv::Result<size_t> write_logs(const MatrixArgs& a, const rp::MatrixResult& m, const std::vector<std::string>& guarded) {
  std::error_code ec;
  for (const auto& col : m.columns) {
    if (rp::is_style_column(col)) continue;
    const std::filesystem::path dir = std::filesystem::path(a.out) / "logs" / col;
    if (std::filesystem::is_directory(dir, ec))
      for (const auto& e : std::filesystem::directory_iterator(dir, ec))
        if (e.path().extension() == ".log") std::filesystem::remove(e.path(), ec);
  }
  size_t logs = 0;
  for (const auto& r : m.rows)
    for (const auto& c : r.cells) {
      if (c.log.empty() || c.log_text.empty()) continue;
      const std::filesystem::path p = std::filesystem::path(a.out) / c.log;
      std::filesystem::create_directories(p.parent_path(), ec);
      auto st = lv::st::write_bytes_atomic(p.string(), {reinterpret_cast<const uint8_t*>(c.log_text.data()), c.log_text.size()}, guarded);
      if (!st.ok()) return st.error();
      ++logs;
    }
  return logs;
}

// The lines after a run: per row with --verbose, the summary, and why the exit code is 1.
void report_outcome(const MatrixArgs& a, const rp::MatrixResult& m, double secs, bool failed_inputs) {
  if (a.verbose)
    for (const auto& r : m.rows)
      std::fprintf(stderr, "lora-verify: %s: %s (%.2f s)\n", r.variant.c_str(), r.equivalent() ? "equivalent" : "not equivalent",
                   r.seconds);
  // The line counts the variants equivalent in every column that ran (the converters'
  // columns only, with --styles none).
  say("%lld of %zu variants equivalent in every column (%s); wrote %s/compatibility.{md,json,html} (%.1f s)\n",
      static_cast<long long>(m.equivalent_rows()), m.rows.size(), columns_list(m).c_str(), a.out.c_str(), secs);
  if (m.regressions > 0) say("%lld regression(s) against %s\n", static_cast<long long>(m.regressions), a.baseline->c_str());
  if (m.builtin_failed())
    say("%s\n", std::any_of(m.columns.begin(), m.columns.end(), rp::is_style_column)
                    ? "a built-in variant is not equivalent (see the matrix)"
                    : "a converter's cell is not equivalent for a built-in variant (see the matrix and logs/)");
  if (failed_inputs)
    say("none of the %zu input%s converts equivalently in every output style (see the matrix)\n", m.rows.size(),
        m.rows.size() == 1 ? "" : "s");
}

}  // namespace

int run_matrix_command(const lv::cli::Args& args) {
  MatrixArgs a;
  if (auto e = parse(args, a)) return usage(*e);
  g_quiet = a.quiet;
  const auto start = std::chrono::steady_clock::now();
  auto made = a.merge ? merge_shards(a) : run(a);
  if (!made.ok()) return fail(made.error());
  rp::MatrixResult m = std::move(made).value();
  const std::vector<std::string> guarded = a.merge ? std::vector<std::string>{} : a.positional;  // never replaced
  int64_t regressions = 0;
  if (a.baseline) {
    auto r = compare_with_baseline(a, m);
    if (!r.ok()) return fail(r.error());
    regressions = *r;
  }
  if (auto why = checked_nothing(a, m)) {
    say("the matrix checked nothing: %s; nothing written to %s\n", why->c_str(), a.out.c_str());
    return static_cast<int>(ErrorCode::kChecksFailed);
  }
  const bool failed_inputs = inputs_all_failed(m);
  if (auto st = write_reports(a, m, guarded); !st.ok()) return fail(st.error());
  auto logs = write_logs(a, m, guarded);
  if (!logs.ok()) return fail(logs.error());
  if (*logs) std::printf("wrote %zu converter log%s to %s/logs/\n", *logs, *logs == 1 ? "" : "s", a.out.c_str());
  report_outcome(a, m, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), failed_inputs);
  return regressions > 0 || m.builtin_failed() || failed_inputs ? static_cast<int>(ErrorCode::kChecksFailed) : 0;
}
