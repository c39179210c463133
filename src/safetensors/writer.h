// Deterministic safetensors writer (crate-compatible ordering and padding), atomic on disk.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/result.h"
#include "safetensors/dtype.h"

namespace lv::st {

struct TensorToWrite {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<uint64_t> shape;
  std::span<const uint8_t> data;  // exactly the tensor's byte size; caller keeps it alive
};

// Builds the complete file image in memory. Errors (kBadInput): duplicate names, invalid
// UTF-8 in a name or metadata, a name `__metadata__`, data size not matching shape×dtype.
// `copied(i)`, when given, is called once tensor i's bytes are in the image (and never
// read again), so a caller can free its buffer and hold the data once, not twice.
Result<std::vector<uint8_t>> serialize(const std::vector<TensorToWrite>& tensors,
                                       const std::map<std::string, std::string>& metadata,
                                       const std::function<void(size_t)>& copied = {});

// Streams the file to a temporary file beside `path`, fsyncs it and renames it into place.
// `path` "-" is refused (kCannotCreate): it means standard output, never a file named "-".
// Refuses (kCannotCreate) when `path` names the same file as one of `inputs` (compared by
// device and inode, so links and `./x` spellings are caught). Never leaves a partial file
// under `path`.
Status write_file(const std::string& path, const std::vector<TensorToWrite>& tensors,
                  const std::map<std::string, std::string>& metadata,
                  const std::vector<std::string>& inputs);

// An output written completely to a temporary file, not yet where it was asked to go, so
// that it can be re-read and verified first. commit() puts it in place: a regular file (or
// none yet) is replaced by a rename; a character device or FIFO (and "-", standard output,
// when stage_file allows it) gets the bytes streamed into it, as a shell redirection would,
// and is never replaced. The temporary's bytes can be re-read at once: its fsync runs in
// the background and commit() waits for it (a failed fsync is a kIo error, the temporary
// removed). Destroyed without commit(), the temporary is removed and the destination is as
// it was. A signal (remove_temporaries_on_signals) removes it too.
class PendingOutput {
 public:
  PendingOutput();
  PendingOutput(PendingOutput&&) noexcept;
  PendingOutput& operator=(PendingOutput&&) noexcept;
  PendingOutput(const PendingOutput&) = delete;
  PendingOutput& operator=(const PendingOutput&) = delete;
  ~PendingOutput();
  const std::string& temporary() const;  // the written bytes, to re-read
  Status commit();
  struct Impl;

 private:
  explicit PendingOutput(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
  friend Result<PendingOutput> stage_file(const std::string&, const std::vector<TensorToWrite>&,
                                          const std::map<std::string, std::string>&, const std::vector<std::string>&,
                                          bool, const std::function<void(size_t)>&);
};

// Writes the file to a temporary (beside a regular destination; in $TMPDIR for a device,
// a FIFO or standard output) and returns it uncommitted. Refuses (kCannotCreate) what
// write_file refuses, and a socket, block device or other special file as destination.
// `path` "-" means standard output only when `allow_stdout`. `written(i)`, when given, is
// called once tensor i's bytes are written (and never read again), so a caller can free its
// buffer while the rest is written.
Result<PendingOutput> stage_file(const std::string& path, const std::vector<TensorToWrite>& tensors,
                                 const std::map<std::string, std::string>& metadata,
                                 const std::vector<std::string>& inputs, bool allow_stdout = false,
                                 const std::function<void(size_t)>& written = {});

// Atomically writes arbitrary bytes (reports) with the same temp+rename and input guard.
// A character device or FIFO is written directly; it is never replaced.
Status write_bytes_atomic(const std::string& path, std::span<const uint8_t> bytes,
                          const std::vector<std::string>& inputs);

// Writes a set of files so that either all are replaced or none: every file is written to
// its temporary first (with the checks of write_bytes_atomic); only when all are complete
// are they renamed into place. On any failure every temporary is removed and no
// destination has changed (short of a rename failing midway, which no full disk causes).
// Every destination must be a regular file or absent: a device or FIFO is refused.
struct FileToWrite {
  std::string path;
  std::span<const uint8_t> bytes;
};
Status write_set_atomic(const std::vector<FileToWrite>& files, const std::vector<std::string>& inputs);

// Registers a file to be removed by the signal handlers of remove_temporaries_on_signals()
// (a scratch file of the caller's); returns a slot for untrack_temporary, or -1 when none
// is free.
int track_temporary(const std::string& path);
void untrack_temporary(int slot);

// Follows symbolic links at `path` to the file they finally name (which may not exist yet):
// where a write to `path` lands. A relative link target is taken against the link's folder.
Result<std::string> resolve_links(const std::string& path);

// Installs SIGINT, SIGTERM and SIGHUP handlers (unless the signal is ignored) that remove
// every temporary file a write of this process has open, then re-raise the signal with its
// default disposition (exit status 128 + signal). The destination files stay as they were.
void remove_temporaries_on_signals();

}  // namespace lv::st
