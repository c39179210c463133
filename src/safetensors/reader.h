// Strict safetensors reader over a read-only memory map: a tensor view exists only for a
// tensor that passed every rule of docs/safetensors.md#rules-in-the-order-they-are-checked.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"
#include "safetensors/dtype.h"
#include "safetensors/limits.h"

namespace lv::st {

struct TensorView {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<uint64_t> shape;
  uint64_t numel = 0;
  const uint8_t* data = nullptr;  // may be unaligned; read with memcpy
  uint64_t nbytes = 0;
  std::span<const uint8_t> bytes() const { return {data, static_cast<size_t>(nbytes)}; }
};

// The bytes behind a file: a read-only mapping or an owned buffer.
class Backing {
 public:
  virtual ~Backing() = default;
  virtual std::span<const uint8_t> bytes() const = 0;
};

class SafetensorsFile {
 public:
  // Maps `path` read-only and validates it. Errors: kCannotOpen (missing/unreadable),
  // kBadInput (invalid container), kIo (read failure).
  static Result<SafetensorsFile> open(const std::string& path, const Limits& limits = kDefaultLimits);
  // Validates bytes held in memory (copied into an owned buffer). `display_name` is used
  // in error messages in place of a path.
  static Result<SafetensorsFile> from_bytes(std::vector<uint8_t> bytes, std::string display_name,
                                            const Limits& limits = kDefaultLimits);

  const std::string& path() const { return path_; }
  // Tensors sorted by name (bytewise).
  const std::vector<TensorView>& tensors() const { return tensors_; }
  const TensorView* find(std::string_view name) const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  bool has_metadata() const { return has_metadata_; }
  uint64_t header_bytes() const { return header_bytes_; }
  uint64_t file_bytes() const { return file_bytes_; }

 private:
  static Result<SafetensorsFile> validate(std::shared_ptr<const Backing> backing, std::string path,
                                          const Limits& limits);
  std::shared_ptr<const Backing> backing_;
  std::string path_;
  std::vector<TensorView> tensors_;
  std::map<std::string, std::string> metadata_;
  bool has_metadata_ = false;
  uint64_t header_bytes_ = 0;
  uint64_t file_bytes_ = 0;
};

// "[3072, 16]": a shape as error messages print it.
std::string shape_string(const std::vector<uint64_t>& shape);

}  // namespace lv::st
