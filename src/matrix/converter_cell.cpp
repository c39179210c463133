// Converter columns of the compatibility matrix (see converter_cell.h).
#include "matrix/converter_cell.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <signal.h>

#include "matrix/process.h"
#include "matrix/variants.h"
#include "report/pipeline.h"

namespace lv::matrix {
namespace {

using report::ModuleRow;
using report::Report;

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  if (from.empty()) return s;
  for (size_t at = 0; (at = s.find(from, at)) != std::string::npos; at += to.size()) s.replace(at, from.size(), to);
  return s;
}

std::string fmt(double e) {
  if (std::isinf(e)) return "inf";
  if (std::isnan(e)) return "nan";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1e", e);
  return buf;
}

// "not equivalent: …; worst: a (different, 1.0e+00), b (missing), …" — at most three.
std::string worst_modules(const Report& r) {
  std::vector<const ModuleRow*> bad;
  for (const auto& m : r.modules)
    if (m.status != "equivalent") bad.push_back(&m);
  auto weight = [](const ModuleRow* m) { return m->status == "different" ? m->relative_error : INFINITY; };
  std::stable_sort(bad.begin(), bad.end(), [&](const ModuleRow* a, const ModuleRow* b) {
    const double wa = weight(a), wb = weight(b);
    if (wa != wb) return wa > wb;
    return a->target < b->target;
  });
  std::string out;
  for (size_t i = 0; i < bad.size() && i < 3; ++i) {
    out += (i ? ", " : "") + bad[i]->target + " (" + bad[i]->status;
    if (bad[i]->status == "different") out += ", rel. error " + fmt(bad[i]->relative_error);
    out += ")";
  }
  if (bad.size() > 3) out += ", and " + std::to_string(bad.size() - 3) + " more";
  return out;
}

bool write_all(const std::string& path, const uint8_t* data, size_t n) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return false;
  size_t done = 0;
  while (done < n) {
    ssize_t w = ::write(fd, data + done, n - done);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) break;
    done += static_cast<size_t>(w);
  }
  return ::close(fd) == 0 && done == n;
}

// A fresh temporary directory for one cell, removed with everything in it.
struct CellDir {
  std::string dir;
  ~CellDir() {
    std::error_code e;
    if (!dir.empty()) std::filesystem::remove_all(dir, e);
  }
  std::string in() const { return dir + "/in.safetensors"; }
  std::string out() const { return dir + "/out.safetensors"; }
  std::string out_log() const { return dir + "/.stdout"; }
  std::string err_log() const { return dir + "/.stderr"; }
  // {in}, {out} and {dir} for the cell's paths, so messages do not depend on the run.
  std::string stable(const std::string& s) const {
    return replace_all(replace_all(replace_all(s, in(), "{in}"), out(), "{out}"), dir, "{dir}");
  }
};

// Creates the directory; why not, when it cannot.
std::optional<std::string> make_cell_dir(CellDir& cell) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::path base = fs::temp_directory_path(ec);
  if (ec) base = "/tmp";
  std::string templ = (base / "lv-cell-XXXXXX").string();
  if (!::mkdtemp(templ.data())) return "cannot create a temporary directory in " + base.string() + ": " + std::strerror(errno);
  cell.dir = templ;
  return std::nullopt;
}

// The input file, copied or written as {in}.
bool write_input(const ConverterInput& input, const CellDir& cell) {
  if (input.bytes) return write_all(cell.in(), input.bytes->data(), input.bytes->size());
  std::error_code ec;
  std::filesystem::copy_file(input.path, cell.in(), std::filesystem::copy_options::overwrite_existing, ec);
  return !ec;
}

// What the converter printed: the last 32 KiB of each stream, with the cell's paths made stable.
struct Printed {
  std::string out_raw, err_raw, out, err;
  uint64_t out_total = 0, err_total = 0;
};

Printed read_printed(const CellDir& cell) {
  Printed p;
  p.out_raw = process::file_tail(cell.out_log(), 32 << 10, &p.out_total);
  p.err_raw = process::file_tail(cell.err_log(), 32 << 10, &p.err_total);
  p.out = cell.stable(p.out_raw);
  p.err = cell.stable(p.err_raw);
  return p;
}

// A run that gave no output to grade: not started, timed out, or failed. False when it exited 0.
bool grade_run(const process::Outcome& run, const ConverterLimits& limits, const std::string& err, MatrixCell& c) {
  if (!run.started) {
    c.outcome = Outcome::kFailed;
    c.reason = run.spawn_error;
  } else if (run.timed_out) {
    c.outcome = Outcome::kTimedOut;
    char buf[64];
    std::snprintf(buf, sizeof buf, "%g", limits.timeout_seconds);
    c.reason = std::string("no result within ") + buf + " s (--converter-timeout); its process group was killed";
  } else if (run.signal != 0 || run.exit_code != 0) {
    c.outcome = Outcome::kFailed;
    c.reason = run.signal ? process::signal_text(run.signal) : "exit code " + std::to_string(run.exit_code);
    if (run.signal == SIGXFSZ)
      c.reason += ": a file grew past --converter-max-output " + std::to_string(limits.max_output) + " bytes";
    const std::string line = process::last_line(err);
    if (!line.empty()) c.reason += ": " + line;
  } else {
    return false;
  }
  return true;
}

// {out} read back and compared with the source, as `compare` does.
void compare_output(const std::string& converter, const CellDir& cell, const Source& source, MatrixCell& c) {
  const std::string name = "output of " + converter;
  auto file = st::SafetensorsFile::open(cell.out());
  if (!file.ok()) {
    c.outcome = Outcome::kUnreadableOutput;
    c.reason = cell.stable(replace_all(file.error().message, cell.out(), name));
    return;
  }
  auto converted = std::make_shared<const st::SafetensorsFile>(std::move(file).value());
  report::PipelineOptions cmp;
  cmp.family = source.family;
  cmp.threads = 1;  // parallelism is across rows
  auto model = source.get();
  auto r = model.ok() ? report::run_compare(**model, converted, cmp) : Result<report::Report>(model.error());
  if (!r.ok()) {
    c.outcome = Outcome::kUnreadableOutput;
    c.reason = cell.stable(replace_all(r.error().message, cell.out(), name));
    return;
  }
  c.worst_error = r->summary.worst_relative_error;
  if (r->pass) {
    c.outcome = Outcome::kEquivalent;
    return;
  }
  c.outcome = Outcome::kNotEquivalent;
  c.reason = r->verdict;
  const std::string worst = worst_modules(*r);
  if (!worst.empty()) c.reason += "; worst: " + worst;
  c.reason = cell.stable(replace_all(c.reason, cell.out(), name));
}

// A run that exited 0: what it wrote as {out}.
void grade_output(const std::string& converter, const CellDir& cell, const ConverterLimits& limits, const std::string& err,
                  const Source& source, MatrixCell& c) {
  struct stat st {};
  if (::lstat(cell.out().c_str(), &st) != 0) {
    c.outcome = Outcome::kNoOutput;
    c.reason = "exit code 0, but {out} was not written";
    const std::string line = process::last_line(err);
    if (!line.empty()) c.reason += " (stderr: " + line + ")";
  } else if (!S_ISREG(st.st_mode)) {
    c.outcome = Outcome::kUnreadableOutput;
    c.reason = "{out} is not a regular file";
  } else if (static_cast<uint64_t>(st.st_size) >= limits.max_output) {
    // Writes past the limit fail (RLIMIT_FSIZE), so a file at the limit was cut there.
    c.outcome = Outcome::kUnreadableOutput;
    c.reason = "{out} reached the --converter-max-output limit of " + std::to_string(limits.max_output) +
               " bytes (writes past it fail)";
  } else {
    compare_output(converter, cell, source, c);
  }
}

// The log of a cell that is not equivalent: what ran, where, its outcome and what it printed.
std::string log_text(const MatrixConverter& conv, const std::string& variant, const std::string& cmd, const CellDir& cell,
                     const MatrixCell& c, const Printed& p) {
  std::string t;
  t += "converter: " + conv.name + "\ncommand: " + conv.command + "\nvariant: " + variant + "\n";
  t += "ran: " + cmd + "\n";
  t += "paths: {dir} is " + cell.dir + " (the converter's temporary directory, removed after the run), {in} is " + cell.in() +
       ", {out} is " + cell.out() + "\n";
  t += "outcome: " + std::string(outcome_name(c.outcome)) + (c.reason.empty() ? "" : ": " + c.reason) + "\n";
  auto section = [&](const char* what, const std::string& text, uint64_t total, size_t kept) {
    t += std::string("--- ") + what;
    if (total > kept) t += " (last " + std::to_string(kept) + " of " + std::to_string(total) + " bytes)";
    t += " ---\n" + text;
    if (!text.empty() && text.back() != '\n') t += "\n";
  };
  section("stdout", p.out, p.out_total, p.out_raw.size());
  section("stderr", p.err, p.err_total, p.err_raw.size());
  return t;
}

}  // namespace

std::optional<std::string> parse_converter(const std::string& spec, MatrixConverter& out) {
  const size_t eq = spec.find('=');
  if (eq == std::string::npos || eq == 0) return "--converter needs NAME=CMD, got '" + spec + "'";
  out.name = spec.substr(0, eq);
  out.command = spec.substr(eq + 1);
  for (unsigned char c : out.name)
    if (!std::isalnum(c) && c != '.' && c != '_' && c != '-')
      return "--converter NAME may hold only letters, digits, '.', '_' and '-', got '" + out.name + "'";
  if (out.name.size() > 64) return "--converter NAME is longer than 64 characters: '" + out.name + "'";
  if (out.name == "." || out.name == "..") return "--converter NAME cannot be '" + out.name + "'";
  for (const auto& c : style_columns())
    if (out.name == c) return "--converter NAME '" + out.name + "' is a built-in column; choose another name";
  if (out.command.find("{in}") == std::string::npos || out.command.find("{out}") == std::string::npos)
    return "--converter " + out.name + ": CMD must contain {in} and {out}, got '" + out.command + "'";
  return std::nullopt;
}

MatrixCell run_converter_cell(const MatrixConverter& conv, const ConverterLimits& limits, const Source& source,
                              const ConverterInput& input, const std::string& variant) {
  MatrixCell c;
  c.column = conv.name;
  CellDir cell;
  if (auto why = make_cell_dir(cell)) {
    c.outcome = Outcome::kFailed;
    c.reason = *why;
    return c;
  }
  if (!write_input(input, cell)) {
    c.outcome = Outcome::kFailed;
    c.reason = "cannot write the input file for the converter in " + cell.dir;
    return c;
  }
  const std::string cmd =
      replace_all(replace_all(conv.command, "{in}", process::shell_quote(cell.in())), "{out}", process::shell_quote(cell.out()));
  const process::Outcome run =
      process::run_shell(cmd, cell.dir, cell.out_log(), cell.err_log(), {limits.timeout_seconds, limits.max_output});
  const Printed printed = read_printed(cell);
  if (!grade_run(run, limits, printed.err, c)) grade_output(conv.name, cell, limits, printed.err, source, c);
  if (c.outcome != Outcome::kEquivalent) {
    c.log = "logs/" + conv.name + "/" + variant_slug(variant) + ".log";
    c.log_text = log_text(conv, variant, cmd, cell, c, printed);
  }
  return c;
}

}  // namespace lv::matrix
