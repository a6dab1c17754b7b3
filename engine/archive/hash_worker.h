// HashWorker: SHA-256 of a sequence of files on a background thread, so an
// extractor can hash one file's content while it writes it and decompresses
// the next (engine/archive/safe_extract.cc).
//
// The caller streams files one after another: Begin(), Update()* and End()
// per file. Update() copies the bytes into a batch (many small files share
// one) that the worker hashes later, so the caller's buffer may be reused at
// once. At most `max_pending_bytes` wait for the worker; Update() blocks
// beyond that (memory stays bounded whatever the archive). Finish() waits
// for the worker and returns the digests in the order the files began.
//
// One caller thread; the worker is internal. Destroying an unfinished
// HashWorker stops the worker (the pending bytes are dropped).
#ifndef KILN_ENGINE_ARCHIVE_HASH_WORKER_H_
#define KILN_ENGINE_ARCHIVE_HASH_WORKER_H_

#include <cstdint>
#include <deque>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/string_view.h"
#include "base/mutex.h"
#include "engine/cas/digest.h"

namespace kiln::archive {

class HashWorker {
 public:
  explicit HashWorker(size_t batch_bytes = 1 << 20,
                      size_t max_pending_bytes = 16 << 20);
  ~HashWorker();
  HashWorker(const HashWorker&) = delete;
  HashWorker& operator=(const HashWorker&) = delete;

  // Starts the next file (the previous one must have ended).
  void Begin();
  void Update(absl::string_view data);
  void End();
  // Waits for every file to be hashed; digests in Begin() order. Call once.
  std::vector<cas::Digest> Finish();

 private:
  // A run of bytes of one file inside a batch.
  struct Segment {
    size_t offset;
    size_t length;
    bool ends;  // last segment of a file
  };
  struct Batch {
    std::string bytes;
    std::vector<Segment> segments;
  };

  void Flush();  // hands the filling batch to the worker
  void Run();

  const size_t batch_bytes_;
  const size_t max_batches_;
  Batch filling_;  // caller-owned
  bool file_open_ = false;
  bool finished_ = false;
  kiln::Mutex mu_;
  std::deque<Batch> ready_ ABSL_GUARDED_BY(mu_);
  std::vector<Batch> spare_ ABSL_GUARDED_BY(mu_);
  bool closing_ ABSL_GUARDED_BY(mu_) = false;  // no more batches come
  bool stop_ ABSL_GUARDED_BY(mu_) = false;     // drop what is pending
  std::vector<cas::Digest> digests_;           // worker-owned until joined
  std::thread thread_;
};

}  // namespace kiln::archive

#endif  // KILN_ENGINE_ARCHIVE_HASH_WORKER_H_
