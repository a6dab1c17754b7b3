// StreamLimiter: caps the long-lived streams (WatchRun, StreamLogs, blob
// transfers) one client may hold open at once, so one client cannot take
// every server thread. A client is its token's name on TCP, or its peer.
//
// Thread-safety: thread-safe. A Slot must not outlive its limiter.
#ifndef KILN_ENGINE_SERVICE_STREAM_LIMITER_H_
#define KILN_ENGINE_SERVICE_STREAM_LIMITER_H_

#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "engine/base/mutex.h"

namespace kiln::service {

class StreamLimiter {
 public:
  // Releases its stream when destroyed. Movable.
  class Slot {
   public:
    Slot(Slot&& other) noexcept;
    Slot& operator=(Slot&&) = delete;
    Slot(const Slot&) = delete;
    ~Slot();

   private:
    friend class StreamLimiter;
    Slot(StreamLimiter* owner, std::string client)
        : owner_(owner), client_(std::move(client)) {}
    StreamLimiter* owner_;
    std::string client_;
  };

  explicit StreamLimiter(int max_per_client)
      : max_per_client_(max_per_client) {}

  // ResourceExhausted if `client` already holds max_per_client streams.
  absl::StatusOr<Slot> Acquire(const std::string& client);
  int Active(const std::string& client);

 private:
  void Release(const std::string& client);

  const int max_per_client_;
  Mutex mu_;
  absl::flat_hash_map<std::string, int> active_ ABSL_GUARDED_BY(mu_);
};

}  // namespace kiln::service

#endif  // KILN_ENGINE_SERVICE_STREAM_LIMITER_H_
