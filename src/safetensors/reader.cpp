// Strict safetensors reader: validates every rule of docs/safetensors.md, in the order
// given there, over a read-only mapping. Policy for names: empty names and names holding control
// characters (< 0x20, 0x7f, including NUL written as \u0000) are rejected; names are at
// most Limits::max_name_bytes bytes. Names are never used as paths.
#include "safetensors/reader.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "safetensors/header_parser.h"

namespace lv::st {
namespace {

class MappedBacking : public Backing {
 public:
  MappedBacking(void* p, size_t n) : p_(p), n_(n) {}
  ~MappedBacking() override {
    if (p_) munmap(p_, n_);
  }
  std::span<const uint8_t> bytes() const override { return {static_cast<const uint8_t*>(p_), n_}; }

 private:
  void* p_;
  size_t n_;
};

class OwnedBacking : public Backing {
 public:
  explicit OwnedBacking(std::vector<uint8_t> v) : v_(std::move(v)) {}
  std::span<const uint8_t> bytes() const override { return v_; }

 private:
  std::vector<uint8_t> v_;
};

#ifdef __EMSCRIPTEN__
class MallocBacking : public Backing {
 public:
  explicit MallocBacking(size_t n) : p_(static_cast<uint8_t*>(std::malloc(n))), n_(n) {}
  ~MallocBacking() override { std::free(p_); }
  uint8_t* data() { return p_; }
  std::span<const uint8_t> bytes() const override { return {p_, n_}; }

 private:
  uint8_t* p_;
  size_t n_;
};
#endif

}  // namespace

std::string shape_string(const std::vector<uint64_t>& shape) {
  std::string o = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) o += ", ";
    o += std::to_string(shape[i]);
  }
  return o + "]";
}

const TensorView* SafetensorsFile::find(std::string_view name) const {
  auto it = std::lower_bound(tensors_.begin(), tensors_.end(), name,
                             [](const TensorView& t, std::string_view n) { return t.name < n; });
  return it != tensors_.end() && it->name == name ? &*it : nullptr;
}

Result<SafetensorsFile> SafetensorsFile::open(const std::string& path, const Limits& limits) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return make_error(ErrorCode::kCannotOpen, path + ": cannot open: " + std::strerror(errno));
  struct stat st {};
  if (fstat(fd, &st) != 0) {
    int e = errno;
    ::close(fd);
    return make_error(ErrorCode::kIo, path + ": cannot stat: " + std::strerror(e));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return make_error(ErrorCode::kCannotOpen, path + ": not a regular file");
  }
  std::shared_ptr<const Backing> backing;
  if (st.st_size == 0) {
    backing = std::make_shared<OwnedBacking>(std::vector<uint8_t>{});
  } else {
#ifdef __EMSCRIPTEN__
    // WebAssembly (web/): emscripten's mmap copies the file into memory anyway and fails for
    // one of 2 GiB or more, where a std::vector cannot go either (wasm32's PTRDIFF_MAX): read
    // it in pieces into a malloc'd buffer.
    auto buffer = std::make_shared<MallocBacking>(static_cast<size_t>(st.st_size));
    uint8_t* data = buffer->data();
    if (!data) {
      ::close(fd);
      return make_error(ErrorCode::kIo, path + ": cannot read: " + std::strerror(ENOMEM));
    }
    for (size_t done = 0, size = static_cast<size_t>(st.st_size); done < size;) {
      const ssize_t n = ::read(fd, data + done, std::min<size_t>(size - done, size_t{1} << 28));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        const int e = n < 0 ? errno : EIO;
        ::close(fd);
        return make_error(ErrorCode::kIo, path + ": cannot read: " + std::strerror(e));
      }
      done += static_cast<size_t>(n);
    }
    backing = std::move(buffer);
#else
    void* p = mmap(nullptr, static_cast<size_t>(st.st_size), PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      int e = errno;
      ::close(fd);
      return make_error(ErrorCode::kIo, path + ": cannot map: " + std::strerror(e));
    }
    backing = std::make_shared<MappedBacking>(p, static_cast<size_t>(st.st_size));
#endif
  }
  ::close(fd);
  return validate(std::move(backing), path, limits);
}

Result<SafetensorsFile> SafetensorsFile::from_bytes(std::vector<uint8_t> bytes, std::string display_name, const Limits& limits) {
  return validate(std::make_shared<OwnedBacking>(std::move(bytes)), std::move(display_name), limits);
}

namespace {

// Phases of validation (docs/safetensors.md): each returns what is wrong, without the path.
using Problem = std::optional<std::string>;

// Rule 1: the length prefix. A length that cannot be right usually means the file is
// something else: say what.
Problem header_length_problem(std::span<const uint8_t> b, const Limits& limits, uint64_t& n) {
  const uint64_t size = b.size();
  if (size < 8) return "file is " + std::to_string(size) + " bytes, shorter than the 8-byte header length";
  n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | b[static_cast<size_t>(i)];
  auto not_safetensors = [&](const std::string& why) -> std::string {
    auto is_text = [](uint8_t c) { return (c >= 0x20 && c < 0x7f) || c == '\n' || c == '\r' || c == '\t'; };
    if (!std::all_of(b.begin(), b.begin() + 8, is_text)) return why;
    const char c = static_cast<char>(b[0]);
    const std::string what = c == '{' || c == '[' ? std::string("it starts with '") + c + "' like a JSON file"
                                                  : "it starts with text";
    return "not a safetensors file: " + what + ", but a safetensors file starts with an 8-byte little-endian " +
           "header length (read as one, its " + why + ")";
  };
  if (n > limits.max_header_bytes)
    return not_safetensors("header length " + std::to_string(n) + " exceeds the limit of " +
                           std::to_string(limits.max_header_bytes) + " bytes");
  if (n > size - 8)
    return not_safetensors("header length " + std::to_string(n) + " runs past the end of the file (" +
                           std::to_string(size) + " bytes)");
  return std::nullopt;
}

// Rule 5 per tensor: element count and byte size from shape and dtype, without wrap.
Problem size_problem(const HeaderEntry& e, uint64_t& numel, uint64_t& nbytes) {
  uint64_t count = 1;
  for (uint64_t d : e.shape)
    if (__builtin_mul_overflow(count, d, &count))
      return "tensor '" + e.name + "': shape " + shape_string(e.shape) + " has more than 2^64 elements";
  uint64_t bits = 0;
  const std::string of = "tensor '" + e.name + "': shape " + shape_string(e.shape) + " of " + std::string(dtype_name(e.dtype));
  if (__builtin_mul_overflow(count, static_cast<uint64_t>(dtype_bits(e.dtype)), &bits)) return of + " is more than 2^64 bits";
  if (bits % 8 != 0) return of + " is " + std::to_string(bits) + " bits, not a whole number of bytes";
  numel = count;
  nbytes = bits / 8;
  return std::nullopt;
}

// Rules 4 and 6: sorted by (begin, end), contiguous from 0, no gap, overlap or alias, and the
// data buffer ends exactly at the file's end.
Problem offsets_problem(const std::vector<HeaderEntry>& entries, const std::vector<uint64_t>& nbytes, uint64_t data_size) {
  std::vector<size_t> order(entries.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t c) {
    const auto& x = entries[a];
    const auto& y = entries[c];
    return x.begin != y.begin ? x.begin < y.begin : (x.end != y.end ? x.end < y.end : x.name < y.name);
  });
  uint64_t pos = 0;
  for (size_t i : order) {
    const HeaderEntry& e = entries[i];
    const std::string offsets =
        "tensor '" + e.name + "': data_offsets [" + std::to_string(e.begin) + ", " + std::to_string(e.end) + "]";
    if (e.end < e.begin) return offsets + " end before they begin";
    if (e.begin != pos)
      return offsets + " " + (e.begin > pos ? "leave a gap after byte " : "overlap the previous tensor, which ends at byte ") +
             std::to_string(pos);
    if (e.end - e.begin != nbytes[i])
      return offsets + " hold " + std::to_string(e.end - e.begin) + " bytes but shape " + shape_string(e.shape) + " of " +
             std::string(dtype_name(e.dtype)) + " needs " + std::to_string(nbytes[i]) + " bytes";
    pos = e.end;
  }
  if (pos != data_size)
    return "tensors end at data byte " + std::to_string(pos) + " but the data buffer holds " + std::to_string(data_size) +
           " bytes (" + (pos < data_size ? "trailing bytes" : "truncated file") + ")";
  return std::nullopt;
}

}  // namespace

Result<SafetensorsFile> SafetensorsFile::validate(std::shared_ptr<const Backing> backing, std::string path, const Limits& limits) {
  const std::span<const uint8_t> b = backing->bytes();
  auto bad = [&](const std::string& msg) { return make_error(ErrorCode::kBadInput, path + ": " + msg); };
  uint64_t n = 0;
  if (auto p = header_length_problem(b, limits, n)) return bad(*p);
  // Rules 2-3: UTF-8 and JSON schema.
  auto parsed = parse_header_json(std::string_view(reinterpret_cast<const char*>(b.data() + 8), static_cast<size_t>(n)), limits);
  if (!parsed.ok()) return bad(parsed.error().message);
  ParsedHeader& h = parsed.value();
  if (h.entries.size() > limits.max_tensors)
    return bad(std::to_string(h.entries.size()) + " tensors exceed the limit of " + std::to_string(limits.max_tensors));
  std::vector<uint64_t> nbytes(h.entries.size()), numel(h.entries.size());
  for (size_t i = 0; i < h.entries.size(); ++i)
    if (auto p = size_problem(h.entries[i], numel[i], nbytes[i])) return bad(*p);
  if (auto p = offsets_problem(h.entries, nbytes, b.size() - 8 - n)) return bad(*p);

  SafetensorsFile f;
  f.backing_ = backing;
  f.path_ = std::move(path);
  f.metadata_ = std::move(h.metadata);
  f.has_metadata_ = h.has_metadata;
  f.header_bytes_ = n;
  f.file_bytes_ = b.size();
  const uint8_t* data = b.data() + 8 + n;
  f.tensors_.reserve(h.entries.size());
  for (size_t i = 0; i < h.entries.size(); ++i) {
    HeaderEntry& e = h.entries[i];
    f.tensors_.push_back(TensorView{std::move(e.name), e.dtype, std::move(e.shape), numel[i], data + e.begin, nbytes[i]});
  }
  std::sort(f.tensors_.begin(), f.tensors_.end(), [](const TensorView& a, const TensorView& c) { return a.name < c.name; });
  return f;
}

}  // namespace lv::st
