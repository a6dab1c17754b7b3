// A test-only gRPC server whose GetRun handler is deliberately racy (an
// unsynchronised counter), driven by concurrent clients. Under TSan, with
// kiln's service suppressions linked in, the race in the handler must be
// reported: this proves the suppressions do not hide races in kiln's own
// handler code although every handler thread and call stack passes through
// gRPC (tsan_check_test.sh). With --locked the handler takes a mutex and
// the run must be clean: the suppressions still cover gRPC's own
// uninstrumented synchronisation.
//
// usage: racy_service [--locked]
// Prints "tsan=1" first when built with ThreadSanitizer.
#include <grpcpp/grpcpp.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "base/mutex.h"
#include "engine/service/testing/tsan_build.h"
#include "proto/kiln/v1/service.grpc.pb.h"

namespace {

class RacyService final : public kiln::v1::Kiln::Service {
 public:
  explicit RacyService(bool locked) : locked_(locked) {}

  grpc::Status GetRun(grpc::ServerContext*, const kiln::v1::GetRunRequest*,
                      kiln::v1::Run* response) override {
    int n;
    if (locked_) {
      kiln::MutexLock lock(&mu_);
      n = ++calls_;
    } else {
      n = RacyIncrement();
    }
    response->set_id(std::to_string(n));
    return grpc::Status::OK;
  }

  int calls() {
    kiln::MutexLock lock(&mu_);
    return calls_;
  }

 private:
  // The planted race: a read-modify-write of calls_ with no lock, from
  // gRPC's handler threads.
  __attribute__((noinline)) int RacyIncrement() { return ++calls_; }

  const bool locked_;
  kiln::Mutex mu_;
  int calls_ = 0;
};

}  // namespace

int main(int argc, char** argv) {
  kiln::testing::PrintTsanBuild();
  bool locked = argc > 1 && std::strcmp(argv[1], "--locked") == 0;

  // In the directory the caller names (tsan_check_test.sh removes it: TSan
  // ends this process at the planted race, before the cleanup below), or a
  // new one. A unix socket path holds at most 107 bytes: TEST_TMPDIR is too
  // deep for it.
  const char* given = getenv("KILN_RACE_DIR");
  std::string dir_template =
      given != nullptr ? std::string(given) : "/tmp/kiln-race.XXXXXX";
  char* dir = dir_template.data();
  if (given == nullptr && mkdtemp(dir) == nullptr) {
    std::perror("mkdtemp");
    return 2;
  }
  std::string socket = std::string(dir) + "/s";
  std::string address = "unix:" + socket;

  RacyService service(locked);
  grpc::ServerBuilder builder;
  builder.AddListeningPort(address, grpc::InsecureServerCredentials());
  builder.RegisterService(&service);
  // At least two handler threads, so calls can overlap.
  builder.SetSyncServerOption(
      grpc::ServerBuilder::SyncServerOption::MIN_POLLERS, 2);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr) {
    std::fprintf(stderr, "cannot listen on %s\n", address.c_str());
    if (given == nullptr) rmdir(dir);
    return 2;
  }

  constexpr int kClients = 4;
  constexpr int kCalls = 100;
  std::vector<std::thread> clients;
  int failures = 0;
  kiln::Mutex failures_mu;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&] {
      auto stub = kiln::v1::Kiln::NewStub(
          grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
      for (int i = 0; i < kCalls; ++i) {
        grpc::ClientContext ctx;
        ctx.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::seconds(30));
        kiln::v1::GetRunRequest req;
        kiln::v1::Run run;
        if (!stub->GetRun(&ctx, req, &run).ok()) {
          kiln::MutexLock lock(&failures_mu);
          ++failures;
        }
      }
    });
  }
  for (std::thread& t : clients) t.join();
  server->Shutdown();
  server->Wait();
  unlink(socket.c_str());
  if (given == nullptr) rmdir(dir);
  std::printf("calls=%d failures=%d\n", service.calls(), failures);
  return failures == 0 ? 0 : 1;
}
