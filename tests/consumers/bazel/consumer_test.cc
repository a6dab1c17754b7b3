// A consumer's own test (bazel_consumer_test.sh runs it with `bazel test`
// in the consumer workspace): a cc_test links @kiln//:kiln dynamically
// (cc_test's default) and runs a pipeline in the local sandbox inside the
// consumer's Bazel test sandbox. Fails unless the run and both tasks
// succeed and the second task saw the first one's artifact.
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <set>
#include <string>

#include "api/kiln.h"

int main() {
  const char* tmp = std::getenv("TEST_TMPDIR");
  if (tmp == nullptr || tmp[0] != '/') {
    std::fprintf(stderr, "FAIL: no TEST_TMPDIR\n");
    return 1;
  }
  const std::string store = std::string(tmp) + "/store";

  kiln::PipelineBuilder p("consumer-test");
  p.Run("count", {"/bin/sh", "-c", "seq 3 > n.txt"})
      .Output("numbers", {"n.txt"});
  // Fails (and with it the run) unless the artifact arrived intact.
  p.Run("sum", {"/bin/sh", "-c", "test \"$(paste -sd+ n.txt)\" = 1+2+3"})
      .Needs("count")
      .Input("numbers");
  auto pipeline = p.Build();
  if (!pipeline.ok()) {
    std::fprintf(stderr, "FAIL: %s\n", pipeline.status().ToString().c_str());
    return 1;
  }
  kiln::LocalSandboxOptions sandbox;
  sandbox.hidden_paths = kiln::DefaultHiddenPaths(store);
  auto executor = kiln::LocalSandboxExecutor::Create(sandbox);
  if (!executor.ok()) {
    std::fprintf(stderr, "FAIL: sandbox: %s\n",
                 executor.status().ToString().c_str());
    return 1;
  }
  kiln::EngineOptions options;
  options.store_dir = store;
  options.executor = std::move(*executor);
  auto engine = kiln::Engine::Create(std::move(options));
  if (!engine.ok()) {
    std::fprintf(stderr, "FAIL: engine: %s\n",
                 engine.status().ToString().c_str());
    return 1;
  }
  kiln::RunRequest request;
  request.pipeline = *std::move(pipeline);
  auto run = (*engine)->Submit(std::move(request));
  if (!run.ok()) {
    std::fprintf(stderr, "FAIL: submit: %s\n", run.status().ToString().c_str());
    return 1;
  }
  // Events arrive on an engine thread; the last one is the run's final
  // state, which may come after Wait() returns.
  std::mutex mu;
  std::condition_variable cv;
  std::set<std::string> succeeded;
  bool final_seen = false;
  int subscription = (*run)->Subscribe(0, [&](const kiln::v1::RunEvent& e) {
    std::lock_guard<std::mutex> lock(mu);
    if (e.has_task_state() &&
        e.task_state().state() == kiln::v1::TASK_SUCCEEDED) {
      succeeded.insert(e.task_state().task());
    }
    if (e.has_run_state() && e.run_state().state() != kiln::v1::RUN_QUEUED &&
        e.run_state().state() != kiln::v1::RUN_RUNNING) {
      final_seen = true;
      cv.notify_all();
    }
  });
  kiln::v1::Run result = (*run)->Wait();
  std::unique_lock<std::mutex> lock(mu);
  if (!cv.wait_for(lock, std::chrono::seconds(30),
                   [&] { return final_seen; })) {
    std::fprintf(stderr, "FAIL: no final run event (run %s)\n",
                 kiln::v1::RunState_Name(result.state()).c_str());
    return 1;
  }
  lock.unlock();
  (*run)->Unsubscribe(subscription);
  if (result.state() != kiln::v1::RUN_SUCCEEDED ||
      succeeded != std::set<std::string>{"count", "sum"}) {
    std::fprintf(stderr, "FAIL: run %s, %zu of 2 tasks succeeded\n",
                 kiln::v1::RunState_Name(result.state()).c_str(),
                 succeeded.size());
    return 1;
  }
  std::printf("ok: consumer_test\n");
  return 0;
}
