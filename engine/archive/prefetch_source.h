// PrefetchSource: pulls another ByteSource on a background thread, a few
// chunks ahead, so that (say) decompression overlaps with extraction on a
// second core. Chunks are copied into owned buffers. The inner source is
// only touched by the background thread. Not thread-safe for its caller.
#ifndef KILN_ENGINE_ARCHIVE_PREFETCH_SOURCE_H_
#define KILN_ENGINE_ARCHIVE_PREFETCH_SOURCE_H_

#include <deque>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "base/mutex.h"
#include "engine/archive/byte_source.h"

namespace kiln::archive {

class PrefetchSource : public ByteSource {
 public:
  // Takes ownership of `inner`; keeps at most `depth` chunks ready.
  PrefetchSource(std::unique_ptr<ByteSource> inner, size_t depth = 4);
  // Stops the background thread (it finishes the chunk in progress).
  ~PrefetchSource() override;
  absl::StatusOr<absl::string_view> Next() override;

 private:
  void Run();

  std::unique_ptr<ByteSource> inner_;
  const size_t depth_;
  kiln::Mutex mu_;
  std::deque<std::string> ready_ ABSL_GUARDED_BY(mu_);
  std::deque<std::string> free_ ABSL_GUARDED_BY(mu_);  // reusable buffers
  absl::Status final_status_ ABSL_GUARDED_BY(mu_);
  bool finished_ ABSL_GUARDED_BY(mu_) = false;  // inner hit end or error
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::string current_;  // the chunk last returned by Next()
  std::thread thread_;
};

}  // namespace kiln::archive

#endif  // KILN_ENGINE_ARCHIVE_PREFETCH_SOURCE_H_
