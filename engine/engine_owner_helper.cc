// Test helper for engine_test and owner_gone_test: owns a run in a process
// of its own. Usage:
//   engine_owner_helper STORE_DIR [--die-at-attempt-start]
// Submits pipeline "owned" (task "block", which prints "blocking" and then
// blocks) on a fake executor, prints the run id on stdout once "blocking"
// is recorded, and then blocks until it is killed. With
// --die-at-attempt-start it SIGKILLs itself as soon as attempt 1 of
// "block" is reserved in the run store, before the attempt does anything.
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include <cstdio>
#include <memory>

#include "absl/synchronization/notification.h"
#include "engine/engine.h"
#include "engine/store/run_store.h"
#include "executors/fake/fake_executor.h"

int main(int argc, char** argv) {
  if (argc == 3 && strcmp(argv[2], "--die-at-attempt-start") == 0) {
    kiln::store::SetAttemptReservedHookForTesting(
        [](absl::string_view, absl::string_view task, uint32_t) {
          if (task == "block") raise(SIGKILL);
        });
  } else if (argc != 2) {
    std::fprintf(stderr,
                 "usage: engine_owner_helper STORE_DIR "
                 "[--die-at-attempt-start]\n");
    return 2;
  }
  auto executor = std::make_shared<kiln::FakeExecutor>();
  executor->On("block", [](const kiln::v1::ExecRequest&) {
    kiln::FakeScript s;
    s.Stdout("blocking").Delay(absl::Hours(1));
    return s;
  });
  kiln::EngineOptions options;
  options.store_dir = argv[1];
  options.executor = executor;
  auto engine = kiln::Engine::Create(options);
  if (!engine.ok()) {
    std::fprintf(stderr, "%s\n", engine.status().ToString().c_str());
    return 1;
  }
  kiln::RunRequest request;
  request.pipeline.set_name("owned");
  kiln::v1::Task* task = request.pipeline.add_tasks();
  task->set_name("block");
  task->mutable_run()->add_command("block");
  auto run = (*engine)->Submit(request);
  if (!run.ok()) {
    std::fprintf(stderr, "%s\n", run.status().ToString().c_str());
    return 1;
  }
  absl::Notification blocking;
  (*run)->Subscribe(0, [&](const kiln::v1::RunEvent& e) {
    if (e.has_log() && e.log().text() == "blocking" &&
        !blocking.HasBeenNotified()) {
      blocking.Notify();
    }
  });
  blocking.WaitForNotification();
  std::printf("%s\n", (*run)->id().c_str());
  std::fflush(stdout);
  while (true) pause();
}
