// Test support for LoRA-level tests: in-memory files, fixture key sets with seeded weights,
// and running the lora-verify binary.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "lora/generate.h"
#include "lora/loader.h"
#include "safetensors/dtype.h"
#include "safetensors/reader.h"

namespace lv::test {

// Validates bytes with the real reader; fails the current test on error.
std::shared_ptr<const st::SafetensorsFile> file_from_bytes(std::vector<uint8_t> bytes, const std::string& name = "test.safetensors");
std::shared_ptr<const st::SafetensorsFile> generated(const GenSpec& spec);
LoraModel load_or_die(std::shared_ptr<const st::SafetensorsFile> file, std::optional<flux::Layout> layout = std::nullopt);

// A tensor for building files by hand.
struct Tensor {
  std::string name;
  std::vector<uint64_t> shape;
  std::vector<double> values;  // numel values (scalar: one)
  st::DType dtype = st::DType::kF32;
};
std::vector<uint8_t> build_file(const std::vector<Tensor>& tensors, const std::map<std::string, std::string>& meta = {});
std::vector<double> random_values(size_t n, uint64_t seed, double amplitude = 1.0);

// Fixture key sets from ../shared/fixtures (skips the test when the folder is absent).
std::string fixtures_dir();
bool fixtures_present();
// A safetensors file with the fixture's names and shapes and seeded random values. Names
// without recorded shapes get FLUX.1 shapes at `rank`. `max_rank` > 0 caps the rank
// dimension of recorded LoRA factors (lora_down/lora_A rows, lora_up/lora_B columns): the
// same names, modules and paths, fewer bytes.
std::vector<uint8_t> fixture_file(const std::string& fixture_name, uint64_t seed, st::DType dtype = st::DType::kBF16,
                                  int64_t rank = 16, int64_t max_rank = 0);

// Runs the lora-verify binary; returns its exit code and output.
struct CliResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};
CliResult run_cli(const std::vector<std::string>& args);

// The whole content of a file ("" when it cannot be read).
std::string read_file(const std::string& path);

// The .json files directly in `dir`, sorted (none when it does not exist).
std::vector<std::string> json_files(const std::string& dir);

// A fresh temporary directory, removed at exit.
std::string temp_dir();

}  // namespace lv::test
