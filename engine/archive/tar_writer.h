// TarWriter: a deterministic tar stream (POSIX ustar, with pax extended
// headers only when a path, link target or size does not fit ustar).
//
// Every header has mtime 0, uid/gid 0, empty uname/gname, and a normalized
// mode: 0755 directories and executable files, 0644 other files, 0777
// symlinks. The caller decides entry order (kiln writes depth-first with
// names sorted bytewise). Bytes go to `sink` in order; identical calls
// produce identical bytes. Not thread-safe.
#ifndef KILN_ENGINE_ARCHIVE_TAR_WRITER_H_
#define KILN_ENGINE_ARCHIVE_TAR_WRITER_H_

#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace kiln::archive {

class TarWriter {
 public:
  using Sink = std::function<absl::Status(absl::string_view)>;
  explicit TarWriter(Sink sink) : sink_(std::move(sink)) {}

  // `path` is relative, '/'-separated, without a trailing slash.
  absl::Status AddDirectory(absl::string_view path);
  absl::Status AddSymlink(absl::string_view path, absl::string_view target);
  // A regular file of exactly `size` bytes: BeginFile, FileData (any number
  // of times, `size` bytes in total), EndFile.
  absl::Status BeginFile(absl::string_view path, int64_t size, bool executable);
  absl::Status FileData(absl::string_view data);
  absl::Status EndFile();
  // Writes the end-of-archive marker. No calls after this.
  absl::Status Finish();

 private:
  absl::Status WriteHeader(absl::string_view path, char type, int mode,
                           int64_t size, absl::string_view link);

  Sink sink_;
  int64_t file_remaining_ = -1;  // >= 0 inside a file
  int64_t file_size_ = 0;
};

}  // namespace kiln::archive

#endif  // KILN_ENGINE_ARCHIVE_TAR_WRITER_H_
