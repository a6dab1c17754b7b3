// `kiln serve` restarted (SIGKILL, then SIGTERM) while a watcher is
// connected: the watcher reconnects and resumes from its last sequence, with
// no event lost or repeated, and an unfinished run resumes after the crash.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "base/mutex.h"
#include "engine/service/client.h"
#include "gtest/gtest.h"

namespace kiln::service {
namespace {

constexpr char kPipeline[] =
    "name: slow\n"
    "tasks:\n"
    "  - name: a\n"
    "    run: {command: [/bin/sh, -c, 'echo a; sleep 0.4']}\n"
    "  - name: b\n"
    "    needs: [a]\n"
    "    run: {command: [/bin/sh, -c, 'echo b; sleep 0.4']}\n"
    "  - name: c\n"
    "    needs: [b]\n"
    "    run: {command: [/bin/sh, -c, 'echo c; sleep 0.4']}\n"
    "  - name: d\n"
    "    needs: [c]\n"
    "    run: {command: [/bin/sh, -c, 'echo d; sleep 0.4']}\n";

class RestartTest : public ::testing::Test {
 protected:
  void SetUp() override {
    kiln_ = absl::StrCat(std::getenv("TEST_SRCDIR"), "/",
                         std::getenv("TEST_WORKSPACE"), "/kiln");
    static int counter = 0;
    dir_ = absl::StrCat(std::getenv("TEST_TMPDIR"), "/r", counter++);
    ASSERT_EQ(mkdir(dir_.c_str(), 0700), 0);
    // Socket paths are limited to 107 bytes: bind relative to dir_.
    ASSERT_EQ(chdir(dir_.c_str()), 0);
  }
  void TearDown() override {
    if (pid_ > 0) Stop(SIGTERM);
  }

  void Start() {
    std::string out = absl::StrCat(dir_, "/serve.out.", starts_++);
    pid_ = fork();
    ASSERT_GE(pid_, 0);
    if (pid_ == 0) {
      int fd = open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      dup2(fd, 1);
      execl(kiln_.c_str(), kiln_.c_str(), "serve", "--store",
            (dir_ + "/store").c_str(), "--listen", "unix:kiln.sock", "--grace",
            "5s", static_cast<char*>(nullptr));
      _exit(127);
    }
    for (int i = 0; i < 300; ++i) {
      std::ifstream in(out);
      std::stringstream text;
      text << in.rdbuf();
      if (text.str().find("serving on") != std::string::npos) return;
      absl::SleepFor(absl::Milliseconds(50));
    }
    FAIL() << "kiln serve did not start";
  }

  int Stop(int sig) {
    kill(pid_, sig);
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
    return status;
  }

  KilnClient Client() {
    ClientOptions options;
    options.server = "unix:kiln.sock";
    return KilnClient(options);
  }

  std::string Submit(KilnClient& client) {
    v1::SubmitRunRequest request;
    request.set_yaml(kPipeline);
    v1::SubmitRunResponse response;
    auto context = client.NewContext(absl::Seconds(30));
    grpc::Status status =
        client.stub().SubmitRun(context.get(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response.run_id();
  }

  // Restarts the server (stopped by `sig`) while a watcher is connected;
  // returns what the watcher saw.
  void RestartUnderWatcher(int sig, std::vector<v1::RunEvent>* seen,
                           v1::RunState* final_state) {
    Start();
    KilnClient client = Client();
    std::string run_id = Submit(client);
    ASSERT_FALSE(run_id.empty());
    Mutex mu;
    std::atomic<bool> done{false};
    absl::StatusOr<v1::RunState> state;
    std::thread watcher([&] {
      KilnClient watch_client = Client();
      state = watch_client.Watch(
          run_id, 0,
          [&](const v1::RunEvent& e) {
            MutexLock lock(&mu);
            seen->push_back(e);
          },
          absl::Seconds(60));
      done = true;
    });
    // Wait until the run is under way (task a running), then stop.
    bool under_way;
    {
      MutexLock lock(&mu);
      under_way = mu.AwaitWithDeadline([&] { return seen->size() >= 3; },
                                       absl::Now() + absl::Seconds(60));
    }
    if (!under_way) {
      Stop(SIGKILL);
      Start();
      watcher.join();
      FAIL() << "the run never got under way";
    }
    Stop(sig);  // returns once the server has exited
    EXPECT_FALSE(done) << "the watcher must outlive the server";
    Start();
    watcher.join();
    ASSERT_TRUE(state.ok()) << state.status();
    *final_state = *state;
    // The watcher ended with the run's final, terminal state: it did not
    // give up when the server went away.
    {
      v1::GetRunRequest get;
      get.set_run_id(run_id);
      v1::Run run;
      KilnClient reader = Client();
      auto context = reader.NewContext(absl::Seconds(30));
      grpc::Status status = reader.stub().GetRun(context.get(), get, &run);
      ASSERT_TRUE(status.ok()) << status.error_message();
      EXPECT_EQ(run.state(), *final_state);
      EXPECT_TRUE(*final_state == v1::RUN_SUCCEEDED ||
                  *final_state == v1::RUN_FAILED ||
                  *final_state == v1::RUN_CANCELLED)
          << v1::RunState_Name(*final_state);
    }

    // What the watcher saw is exactly the recorded stream.
    std::vector<v1::RunEvent> recorded;
    KilnClient again = Client();
    ASSERT_TRUE(
        again
            .Watch(run_id, 0,
                   [&](const v1::RunEvent& e) { recorded.push_back(e); })
            .ok());
    ASSERT_EQ(seen->size(), recorded.size());
    for (size_t i = 0; i < seen->size(); ++i) {
      EXPECT_EQ((*seen)[i].sequence(), i + 1);
      EXPECT_EQ((*seen)[i].SerializeAsString(),
                recorded[i].SerializeAsString());
    }
  }

  std::string kiln_;
  std::string dir_;
  pid_t pid_ = -1;
  int starts_ = 0;
};

TEST_F(RestartTest, CrashedServerResumesRunAndWatcher) {
  std::vector<v1::RunEvent> seen;
  v1::RunState final_state;
  RestartUnderWatcher(SIGKILL, &seen, &final_state);
  // The run was unfinished when the server died; the restarted server
  // resumed it to success.
  EXPECT_EQ(final_state, v1::RUN_SUCCEEDED);
}

TEST_F(RestartTest, GracefulRestartKeepsWatcherWhole) {
  std::vector<v1::RunEvent> seen;
  v1::RunState final_state = v1::RUN_STATE_UNSPECIFIED;
  RestartUnderWatcher(SIGTERM, &seen, &final_state);
  // Whatever the engine does with live runs at shutdown (finish, cancel or
  // leave them to resume), the watcher ends with the run's final state
  // (RestartUnderWatcher checks it is terminal and recorded), and that
  // final event is in what it saw.
  ASSERT_FALSE(seen.empty());
  EXPECT_TRUE(final_state == v1::RUN_SUCCEEDED ||
              final_state == v1::RUN_CANCELLED)
      << v1::RunState_Name(final_state);
}

}  // namespace
}  // namespace kiln::service
