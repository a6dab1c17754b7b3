// Network namespaces for tasks without `network`, reused from one task to
// the next when the earlier task left nothing behind in its namespace.
//
// Making a network namespace and tearing it down (its loopback device,
// sysctl tables, per-protocol state; the teardown runs on a kernel worker)
// took about a fifth of a cold sandboxed task's CPU here (bench/README.md,
// B2). A task without `network` needs a namespace of its own with `lo` up
// and nothing else in it; it does not need a new one. The pool makes such
// namespaces in the engine's own user namespace (where tasks hold no
// capability, so no task can change `lo`, an address, a route, a filter or
// a sysctl of it), lends each to one task at a time, and takes it back
// when the task's processes are gone. Before lending one again it reads
// the namespace's socket statistics: any socket of any family still open,
// any TCP connection in TIME_WAIT or any IP fragment awaiting reassembly,
// and the namespace is dropped and a new one made instead. What a task can
// see of an earlier task is what it could see of a concurrent one anyway:
// counters (`lo`'s packet counts, /proc/net/snmp).
#ifndef KILN_EXECUTORS_LOCAL_SANDBOX_NETWORK_POOL_H_
#define KILN_EXECUTORS_LOCAL_SANDBOX_NETWORK_POOL_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "base/mutex.h"

namespace kiln {
namespace sandbox {

// Whether the text of a network namespace's /proc/net/sockstat (or
// sockstat6) shows nothing left in it: every "used", "inuse" and "tw"
// count is 0. ("orphan", "alloc" and "mem" count the whole machine, not
// the namespace.) False for text it cannot read as such.
bool SockstatShowsNothingLeft(absl::string_view text);

class NetworkNamespacePool
    : public std::enable_shared_from_this<NetworkNamespacePool> {
 public:
  struct Stats {
    uint64_t made = 0;       // namespaces made
    uint64_t reused = 0;     // leases of a namespace an earlier task had
    uint64_t discarded = 0;  // namespaces dropped: something was left
  };

  // One task's namespace; gives it back to the pool when destroyed (after
  // the task's processes are gone).
  class Lease {
   public:
    ~Lease();
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    int fd() const { return entry_.ns_fd; }

   private:
    friend class NetworkNamespacePool;
    struct Entry {
      int ns_fd = -1;
      int sockstat_fd = -1;
      int sockstat6_fd = -1;  // -1 without IPv6
    };
    Lease(std::shared_ptr<NetworkNamespacePool> pool, Entry entry)
        : pool_(std::move(pool)), entry_(entry) {}
    std::shared_ptr<NetworkNamespacePool> pool_;
    Entry entry_;
  };

  // Keeps at most `max_idle` namespaces between tasks. Makes none until
  // the first Acquire (a run that starts no sandbox pays nothing).
  static std::shared_ptr<NetworkNamespacePool> Create(size_t max_idle);
  ~NetworkNamespacePool();
  NetworkNamespacePool(const NetworkNamespacePool&) = delete;
  NetworkNamespacePool& operator=(const NetworkNamespacePool&) = delete;

  // A namespace with `lo` up and nothing else in it: an idle one that
  // passes the check, else a new one (an error when none can be made, e.g.
  // without CAP_SYS_ADMIN).
  absl::StatusOr<std::unique_ptr<Lease>> Acquire();
  Stats stats() const;

 private:
  using Entry = Lease::Entry;
  explicit NetworkNamespacePool(size_t max_idle) : max_idle_(max_idle) {}
  static absl::StatusOr<Entry> Make();
  static bool IsClean(const Entry& entry);
  static void Close(const Entry& entry);
  void Return(const Entry& entry);

  const size_t max_idle_;
  mutable Mutex mu_;
  // Oldest first: a namespace lent again is the one given back longest
  // ago (sockets are freed a little after their last process exits).
  std::deque<Entry> idle_ ABSL_GUARDED_BY(mu_);
  absl::Status cannot_make_ ABSL_GUARDED_BY(mu_);  // Make() was refused
  Stats stats_ ABSL_GUARDED_BY(mu_);
};

}  // namespace sandbox
}  // namespace kiln

#endif  // KILN_EXECUTORS_LOCAL_SANDBOX_NETWORK_POOL_H_
