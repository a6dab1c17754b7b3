// StreamLimiter: caps the long-lived streams (WatchRun, StreamLogs, blob
// transfers) open at once — per client, in total, and with a share of the
// total that only admins may take — so that no client, nor all non-admin
// clients together, can take every server thread: the sync gRPC server holds
// one thread per open stream, and an admin can always act. A client is its
// token's name on TCP, or its peer.
//
// Thread-safety: thread-safe. A Slot must not outlive its limiter.
#ifndef KILN_ENGINE_SERVICE_STREAM_LIMITER_H_
#define KILN_ENGINE_SERVICE_STREAM_LIMITER_H_

#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "base/mutex.h"

namespace kiln::service {

struct StreamLimits {
  int per_client = 256;
  // All streams of all clients.
  int total = 512;
  // Of `total`, this many are kept for admins: non-admins together hold at
  // most total - admin_reserve.
  int admin_reserve = 64;
};

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

  explicit StreamLimiter(StreamLimits limits) : limits_(limits) {}

  // ResourceExhausted if `client` already holds per_client streams, or the
  // server its total (for a non-admin: total - admin_reserve).
  absl::StatusOr<Slot> Acquire(const std::string& client, bool admin);
  int Active(const std::string& client);
  int Total();

 private:
  void Release(const std::string& client);

  const StreamLimits limits_;
  Mutex mu_;
  absl::flat_hash_map<std::string, int> active_ ABSL_GUARDED_BY(mu_);
  int total_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace kiln::service

#endif  // KILN_ENGINE_SERVICE_STREAM_LIMITER_H_
