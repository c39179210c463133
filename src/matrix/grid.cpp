// The rows and columns of one run (see grid.h).
#include "matrix/grid.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <set>

#include "matrix/variants.h"

namespace lv::matrix {
namespace {

// Every .safetensors file under the inputs (directories searched recursively), sorted and
// unique, so the order does not depend on how the arguments were spelled.
Result<std::vector<std::string>> walk_inputs(const std::vector<std::string>& inputs) {
  namespace fs = std::filesystem;
  std::vector<std::string> files;
  for (const auto& in : inputs) {
    std::error_code ec;
    if (fs::is_directory(in, ec)) {
      fs::recursive_directory_iterator it(in, fs::directory_options::skip_permission_denied, ec), end;
      if (ec) return make_error(ErrorCode::kCannotOpen, in + ": cannot read directory: " + ec.message());
      for (; it != end; it.increment(ec)) {
        if (ec) return make_error(ErrorCode::kCannotOpen, in + ": cannot read directory: " + ec.message());
        std::error_code fec;
        if (it->is_regular_file(fec) && it->path().extension() == ".safetensors") files.push_back(it->path().string());
      }
    } else if (fs::exists(in, ec)) {
      files.push_back(in);
    } else {
      return make_error(ErrorCode::kCannotOpen, in + ": no such file or directory");
    }
  }
  std::sort(files.begin(), files.end());
  files.erase(std::unique(files.begin(), files.end()), files.end());
  return files;
}

// The style columns in grid order (whatever order --styles gave), then the converters.
Result<std::vector<std::string>> choose_columns(const MatrixOptions& opt) {
  std::vector<std::string> columns;
  for (const auto& c : style_columns())
    if (selected(opt, c)) columns.push_back(c);
  if (opt.styles)
    for (const auto& c : *opt.styles)
      if (!is_style_column(c)) return make_error(ErrorCode::kUsage, "--styles: unknown column '" + c + "'");
  std::set<std::string> names(columns.begin(), columns.end());
  for (const auto& c : opt.converters) {
    if (!names.insert(c.name).second) return make_error(ErrorCode::kUsage, "--converter " + c.name + " names a column twice");
    columns.push_back(c.name);
  }
  if (columns.empty()) return make_error(ErrorCode::kUsage, "no columns: --styles none needs at least one --converter");
  return columns;
}

// FNV-1a over everything that defines the run; every shard of one run shares it.
std::string fingerprint(const MatrixOptions& opt, const RunGrid& g) {
  uint64_t h = 0xcbf29ce484222325ull;
  auto mix = [&](const std::string& s) {
    for (unsigned char c : s) h = (h ^ c) * 0x100000001b3ull;
    h = (h ^ 0xff) * 0x100000001b3ull;  // separator
  };
  mix(LV_VERSION);
  mix(opt.builtin ? "builtin" : "no-builtin");
  mix(opt.filter);
  mix(std::to_string(opt.shard_count));
  for (const auto& j : g.all) mix((j.spec ? "b:" : "i:") + j.name);
  if (g.columns != style_columns()) {  // older runs (all style columns, no converter) keep their fingerprint
    for (const auto& c : g.columns) mix("c:" + c);
    for (const auto& c : opt.converters) mix("x:" + c.command);
    char t[64];
    std::snprintf(t, sizeof t, "t:%g m:%llu", opt.limits.timeout_seconds, static_cast<unsigned long long>(opt.limits.max_output));
    mix(t);
  }
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(h));
  return hex;
}

}  // namespace

bool selected(const MatrixOptions& opt, const std::string& column) {
  return !opt.styles || std::find(opt.styles->begin(), opt.styles->end(), column) != opt.styles->end();
}

Result<RunGrid> plan_grid(const MatrixOptions& opt) {
  if (opt.shard_count < 1 || opt.shard_index < 0 || opt.shard_index >= opt.shard_count)
    return make_error(ErrorCode::kUsage, "--shard must be i/n with 0 <= i < n, got " + std::to_string(opt.shard_index) + "/" +
                                             std::to_string(opt.shard_count));
  RunGrid g;
  if (opt.builtin)
    for (const auto& v : builtin_variants())
      if (opt.filter.empty() || v.name.find(opt.filter) != std::string::npos) g.all.push_back({v.name, &v.spec, "", v.family});
  LV_TRY_ASSIGN(files, walk_inputs(opt.inputs));
  for (auto& f : files) g.all.push_back({f, nullptr, f});
  for (size_t i = 0; i < g.all.size(); ++i)
    if (i % static_cast<size_t>(opt.shard_count) == static_cast<size_t>(opt.shard_index)) g.mine.push_back(i);
  LV_TRY_ASSIGN(columns, choose_columns(opt));
  g.columns = std::move(columns);
  if (opt.shard_count > 1) g.fingerprint = fingerprint(opt, g);
  return g;
}

}  // namespace lv::matrix
