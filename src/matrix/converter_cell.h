// Converter columns of the compatibility matrix (`matrix --converter NAME=CMD`): runs any
// tool on each variant in a fresh temporary directory, with a time and an output-size limit
// (matrix/process.h), and grades its output with `compare` (run_compare).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "flux/family.h"
#include "matrix/model.h"
#include "matrix/source.h"
#include "safetensors/reader.h"

namespace lv::matrix {

// Parses "NAME=CMD". NAME: letters, digits, '.', '_', '-' (it names a column and a log
// folder), not a built-in column; CMD must contain {in} and {out}. Returns why not.
std::optional<std::string> parse_converter(const std::string& spec, MatrixConverter& out);

// The cell input: the bytes of a generated variant, or the path of an input file.
struct ConverterInput {
  const std::vector<uint8_t>* bytes = nullptr;
  std::string path;
};

// Runs one converter on one variant and grades the result. Never throws and never blocks
// longer than the time limit (plus the time to kill the process group and compare).
// Outcomes: equivalent, not equivalent, failed, timed out, no output, unreadable output.
// For cells that are not equivalent, `log` names the log file (logs/<converter>/<slug>.log,
// relative to --out) and `log_text` holds its text.
MatrixCell run_converter_cell(const MatrixConverter& conv, const ConverterLimits& limits, const Source& source,
                              const ConverterInput& input, const std::string& variant);

}  // namespace lv::matrix
