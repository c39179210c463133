// Deterministic safetensors writer: the crate's tensor order and padding, escaped header,
// and one temp-file + fsync + rename routine for every file lora-verify writes.
#include "safetensors/writer.h"

#include "safetensors/utf8.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <functional>
#include <set>

namespace lv::st {
namespace {

bool valid_utf8(std::string_view s) { return first_invalid_utf8(s) == std::string_view::npos; }

void escape(std::string& out, std::string_view s) {
  out += '"';
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\b': out += "\\b"; break;
      case '\t': out += "\\t"; break;
      case '\n': out += "\\n"; break;
      case '\f': out += "\\f"; break;
      case '\r': out += "\\r"; break;
      default:
        if (c < 0x20) {
          const char* d = "0123456789abcdef";
          out += "\\u00";
          out += d[c >> 4];
          out += d[c & 15];
        } else {
          out += ch;
        }
    }
  }
  out += '"';
}

struct Plan {
  std::string header;                // padded header text
  std::vector<size_t> order;         // tensors in file order
};

Result<Plan> plan(const std::vector<TensorToWrite>& tensors, const std::map<std::string, std::string>& metadata) {
  std::set<std::string_view> names;
  for (const auto& t : tensors) {
    if (t.name == "__metadata__") return make_error(ErrorCode::kBadInput, "a tensor may not be named __metadata__");
    if (t.name.empty()) return make_error(ErrorCode::kBadInput, "a tensor has an empty name");
    if (!valid_utf8(t.name)) return make_error(ErrorCode::kBadInput, "tensor name is not valid UTF-8");
    if (!names.insert(t.name).second) return make_error(ErrorCode::kBadInput, "tensor '" + t.name + "' appears twice");
    uint64_t count = 1, bits = 0;
    for (uint64_t d : t.shape)
      if (__builtin_mul_overflow(count, d, &count)) return make_error(ErrorCode::kBadInput, "tensor '" + t.name + "': shape overflows");
    if (__builtin_mul_overflow(count, static_cast<uint64_t>(dtype_bits(t.dtype)), &bits) || bits % 8 != 0 ||
        bits / 8 != t.data.size())
      return make_error(ErrorCode::kBadInput, "tensor '" + t.name + "': " + std::to_string(t.data.size()) +
                                                  " data bytes do not match its shape and dtype " +
                                                  std::string(dtype_name(t.dtype)));
  }
  for (const auto& [k, v] : metadata)
    if (!valid_utf8(k) || !valid_utf8(v)) return make_error(ErrorCode::kBadInput, "metadata entry is not valid UTF-8");

  Plan p;
  p.order.resize(tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) p.order[i] = i;
  // Descending dtype (alignment), then name bytewise: the crate's order.
  std::sort(p.order.begin(), p.order.end(), [&](size_t a, size_t b) {
    if (tensors[a].dtype != tensors[b].dtype) return tensors[a].dtype > tensors[b].dtype;
    return tensors[a].name < tensors[b].name;
  });
  std::string& h = p.header;
  h = "{";
  bool first = true;
  if (!metadata.empty()) {
    h += "\"__metadata__\":{";
    bool f2 = true;
    for (const auto& [k, v] : metadata) {
      if (!f2) h += ',';
      f2 = false;
      escape(h, k);
      h += ':';
      escape(h, v);
    }
    h += '}';
    first = false;
  }
  uint64_t offset = 0;
  for (size_t i : p.order) {
    const auto& t = tensors[i];
    if (!first) h += ',';
    first = false;
    escape(h, t.name);
    h += ":{\"dtype\":\"";
    h += dtype_name(t.dtype);
    h += "\",\"shape\":[";
    for (size_t k = 0; k < t.shape.size(); ++k) {
      if (k) h += ',';
      h += std::to_string(t.shape[k]);
    }
    h += "],\"data_offsets\":[" + std::to_string(offset) + "," + std::to_string(offset + t.data.size()) + "]}";
    offset += t.data.size();
  }
  h += '}';
  while (h.size() % 8 != 0) h += ' ';
  return p;
}

void put_u64(uint8_t* out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out[i] = static_cast<uint8_t>(v >> (8 * i));
}

bool same_file(const struct stat& a, const std::string& path) {
  struct stat b {};
  return ::stat(path.c_str(), &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

// Writes through `emit(write_fn)` into a temp file beside `path`, then renames it into
// place. `write_fn(bytes)` returns false on failure.
Status write_atomically(const std::string& path, const std::vector<std::string>& inputs,
                        const std::function<bool(const std::function<bool(std::span<const uint8_t>)>&)>& emit) {
  struct stat target {};
  if (::stat(path.c_str(), &target) == 0) {
    for (const auto& in : inputs)
      if (same_file(target, in))
        return make_error(ErrorCode::kCannotCreate, path + ": refusing to write over the input file " + in);
    if (S_ISDIR(target.st_mode)) return make_error(ErrorCode::kCannotCreate, path + ": is a directory");
  }
  std::string tmpl = path + ".tmp.XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  int fd = mkstemp(buf.data());
  if (fd < 0) return make_error(ErrorCode::kCannotCreate, path + ": cannot create a temporary file: " + std::strerror(errno));
  const std::string tmp(buf.data());
  int err = 0;
  auto write_fn = [&](std::span<const uint8_t> bytes) {
    const uint8_t* p = bytes.data();
    size_t left = bytes.size();
    while (left > 0) {
      ssize_t w = ::write(fd, p, left);
      if (w < 0) {
        if (errno == EINTR) continue;
        err = errno;
        return false;
      }
      p += w;
      left -= static_cast<size_t>(w);
    }
    return true;
  };
  bool ok = emit(write_fn);
  if (ok && ::fchmod(fd, 0644) != 0) ok = (err = errno, false);
  if (ok && ::fsync(fd) != 0) ok = (err = errno, false);
  if (::close(fd) != 0 && ok) ok = (err = errno, false);
  if (!ok) {
    ::unlink(tmp.c_str());
    return make_error(ErrorCode::kIo, path + ": write failed: " + std::strerror(err));
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int e = errno;
    ::unlink(tmp.c_str());
    return make_error(ErrorCode::kCannotCreate, path + ": cannot rename the temporary file into place: " + std::strerror(e));
  }
  return {};
}

}  // namespace

Result<std::vector<uint8_t>> serialize(const std::vector<TensorToWrite>& tensors, const std::map<std::string, std::string>& metadata,
                                       const std::function<void(size_t)>& copied) {
  auto p = plan(tensors, metadata);
  if (!p.ok()) return p.take_error();
  size_t total = 8 + p->header.size();
  for (const auto& t : tensors) total += t.data.size();
  // Reserved, then appended: pages are touched as the data arrives, not zeroed up front.
  std::vector<uint8_t> out;
  out.reserve(total);
  uint8_t len[8];
  put_u64(len, p->header.size());
  out.insert(out.end(), len, len + 8);
  out.insert(out.end(), p->header.begin(), p->header.end());
  for (size_t i : p->order) {
    out.insert(out.end(), tensors[i].data.begin(), tensors[i].data.end());
    if (copied) copied(i);
  }
  return out;
}

Status write_file(const std::string& path, const std::vector<TensorToWrite>& tensors,
                  const std::map<std::string, std::string>& metadata, const std::vector<std::string>& inputs) {
  auto p = plan(tensors, metadata);
  if (!p.ok()) return p.take_error();
  return write_atomically(path, inputs, [&](const auto& write) {
    uint8_t len[8];
    put_u64(len, p->header.size());
    if (!write({len, 8})) return false;
    if (!write({reinterpret_cast<const uint8_t*>(p->header.data()), p->header.size()})) return false;
    for (size_t i : p->order)
      if (!write(tensors[i].data)) return false;
    return true;
  });
}

Status write_bytes_atomic(const std::string& path, std::span<const uint8_t> bytes, const std::vector<std::string>& inputs) {
  return write_atomically(path, inputs, [&](const auto& write) { return write(bytes); });
}

}  // namespace lv::st
