// The loader view of the compatibility matrix: per variant, what each profiled loader does
// with the input as it is and which output form serves it (src/loaders/ decides both), and a
// dialect × loader summary small enough for release notes.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "flux/family.h"
#include "lora/model.h"
#include "matrix/model.h"
#include "safetensors/reader.h"

namespace lv::matrix {

// One cell per profiled loader for a loaded model: the input verdict, the form convert --for
// writes, and what convert --for does with it.
std::vector<MatrixLoaderCell> matrix_loader_cells(const LoraModel& model);
// The same for a file (empty when it cannot be read).
std::vector<MatrixLoaderCell> matrix_loader_cells(const std::shared_ptr<const st::SafetensorsFile>& file,
                                                const flux::Family* family = nullptr);

std::string render_loader_summary_markdown(const MatrixResult& m);
std::string render_loader_grid_markdown(const MatrixResult& m);
std::string render_loader_summary_html(const MatrixResult& m);
nlohmann::ordered_json loader_cells_json(const std::vector<MatrixLoaderCell>& cells);
nlohmann::ordered_json loader_summary_json(const MatrixResult& m);
// Reads a row's "loaders" array back; returns false (with `why`) when it is malformed.
bool read_loader_cells(const nlohmann::json& row, std::vector<MatrixLoaderCell>& out, std::string& why);

}  // namespace lv::matrix
