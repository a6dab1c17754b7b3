// WatchRun on a run that another process executes: the stream follows
// that process's events through the store, and ends (ABORTED, "owner
// gone") when that process is SIGKILLed instead of waiting forever.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "engine/service/service_test_fixture.h"

namespace kiln::service {
namespace {

TEST_F(ServiceTest, WatchEndsWhenTheRunsOwnerProcessDies) {
  StartUnix();
  // engine_owner_helper owns a run on the same store in a process of its
  // own and prints its id once the task printed "blocking".
  std::string helper = absl::StrCat(std::getenv("TEST_SRCDIR"),
                                    "/kiln/engine/engine_owner_helper");
  std::string store = dir_ + "/store";
  std::vector<char*> argv = {helper.data(), store.data(), nullptr};
  int out[2];
  ASSERT_EQ(pipe(out), 0);
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    dup2(out[1], 1);
    close(out[0]);
    close(out[1]);
    execv(argv[0], argv.data());
    _exit(127);
  }
  close(out[1]);
  struct Reaper {
    pid_t pid;
    ~Reaper() {
      if (pid > 0) {
        kill(pid, SIGKILL);
        waitpid(pid, nullptr, 0);
      }
    }
  } reaper{child};
  std::string id;
  char c;
  while (read(out[0], &c, 1) == 1 && c != '\n') id.push_back(c);
  close(out[0]);
  ASSERT_FALSE(id.empty()) << "the helper failed";

  auto client = UnixClient();
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(60));
  v1::WatchRunRequest request;
  request.set_run_id(id);
  auto reader = client->stub().WatchRun(&context, request);
  v1::RunEvent event;
  bool blocking = false;
  while (!blocking && reader->Read(&event)) {
    blocking = event.has_log() && event.log().text() == "blocking";
  }
  ASSERT_TRUE(blocking) << "the owner's events reach the watcher";

  ASSERT_EQ(kill(child, SIGKILL), 0);
  ASSERT_EQ(waitpid(child, nullptr, 0), child);
  reaper.pid = 0;

  while (reader->Read(&event)) {
    EXPECT_FALSE(event.has_run_state() &&
                 event.run_state().state() != v1::RUN_RUNNING)
        << "nobody finished the run";
  }
  grpc::Status status = reader->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::ABORTED)
      << status.error_message();
  EXPECT_TRUE(absl::StrContains(status.error_message(), "owner gone"))
      << status.error_message();

  // A watch that starts after the owner died ends the same way, after
  // sending what was recorded.
  grpc::ClientContext late_context;
  late_context.set_deadline(std::chrono::system_clock::now() +
                            std::chrono::seconds(60));
  auto late = client->stub().WatchRun(&late_context, request);
  int sent = 0;
  while (late->Read(&event)) ++sent;
  EXPECT_GT(sent, 0);
  EXPECT_EQ(late->Finish().error_code(), grpc::StatusCode::ABORTED);
}

}  // namespace
}  // namespace kiln::service
