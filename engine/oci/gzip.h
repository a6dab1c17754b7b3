// ParallelGzip: a gzip stream made of independently compressed members,
// one per fixed-size chunk of the input, compressed with libdeflate on
// worker threads. Every gzip reader (gzip -d, zlib, Go's compress/gzip that
// container runtimes and registries use) reads a multi-member stream as the
// concatenation of its members.
//
// Deterministic: the chunk size and level are fixed, each member's header
// has mtime 0 and no name, so the output depends only on the input bytes —
// not on the number of workers or on how the input is split into Write()
// calls (tested). An empty input gives one empty member (a valid gzip file).
//
// Memory is bounded: at most 2 * workers + 1 chunks are held at a time.
// Not thread-safe (one writer); the workers are private.
#ifndef KILN_ENGINE_OCI_GZIP_H_
#define KILN_ENGINE_OCI_GZIP_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "base/mutex.h"

namespace kiln::oci {

class ParallelGzip {
 public:
  using Sink = std::function<absl::Status(absl::string_view)>;
  static constexpr size_t kChunkBytes = size_t{1} << 20;
  static constexpr int kLevel = 4;

  // workers == 0 compresses on the caller's thread.
  ParallelGzip(Sink sink, int workers);
  ~ParallelGzip();
  ParallelGzip(const ParallelGzip&) = delete;
  ParallelGzip& operator=(const ParallelGzip&) = delete;

  absl::Status Write(absl::string_view data);
  // Compresses what is buffered and flushes every member to the sink.
  absl::Status Finish();

 private:
  struct Job {
    std::string in;
    std::string out;
    bool started = false;
    bool done = false;
    bool failed = false;
  };
  // Queues the buffered chunk; emits finished members in order while more
  // than `max_pending` are queued.
  absl::Status Submit(size_t max_pending);
  absl::Status EmitFront();
  void WorkerLoop();

  Sink sink_;
  int workers_;
  std::string buffer_;
  bool finished_ = false;
  int64_t submitted_ = 0;  // members queued or written
  absl::Status error_;

  Mutex mu_;
  std::deque<std::shared_ptr<Job>> jobs_ ABSL_GUARDED_BY(mu_);
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

// Compresses one chunk as a complete gzip member (libdeflate, kLevel).
// False only if libdeflate cannot allocate a compressor.
bool GzipMember(absl::string_view in, std::string* out);

}  // namespace kiln::oci

#endif  // KILN_ENGINE_OCI_GZIP_H_
