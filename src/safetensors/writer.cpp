// Deterministic safetensors writer: the crate's tensor order and padding, escaped header,
// and one temp-file + fsync + rename routine for every file lora-verify writes.
#include "safetensors/writer.h"

#include "safetensors/utf8.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <pthread.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <memory>
#include <set>
#include <system_error>
#include <thread>

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

// Temporary files that exist right now, so that a SIGINT/SIGTERM handler can remove them.
// The handler may only do async-signal-safe work: it reads these fixed buffers and calls
// unlink(). Slots are claimed and released with the signals blocked.
constexpr int kTempSlots = 8;
constexpr size_t kTempPathMax = 4096;
char g_temp_paths[kTempSlots][kTempPathMax];
volatile sig_atomic_t g_temp_used[kTempSlots];

extern "C" void remove_temporaries_and_reraise(int sig) {
  for (int i = 0; i < kTempSlots; ++i)
    if (g_temp_used[i]) ::unlink(g_temp_paths[i]);
  ::signal(sig, SIG_DFL);
  ::raise(sig);  // delivered with the default disposition once the handler returns
}

// Blocks SIGINT, SIGTERM and SIGHUP in this thread while alive.
class SignalsBlocked {
 public:
  SignalsBlocked() {
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGINT);
    sigaddset(&s, SIGTERM);
    sigaddset(&s, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &s, &old_);
  }
  ~SignalsBlocked() { pthread_sigmask(SIG_SETMASK, &old_, nullptr); }
  SignalsBlocked(const SignalsBlocked&) = delete;
  SignalsBlocked& operator=(const SignalsBlocked&) = delete;

 private:
  sigset_t old_;
};

// Test hook: LV_TEST_WRITE_DELAY_MS=N sleeps N ms after each write to a temporary file, so
// a test can deliver a signal in the middle of a write. Not meant for anything else.
int write_delay_ms() {
  static const int ms = [] {
    const char* v = std::getenv("LV_TEST_WRITE_DELAY_MS");
    return v ? std::max(0, std::atoi(v)) : 0;
  }();
  return ms;
}

// Writes all of `bytes` to `fd`; false with `err` set on failure.
bool write_all(int fd, std::span<const uint8_t> bytes, int& err) {
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
}

// Where an output goes: a regular file (or nothing yet), replaced by a rename; a stream (a
// character device such as /dev/null, or a FIFO), which is opened and written like a shell
// redirection would, never replaced; or standard output ("-", when the caller allows it).
enum class DestKind { kFile, kStream, kStdout };

struct Destination {
  std::string path;  // links resolved
  DestKind kind = DestKind::kFile;
  bool replacing = false;
  struct stat target {};
};

Result<Destination> examine(const std::string& requested, const std::vector<std::string>& inputs, bool allow_stdout) {
  Destination d;
  if (requested == "-") {
    if (allow_stdout) {
      d.path = "-";
      d.kind = DestKind::kStdout;
      return d;
    }
    return make_error(ErrorCode::kCannotCreate, "refusing to create a file named '-' (it stands for standard output; "
                                                "write ./- to mean the file)");
  }
  // A symlinked output is written through the link: the target is replaced (atomically, in
  // its own directory) and the link stays a link.
  auto resolved = resolve_links(requested);
  if (!resolved.ok()) return resolved.take_error();
  d.path = *resolved;
  if (::stat(d.path.c_str(), &d.target) != 0) return d;
  for (const auto& in : inputs)
    if (same_file(d.target, in))
      return make_error(ErrorCode::kCannotCreate, requested + ": refusing to write over the input file " + in);
  const mode_t m = d.target.st_mode;
  if (S_ISDIR(m)) return make_error(ErrorCode::kCannotCreate, d.path + ": is a directory");
  if (S_ISREG(m)) {
    d.replacing = true;
  } else if (S_ISCHR(m) || S_ISFIFO(m)) {
    d.kind = DestKind::kStream;
  } else {
    const char* what = S_ISSOCK(m) ? "a socket" : S_ISBLK(m) ? "a block device" : "a special file";
    return make_error(ErrorCode::kCannotCreate,
                      d.path + ": is " + what + "; lora-verify writes regular files, character devices (such as "
                                                "/dev/null) and FIFOs, and never replaces " + what);
  }
  return d;
}

// The fsync and close of a written temporary, on a thread of its own: the caller re-reads
// and verifies the bytes (the page cache holds them) while the disk catches up, and waits
// for the result before anything is put in place. wait() returns the errno of the first
// failure, 0 once the file is durable and closed. Synchronous where threads are not.
class BackgroundSync {
 public:
  explicit BackgroundSync(int fd) {
#ifndef __EMSCRIPTEN__
    try {
      SignalsBlocked blocked;  // inherited by the thread: signals go to the caller's threads
      thread_ = std::thread([this, fd] { err_ = sync_and_close(fd); });
      return;
    } catch (const std::system_error&) {
    }
#endif
    err_ = sync_and_close(fd);
  }
  BackgroundSync(const BackgroundSync&) = delete;
  BackgroundSync& operator=(const BackgroundSync&) = delete;
  ~BackgroundSync() { wait(); }
  int wait() {
    if (thread_.joinable()) thread_.join();
    return err_;
  }

 private:
  static int sync_and_close(int fd) {
    int err = ::fsync(fd) != 0 ? errno : 0;
    if (::close(fd) != 0 && err == 0) err = errno;
    return err;
  }
  std::thread thread_;
  int err_ = 0;
};

// A temporary file, written and closed, not yet in place: beside its destination (renamed
// onto it) or, for a stream or standard output, a scratch file in $TMPDIR (copied into it).
// Removed on destruction unless committed.
class Staged {
 public:
  Staged() = default;
  Staged(const Staged&) = delete;
  Staged& operator=(const Staged&) = delete;
  Staged(Staged&& o) noexcept { *this = std::move(o); }
  Staged& operator=(Staged&& o) noexcept {
    std::swap(dest_, o.dest_);
    std::swap(tmp_, o.tmp_);
    std::swap(slot_, o.slot_);
    std::swap(kind_, o.kind_);
    std::swap(sync_, o.sync_);
    return *this;
  }
  ~Staged() { discard(); }

  // Creates the temporary file for `dest`; returns its descriptor or -1 with errno set.
  int create(const Destination& dest) {
    dest_ = dest.path;
    kind_ = dest.kind;
    std::string tmpl;
    int suffix = 0;
    if (kind_ == DestKind::kFile) {
      tmpl = dest_ + ".tmp.XXXXXX";
    } else {
      const char* tmpdir = std::getenv("TMPDIR");
      tmpl = std::string(tmpdir && *tmpdir ? tmpdir : "/tmp") + "/lora-verify-XXXXXX.safetensors";
      suffix = static_cast<int>(std::strlen(".safetensors"));
    }
    if (tmpl.size() >= kTempPathMax) {
      errno = ENAMETOOLONG;
      return -1;
    }
    SignalsBlocked blocked;
    for (int i = 0; i < kTempSlots; ++i)
      if (!g_temp_used[i]) {
        slot_ = i;
        break;
      }
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    int fd = ::mkstemps(buf.data(), suffix);
    if (fd < 0) {
      slot_ = -1;
      return -1;
    }
    tmp_ = buf.data();
    if (slot_ >= 0) {
      std::memcpy(g_temp_paths[slot_], tmp_.c_str(), tmp_.size() + 1);
      g_temp_used[slot_] = 1;
    }
    return fd;
  }

  const std::string& temporary() const { return tmp_; }
  bool scratch() const { return kind_ != DestKind::kFile; }

  // Hands the written descriptor over to be fsynced and closed in the background.
  void sync_in_background(int fd) { sync_ = std::make_unique<BackgroundSync>(fd); }

  // Waits for the background fsync; on failure the temporary is removed.
  Status synced() {
    const int e = sync_ ? sync_->wait() : 0;
    if (e == 0) return {};
    discard();
    return make_error(ErrorCode::kIo, dest_ + ": write failed: " + std::strerror(e));
  }

  // Renames the temporary file onto the destination, or streams it into the destination.
  Status commit() {
    LV_TRY(synced());
    if (kind_ != DestKind::kFile) {
      Status st = copy_out();
      discard();
      return st;
    }
    SignalsBlocked blocked;
    if (::rename(tmp_.c_str(), dest_.c_str()) != 0) {
      int e = errno;
      discard();
      return make_error(ErrorCode::kCannotCreate, dest_ + ": cannot rename the temporary file into place: " + std::strerror(e));
    }
    release();
    tmp_.clear();
    return {};
  }

  void discard() {
    if (sync_) sync_->wait();
    if (tmp_.empty()) return;
    SignalsBlocked blocked;
    ::unlink(tmp_.c_str());
    tmp_.clear();
    release();
  }

 private:
  // Copies the scratch file into the stream (or standard output).
  Status copy_out() {
    const bool to_stdout = kind_ == DestKind::kStdout;
    const std::string name = to_stdout ? "standard output" : dest_;
    int in = ::open(tmp_.c_str(), O_RDONLY | O_CLOEXEC);
    if (in < 0) return make_error(ErrorCode::kIo, tmp_ + ": cannot re-open the scratch file: " + std::strerror(errno));
    int out = to_stdout ? 1 : ::open(dest_.c_str(), O_WRONLY | O_CLOEXEC);
    if (out < 0) {
      const int e = errno;
      ::close(in);
      return make_error(ErrorCode::kCannotCreate, dest_ + ": cannot open for writing: " + std::strerror(e));
    }
    std::vector<uint8_t> chunk(1 << 20);
    int err = 0;
    bool ok = true;
    for (;;) {
      ssize_t n = ::read(in, chunk.data(), chunk.size());
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        const int e = errno;
        ::close(in);
        if (!to_stdout) ::close(out);
        return make_error(ErrorCode::kIo, tmp_ + ": read failed: " + std::strerror(e));
      }
      if (n == 0) break;
      if (!(ok = write_all(out, {chunk.data(), static_cast<size_t>(n)}, err))) break;
    }
    ::close(in);
    if (!to_stdout && ::close(out) != 0 && ok) ok = (err = errno, false);
    if (!ok) return make_error(ErrorCode::kIo, "cannot write to " + name + ": " + std::strerror(err));
    return {};
  }

  void release() {
    if (slot_ >= 0) g_temp_used[slot_] = 0;
    slot_ = -1;
  }
  std::string dest_, tmp_;
  int slot_ = -1;
  DestKind kind_ = DestKind::kFile;
  std::unique_ptr<BackgroundSync> sync_;
};

using Emit = std::function<bool(const std::function<bool(std::span<const uint8_t>)>&)>;

// Writes through `emit(write_fn)` into the temporary file of `dest`; fsyncs and closes it
// in the background.
// `write_fn(bytes)` returns false on failure. The result is put in place by commit().
Result<Staged> stage(const Destination& dest, const Emit& emit) {
  const std::string& path = dest.path;
  // A replaced file keeps its permission bits (and, where allowed, its owner); a new file
  // gets 0666 minus the umask, like any file the user creates.
  const mode_t mask = ::umask(0);
  ::umask(mask);
  mode_t mode = 0666 & ~mask;
  if (dest.replacing) mode = dest.target.st_mode & 07777;
  Staged staged;
  int fd = staged.create(dest);
  if (fd < 0) {
    const int e = errno;
    std::string dir = staged.scratch() ? "$TMPDIR" : std::filesystem::path(path).parent_path().string();
    if (dir.empty()) dir = ".";
    return make_error(ErrorCode::kCannotCreate, path + ": cannot create a temporary file in the directory " + dir + ": " +
                                                    std::strerror(e) +
                                                    (staged.scratch() ? " (set TMPDIR to a writable directory)"
                                                                      : " (the output's directory must exist and be "
                                                                        "writable; choose another)"));
  }
  int err = 0;
  const int delay = write_delay_ms();
  auto write_fn = [&](std::span<const uint8_t> bytes) {
    if (!write_all(fd, bytes, err)) return false;
    if (delay > 0) ::usleep(static_cast<useconds_t>(delay) * 1000);
    return true;
  };
  bool ok = emit(write_fn);
  if (!staged.scratch()) {
    const struct stat& target = dest.target;
    if (ok && dest.replacing && (target.st_uid != ::geteuid() || target.st_gid != ::getegid()))
      (void)!::fchown(fd, target.st_uid, target.st_gid);  // best effort: only root may give files away
    if (ok && ::fchmod(fd, mode) != 0) ok = (err = errno, false);
  }
  if (!ok) {
    ::close(fd);
    return make_error(ErrorCode::kIo, path + ": write failed: " + std::strerror(err));
  }
  staged.sync_in_background(fd);  // commit() waits for it
  return staged;
}

// Writes bytes into a stream destination (a character device or FIFO) directly.
Status write_stream(const Destination& dest, std::span<const uint8_t> bytes) {
  int fd = ::open(dest.path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return make_error(ErrorCode::kCannotCreate, dest.path + ": cannot open for writing: " + std::strerror(errno));
  int err = 0;
  bool ok = write_all(fd, bytes, err);
  if (::close(fd) != 0 && ok) ok = (err = errno, false);
  if (!ok) return make_error(ErrorCode::kIo, "cannot write to " + dest.path + ": " + std::strerror(err));
  return {};
}

}  // namespace

// Follows symbolic links at `path` to the file they finally name (which may not exist yet);
// a relative link target is taken against the link's directory.
Result<std::string> resolve_links(const std::string& path) {
  std::string p = path;
  for (int hops = 0; hops < 40; ++hops) {
    struct stat st {};
    if (::lstat(p.c_str(), &st) != 0 || !S_ISLNK(st.st_mode)) return p;
    std::vector<char> buf(kTempPathMax);
    ssize_t n = ::readlink(p.c_str(), buf.data(), buf.size());
    if (n < 0 || static_cast<size_t>(n) >= buf.size())
      return make_error(ErrorCode::kCannotCreate, path + ": cannot read the symbolic link " + p + ": " +
                                                      std::strerror(n < 0 ? errno : ENAMETOOLONG));
    std::filesystem::path target(std::string(buf.data(), static_cast<size_t>(n)));
    p = target.is_absolute() ? target.string() : (std::filesystem::path(p).parent_path() / target).string();
  }
  return make_error(ErrorCode::kCannotCreate, path + ": too many levels of symbolic links");
}

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

namespace {

Emit emit_file(const Plan& p, const std::vector<TensorToWrite>& tensors, const std::function<void(size_t)>& written = {}) {
  return [&p, &tensors, &written](const auto& write) {
    uint8_t len[8];
    put_u64(len, p.header.size());
    if (!write({len, 8})) return false;
    if (!write({reinterpret_cast<const uint8_t*>(p.header.data()), p.header.size()})) return false;
    for (size_t i : p.order) {
      if (!write(tensors[i].data)) return false;
      if (written) written(i);
    }
    return true;
  };
}

}  // namespace

struct PendingOutput::Impl {
  Staged staged;
};
PendingOutput::PendingOutput() = default;
PendingOutput::PendingOutput(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
PendingOutput::PendingOutput(PendingOutput&&) noexcept = default;
PendingOutput& PendingOutput::operator=(PendingOutput&&) noexcept = default;
PendingOutput::~PendingOutput() = default;
const std::string& PendingOutput::temporary() const {
  static const std::string none;
  return impl_ ? impl_->staged.temporary() : none;
}
Status PendingOutput::commit() {
  if (!impl_) return internal_error("commit of an output that was not staged");
  return impl_->staged.commit();
}

Result<PendingOutput> stage_file(const std::string& path, const std::vector<TensorToWrite>& tensors,
                                 const std::map<std::string, std::string>& metadata,
                                 const std::vector<std::string>& inputs, bool allow_stdout,
                                 const std::function<void(size_t)>& written) {
  auto p = plan(tensors, metadata);
  if (!p.ok()) return p.take_error();
  LV_TRY_ASSIGN(dest, examine(path, inputs, allow_stdout));
  LV_TRY_ASSIGN(staged, stage(dest, emit_file(*p, tensors, written)));
  auto impl = std::make_unique<PendingOutput::Impl>();
  impl->staged = std::move(staged);
  return PendingOutput(std::move(impl));
}

Status write_file(const std::string& path, const std::vector<TensorToWrite>& tensors,
                  const std::map<std::string, std::string>& metadata, const std::vector<std::string>& inputs) {
  LV_TRY_ASSIGN(pending, stage_file(path, tensors, metadata, inputs));
  return pending.commit();
}

Status write_bytes_atomic(const std::string& path, std::span<const uint8_t> bytes, const std::vector<std::string>& inputs) {
  LV_TRY_ASSIGN(dest, examine(path, inputs, false));
  if (dest.kind == DestKind::kStream) return write_stream(dest, bytes);
  LV_TRY_ASSIGN(staged, stage(dest, [&](const auto& write) { return write(bytes); }));
  return staged.commit();
}

Status write_set_atomic(const std::vector<FileToWrite>& files, const std::vector<std::string>& inputs) {
  std::vector<Staged> staged;  // destructors remove whatever is not committed
  for (const auto& f : files) {
    LV_TRY_ASSIGN(dest, examine(f.path, inputs, false));
    if (dest.kind != DestKind::kFile)
      return make_error(ErrorCode::kCannotCreate, dest.path + ": is a device or FIFO; a set of reports is written as "
                                                              "regular files that replace each other together only");
    auto s = stage(dest, [&](const auto& write) { return write(f.bytes); });
    if (!s.ok()) return s.take_error();
    staged.push_back(std::move(s).value());
  }
  for (auto& s : staged) LV_TRY(s.synced());  // every file durable before the first is renamed
  for (auto& s : staged) LV_TRY(s.commit());
  return {};
}

int track_temporary(const std::string& path) {
  if (path.size() >= kTempPathMax) return -1;
  SignalsBlocked blocked;
  for (int i = 0; i < kTempSlots; ++i)
    if (!g_temp_used[i]) {
      std::memcpy(g_temp_paths[i], path.c_str(), path.size() + 1);
      g_temp_used[i] = 1;
      return i;
    }
  return -1;
}

void untrack_temporary(int slot) {
  if (slot < 0 || slot >= kTempSlots) return;
  SignalsBlocked blocked;
  g_temp_used[slot] = 0;
}

void remove_temporaries_on_signals() {
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) {
    struct sigaction old {};
    if (sigaction(sig, nullptr, &old) == 0 && old.sa_handler == SIG_IGN) continue;  // e.g. nohup
    struct sigaction sa {};
    sa.sa_handler = remove_temporaries_and_reraise;
    sigemptyset(&sa.sa_mask);
    sigaction(sig, &sa, nullptr);
  }
}

}  // namespace lv::st
