// ChunkPipe: a bounded byte pipe between two threads of one process. The
// writer's bytes are gathered into chunks of `chunk_size`; the reader gets
// them in order through the ByteSource interface. Used to let one thread
// read and hash files into a tar stream while another compresses it.
//
// Thread-safe for one writer thread and one reader thread.
#ifndef KILN_ENGINE_ARCHIVE_CHUNK_PIPE_H_
#define KILN_ENGINE_ARCHIVE_CHUNK_PIPE_H_

#include <deque>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "base/mutex.h"
#include "engine/archive/byte_source.h"

namespace kiln::archive {

class ChunkPipe : public ByteSource {
 public:
  explicit ChunkPipe(size_t chunk_size = 1 << 20, size_t depth = 8)
      : chunk_size_(chunk_size), depth_(depth) {}

  // Writer side. Write() blocks while `depth` chunks wait for the reader;
  // it fails (returning the reader's status) once the reader gave up.
  absl::Status Write(absl::string_view data);
  // Ends the stream: the reader sees the rest and then `status` (OK: end).
  void Close(absl::Status status);

  // Reader side.
  absl::StatusOr<absl::string_view> Next() override;
  // The reader stops early; pending and future writes fail with `status`.
  void Abandon(absl::Status status);

 private:
  absl::Status Push(std::string chunk);

  const size_t chunk_size_;
  const size_t depth_;
  std::string filling_;  // writer-owned partial chunk
  std::string current_;  // reader-owned chunk last returned
  kiln::Mutex mu_;
  std::deque<std::string> ready_ ABSL_GUARDED_BY(mu_);
  std::deque<std::string> spare_ ABSL_GUARDED_BY(mu_);
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status close_status_ ABSL_GUARDED_BY(mu_);
  bool abandoned_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status abandon_status_ ABSL_GUARDED_BY(mu_);
};

}  // namespace kiln::archive

#endif  // KILN_ENGINE_ARCHIVE_CHUNK_PIPE_H_
