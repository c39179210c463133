// The rows and columns of one matrix run (internal to src/matrix/): the built-in variants that
// pass --filter, every .safetensors file under the inputs, this shard's share of them, the
// columns, and the fingerprint that ties the shards of one run together.
#pragma once

#include <string>
#include <vector>

#include "core/result.h"
#include "lora/generate.h"
#include "matrix/model.h"

namespace lv::matrix {

// One row to run: a built-in variant (spec) or an input file (path).
struct Job {
  std::string name;
  const GenSpec* spec = nullptr;         // built-in
  std::string path;                      // input
  const flux::Family* family = nullptr;  // built-in: the family it was generated for
};

struct RunGrid {
  std::vector<Job> all;          // the unsharded run: built-ins in grid order, then inputs by path
  std::vector<size_t> mine;  // indices into `all` of this shard's rows (all of them without --shard)
  std::vector<std::string> columns;
  std::string fingerprint;  // set on shards
};

// Errors: kUsage (a bad shard, an unknown style, a converter named twice, no columns),
// kCannotOpen (an input path that does not exist or a directory that cannot be read).
Result<RunGrid> plan_grid(const MatrixOptions& opt);

// Whether the style column is selected (--styles; all by default).
bool selected(const MatrixOptions& opt, const std::string& column);

}  // namespace lv::matrix
