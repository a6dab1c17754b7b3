#include "engine/service/connection_gate.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>

#include <cstddef>
#include <cstdio>

#include "grpc/support/sync.h"
#include "grpcpp/support/channel_arguments.h"
#include "grpcpp/version_info.h"

// The socket mutator ABI of gRPC 1.51 (src/core/lib/iomgr/socket_mutator.h,
// not installed): a struct whose first member is its vtable, then a
// refcount; the vtable's fourth entry, when set, is called for every
// socket with its use (listener, accepted connection, client). Checked
// against the disassembly of grpc_socket_mutator_mutate_fd in libgrpc 1.51.
static_assert(GRPC_CPP_VERSION_MAJOR == 1 && GRPC_CPP_VERSION_MINOR == 51,
              "connection_gate.cc mirrors gRPC 1.51's internal socket "
              "mutator layout: check it against this gRPC version's "
              "src/core/lib/iomgr/socket_mutator.h, then widen this check");

namespace {

enum KilnFdUsage : int {
  kClientConnection = 0,
  kServerListener = 1,
  kServerConnection = 2,
};
struct KilnMutateSocketInfo {
  int fd;
  KilnFdUsage usage;
};
struct KilnSocketMutatorVtable {
  bool (*mutate_fd)(int fd, grpc_socket_mutator* mutator);
  int (*compare)(grpc_socket_mutator* a, grpc_socket_mutator* b);
  void (*destroy)(grpc_socket_mutator* mutator);
  bool (*mutate_fd_2)(const KilnMutateSocketInfo* info,
                      grpc_socket_mutator* mutator);
};

}  // namespace

struct grpc_socket_mutator {
  const KilnSocketMutatorVtable* vtable;
  gpr_refcount refcount;
};

namespace kiln::service {
namespace {

int64_t MonotonicSeconds() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec;
}

// The mutator gRPC holds: the base struct first, so that gRPC's pointer is
// ours.
struct GateMutator {
  grpc_socket_mutator base;
  std::shared_ptr<ConnectionGate> gate;
};
static_assert(offsetof(GateMutator, base) == 0, "base first");

GateMutator* Of(grpc_socket_mutator* m) {
  return reinterpret_cast<GateMutator*>(m);
}

bool MutateFd(int, grpc_socket_mutator*) { return true; }

int Compare(grpc_socket_mutator* a, grpc_socket_mutator* b) {
  return a < b ? -1 : (a > b ? 1 : 0);
}

void Destroy(grpc_socket_mutator* m) { delete Of(m); }

bool MutateFd2(const KilnMutateSocketInfo* info, grpc_socket_mutator* m) {
  if (info->usage == kServerConnection && !Of(m)->gate->Admit(info->fd)) {
    // Never `false`: gRPC would stop accepting on the listener.
    shutdown(info->fd, SHUT_RDWR);
  }
  return true;
}

const KilnSocketMutatorVtable kVtable = {MutateFd, Compare, Destroy, MutateFd2};

class GateOption : public grpc::ServerBuilderOption {
 public:
  explicit GateOption(std::shared_ptr<ConnectionGate> gate)
      : gate_(std::move(gate)) {}
  void UpdateArguments(grpc::ChannelArguments* args) override {
    auto* m = new GateMutator{{&kVtable, {}}, gate_};
    gpr_ref_init(&m->base.refcount, 1);
    args->SetSocketMutator(&m->base);  // takes our reference
  }
  void UpdatePlugins(
      std::vector<std::unique_ptr<grpc::ServerBuilderPlugin>>*) override {}

 private:
  const std::shared_ptr<ConnectionGate> gate_;
};

}  // namespace

std::unique_ptr<grpc::ServerBuilderOption> ConnectionGate::Option() {
  return std::make_unique<GateOption>(shared_from_this());
}

bool ConnectionGate::Admit(int fd) {
  struct stat st;
  if (fstat(fd, &st) != 0) return false;
  MutexLock lock(&mu_);
  PruneLocked();
  if (static_cast<int>(admitted_.size()) >= max_connections_) {
    ++refused_;
    int64_t now = MonotonicSeconds();
    if (now - last_warning_ >= 60) {
      last_warning_ = now;
      std::fprintf(stderr,
                   "kiln serve: %d connections open (--max-connections); "
                   "refusing new ones\n",
                   max_connections_);
    }
    return false;
  }
  admitted_.push_back({fd, st.st_dev, st.st_ino});
  return true;
}

int ConnectionGate::open_connections() {
  MutexLock lock(&mu_);
  PruneLocked();
  return static_cast<int>(admitted_.size());
}

void ConnectionGate::PruneLocked() {
  size_t kept = 0;
  for (const Admitted& a : admitted_) {
    struct stat st;
    // Still the same socket at that descriptor: gRPC holds the connection.
    if (fstat(a.fd, &st) == 0 && S_ISSOCK(st.st_mode) && st.st_dev == a.dev &&
        st.st_ino == a.ino) {
      admitted_[kept++] = a;
    }
  }
  admitted_.resize(kept);
}

}  // namespace kiln::service
