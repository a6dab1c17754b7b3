// A test-only cpp-httplib server whose chunked content provider is
// deliberately racy (an unsynchronised counter), driven by concurrent
// clients. Under TSan, with kiln's suppressions linked in (they name
// Debian's uninstrumented cpp-httplib), the race in the provider must be
// reported: the suppressions may hide what the library does on its own,
// never kiln code the library runs (tsan_check_test.sh). With --locked the
// provider takes a mutex and the run must be clean.
//
// usage: racy_http [--locked]
// Prints "tsan=1" first when built with ThreadSanitizer.
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "base/mutex.h"
#include "engine/service/testing/tsan_build.h"
#include "httplib.h"

namespace {

int calls = 0;
kiln::Mutex calls_mu;

// The planted race: a read-modify-write of `calls` with no lock, from the
// library's server threads.
__attribute__((noinline)) int RacyChunkCount() { return ++calls; }

}  // namespace

int main(int argc, char** argv) {
  kiln::testing::PrintTsanBuild();
  const bool locked = argc > 1 && std::strcmp(argv[1], "--locked") == 0;

  httplib::Server server;
  server.new_task_queue = [] { return new httplib::ThreadPool(4); };
  server.Get("/count",
             [locked](const httplib::Request&, httplib::Response& res) {
               res.set_chunked_content_provider(
                   "text/plain", [locked](size_t, httplib::DataSink& sink) {
                     // Long enough that the connections' providers
                     // overlap: otherwise each ends before the pool hands
                     // out the next task, and the pool's lock orders the
                     // increments.
                     std::this_thread::sleep_for(std::chrono::milliseconds(2));
                     int n;
                     if (locked) {
                       kiln::MutexLock lock(&calls_mu);
                       n = ++calls;
                     } else {
                       n = RacyChunkCount();
                     }
                     std::string line = std::to_string(n) + "\n";
                     sink.write(line.data(), line.size());
                     sink.done();
                     return true;
                   });
             });
  const int port = server.bind_to_any_port("127.0.0.1");
  if (port <= 0) {
    std::fprintf(stderr, "cannot listen on 127.0.0.1\n");
    return 2;
  }
  std::thread listener([&server] { server.listen_after_bind(); });
  while (!server.is_running()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }

  constexpr int kClients = 4;
  constexpr int kCalls = 50;
  int failures = 0;
  kiln::Mutex failures_mu;
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&] {
      httplib::Client client("127.0.0.1", port);
      client.set_read_timeout(10, 0);
      client.set_keep_alive(true);  // one connection, one server task
      for (int i = 0; i < kCalls; ++i) {
        httplib::Result r = client.Get("/count");
        if (!r || r->status != 200) {
          kiln::MutexLock lock(&failures_mu);
          ++failures;
        }
      }
    });
  }
  for (std::thread& t : clients) t.join();
  server.stop();
  listener.join();
  kiln::MutexLock lock(&calls_mu);
  std::printf("calls=%d failures=%d\n", calls, failures);
  return failures == 0 ? 0 : 1;
}
