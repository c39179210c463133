// Implementation of the LoRA-level test support.
#include "support/lora_support.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include <nlohmann/json.hpp>

#include "flux/layout.h"
#include "lora/keys.h"
#include "safetensors/writer.h"

namespace lv::test {

std::shared_ptr<const st::SafetensorsFile> file_from_bytes(std::vector<uint8_t> bytes, const std::string& name) {
  auto f = st::SafetensorsFile::from_bytes(std::move(bytes), name);
  if (!f.ok()) {
    ADD_FAILURE() << "invalid test file: " << f.error().message;
    return nullptr;
  }
  return std::make_shared<const st::SafetensorsFile>(std::move(f).value());
}

std::shared_ptr<const st::SafetensorsFile> generated(const GenSpec& spec) {
  auto bytes = generate_lora(spec);
  if (!bytes.ok()) {
    ADD_FAILURE() << "generator: " << bytes.error().message;
    return nullptr;
  }
  return file_from_bytes(std::move(bytes).value(), "generated-" + spec.dialect + ".safetensors");
}

LoraModel load_or_die(std::shared_ptr<const st::SafetensorsFile> file, std::optional<flux::Layout> layout) {
  LoadOptions o;
  o.layout = layout;
  auto m = load_lora(std::move(file), o);
  if (!m.ok()) {
    ADD_FAILURE() << "load: " << m.error().message;
    return {};
  }
  return std::move(m).value();
}

std::vector<double> random_values(size_t n, uint64_t seed, double amplitude) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(-amplitude, amplitude);
  std::vector<double> v(n);
  for (auto& x : v) x = u(rng);
  return v;
}

std::vector<uint8_t> build_file(const std::vector<Tensor>& tensors, const std::map<std::string, std::string>& meta) {
  std::vector<std::vector<uint8_t>> buffers;
  std::vector<st::TensorToWrite> out;
  for (const auto& t : tensors) {
    std::vector<uint8_t> b(t.values.size() * st::dtype_bits(t.dtype) / 8);
    st::encode_from_double(t.dtype, t.values.data(), t.values.size(), b.data());
    buffers.push_back(std::move(b));
    out.push_back({t.name, t.dtype, t.shape, {}});
  }
  for (size_t i = 0; i < out.size(); ++i) out[i].data = buffers[i];
  auto bytes = st::serialize(out, meta);
  if (!bytes.ok()) {
    ADD_FAILURE() << "serialize: " << bytes.error().message;
    return {};
  }
  return std::move(bytes).value();
}

std::string fixtures_dir() {
  if (const char* env = std::getenv("LV_FIXTURES_DIR")) return env;
  return LV_FIXTURES_DIR;
}

bool fixtures_present() { return std::filesystem::is_directory(fixtures_dir()); }

namespace {

// FLUX.1 shape of a tensor name without a recorded shape.
std::vector<uint64_t> inferred_shape(const std::string& name, int64_t rank) {
  auto k = parse_key(name);
  if (!k) return {static_cast<uint64_t>(rank)};
  const flux::Layout l = flux::Layout::flux1_dev();
  int64_t rows = 0, cols = 0;
  if (k->naming == Naming::kDiffusers) {
    auto pm = flux::find_diffusers(l, k->module);
    if (!pm) return {static_cast<uint64_t>(rank)};
    rows = pm->row_end - pm->row_begin;
    cols = flux::find_target(l, pm->target)->cols;
  } else {
    auto t = flux::find_target(l, k->module);
    if (!t) return {static_cast<uint64_t>(rank)};
    rows = t->rows;
    cols = t->cols;
  }
  switch (k->role) {
    case Role::kDown: return {static_cast<uint64_t>(rank), static_cast<uint64_t>(cols)};
    case Role::kUp: return {static_cast<uint64_t>(rows), static_cast<uint64_t>(rank)};
    case Role::kAlpha: return {};
    default: return {static_cast<uint64_t>(rows)};
  }
}

}  // namespace

std::vector<uint8_t> fixture_file(const std::string& fixture_name, uint64_t seed, st::DType dtype, int64_t rank,
                                  int64_t max_rank) {
  std::ifstream in(fixtures_dir() + "/" + fixture_name + ".json");
  if (!in) {
    ADD_FAILURE() << "cannot read fixture " << fixture_name;
    return {};
  }
  nlohmann::json j = nlohmann::json::parse(in);
  // Encoded tensor by tensor: full-size fixtures hold hundreds of millions of values.
  std::vector<std::vector<uint8_t>> buffers;
  std::vector<st::TensorToWrite> out;
  std::mt19937_64 rng(seed);
  uint64_t s = seed;
  std::vector<double> chunk;
  for (auto& item : j["keys"].items()) {
    // Named copies, not a structured binding: clang 14 cannot capture one in a lambda.
    const std::string name = item.key();
    const nlohmann::json& shape_json = item.value();
    st::TensorToWrite t;
    t.name = name;
    t.shape = shape_json.is_array() ? shape_json.get<std::vector<uint64_t>>() : inferred_shape(name, rank);
    auto ends_with = [&](const char* suffix) {
      const std::string x(suffix);
      return name.size() >= x.size() && name.compare(name.size() - x.size(), x.size(), x) == 0;
    };
    if (max_rank > 0 && t.shape.size() == 2) {
      const uint64_t cap = static_cast<uint64_t>(max_rank);
      if (ends_with("lora_down.weight") || ends_with("lora_A.weight")) t.shape[0] = std::min(t.shape[0], cap);
      if (ends_with("lora_up.weight") || ends_with("lora_B.weight")) t.shape[1] = std::min(t.shape[1], cap);
    }
    uint64_t n = 1;
    for (auto d : t.shape) n *= d;
    const bool is_alpha = name.size() > 6 && name.compare(name.size() - 6, 6, ".alpha") == 0;
    t.dtype = is_alpha ? st::DType::kF32 : dtype;
    std::vector<uint8_t> bytes(n * st::dtype_bits(t.dtype) / 8);
    if (is_alpha) {
      double a = static_cast<double>(1 + (++s % 16));
      st::encode_from_double(t.dtype, &a, 1, bytes.data());
    } else {
      // Factors of modest size so ΔW is well scaled; norm scales near 0.1.
      const double amp = t.shape.size() == 2 ? 1.0 / std::sqrt(static_cast<double>(t.shape[1])) : 0.1;
      std::uniform_real_distribution<double> u(-amp, amp);
      const size_t es = st::dtype_bits(t.dtype) / 8;
      for (uint64_t i = 0; i < n; i += 65536) {
        chunk.resize(static_cast<size_t>(std::min<uint64_t>(65536, n - i)));
        for (auto& x : chunk) x = u(rng);
        st::encode_from_double(t.dtype, chunk.data(), chunk.size(), bytes.data() + i * es);
      }
    }
    buffers.push_back(std::move(bytes));
    out.push_back(std::move(t));
  }
  for (size_t i = 0; i < out.size(); ++i) out[i].data = buffers[i];
  auto bytes = st::serialize(out, {});
  if (!bytes.ok()) {
    ADD_FAILURE() << "serialize: " << bytes.error().message;
    return {};
  }
  return std::move(bytes).value();
}

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::string temp_dir() {
  std::string tmpl = (std::filesystem::temp_directory_path() / "lv-test-XXXXXX").string();
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  if (!mkdtemp(buf.data())) {
    ADD_FAILURE() << "mkdtemp failed";
    return "/tmp";
  }
  return buf.data();
}

CliResult run_cli(const std::vector<std::string>& args) {
  std::string dir = temp_dir();
  std::string out_path = dir + "/stdout", err_path = dir + "/stderr";
  CliResult r;
  pid_t pid = fork();
  if (pid == 0) {
    FILE* o = std::freopen(out_path.c_str(), "w", stdout);
    FILE* e = std::freopen(err_path.c_str(), "w", stderr);
    (void)o;
    (void)e;
    std::vector<char*> argv;
    std::string bin = LV_CLI_PATH;
    argv.push_back(bin.data());
    std::vector<std::string> copy = args;
    for (auto& a : copy) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(bin.c_str(), argv.data());
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = read_file(out_path);
  r.err = read_file(err_path);
  std::filesystem::remove_all(dir);
  return r;
}

std::vector<std::string> json_files(const std::string& dir) {
  std::vector<std::string> out;
  if (std::filesystem::exists(dir))
    for (const auto& e : std::filesystem::directory_iterator(dir))
      if (e.path().extension() == ".json") out.push_back(e.path().string());
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace lv::test
