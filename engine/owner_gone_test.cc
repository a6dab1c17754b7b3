// A run owned by another process: waiting on it ends when that process
// dies, and an attempt number taken before a SIGKILL is never reused.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/engine.h"
#include "engine/engine_test_fixture.h"
#include "engine/store/run_store.h"
#include "executors/fake/fake_executor.h"
#include "gtest/gtest.h"

namespace kiln {
namespace {

class OwnerGoneTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = absl::StrCat(
        std::getenv("TEST_TMPDIR"), "/store_",
        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    executor_ = std::make_shared<FakeExecutor>();
    executor_->On("block", [](const v1::ExecRequest&) {
      FakeScript s;
      s.Stdout("quick");
      return s;
    });
    engine_ = engine_testing::MakeEngine(store_, executor_);
    ASSERT_NE(engine_, nullptr);
  }
  void TearDown() override {
    if (child_ > 0) {
      kill(child_, SIGKILL);
      waitpid(child_, nullptr, 0);
    }
    if (engine_) engine_->Shutdown(absl::Seconds(5));
  }

  // Starts engine_owner_helper on store_ (with `extra` arguments); returns
  // a pipe carrying its stdout.
  int StartHelper(const std::vector<std::string>& extra) {
    std::string helper = absl::StrCat(std::getenv("TEST_SRCDIR"),
                                      "/kiln/engine/engine_owner_helper");
    std::vector<std::string> args = {helper, store_};
    args.insert(args.end(), extra.begin(), extra.end());
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    int out[2];
    if (pipe(out) != 0) return -1;
    child_ = fork();
    if (child_ == 0) {
      dup2(out[1], 1);
      close(out[0]);
      close(out[1]);
      execv(argv[0], argv.data());
      _exit(127);
    }
    close(out[1]);
    return out[0];
  }

  static const v1::TaskStatus& Task(const v1::Run& run,
                                    const std::string& name) {
    for (const auto& t : run.tasks()) {
      if (t.name() == name) return t;
    }
    static const v1::TaskStatus none;
    return none;
  }

  std::string store_;
  std::shared_ptr<FakeExecutor> executor_;
  std::unique_ptr<Engine> engine_;
  pid_t child_ = -1;
};

// Before: RecordedRun::Wait polled until the run was final, which a run
// whose owner died never becomes (until resumed): it waited forever.
TEST_F(OwnerGoneTest, WaitEndsWhenTheOwningProcessIsKilled) {
  int out = StartHelper({});
  ASSERT_GE(out, 0);
  std::string id;
  char c;
  while (read(out, &c, 1) == 1 && c != '\n') id.push_back(c);
  close(out);
  ASSERT_FALSE(id.empty()) << "the helper failed";

  auto handle = engine_->Find(id);
  ASSERT_TRUE(handle.ok()) << handle.status();
  v1::Run run;
  EXPECT_FALSE((*handle)->WaitFor(absl::Milliseconds(300), &run))
      << "the owner is alive: the run is still going";

  ASSERT_EQ(kill(child_, SIGKILL), 0);
  ASSERT_EQ(waitpid(child_, nullptr, 0), child_);
  child_ = -1;

  ASSERT_TRUE((*handle)->WaitFor(absl::Seconds(30), &run))
      << "waiting did not notice that the owner is gone";
  EXPECT_EQ(run.state(), v1::RUN_RUNNING);
  EXPECT_TRUE(run.owner_gone());
  v1::Run waited = (*handle)->Wait();  // returns at once now
  EXPECT_TRUE(waited.owner_gone());
  EXPECT_EQ(waited.id(), id);
}

// The owner is killed right after attempt 1 is reserved, before the
// attempt's TASK_RUNNING event is recorded, its log opened or its
// executor started. The resumed run must start attempt 2, with a log of
// its own. Before: the number lived only in the (batched) event, so a
// kill in this window let the resume run attempt 1 again.
TEST_F(OwnerGoneTest, AttemptNumberTakenBeforeAKillIsNotReused) {
  int out = StartHelper({"--die-at-attempt-start"});
  ASSERT_GE(out, 0);
  int status = 0;
  ASSERT_EQ(waitpid(child_, &status, 0), child_);
  child_ = -1;
  close(out);
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
      << "the helper did not die at the attempt's start (status " << status
      << ")";

  auto ids = engine_->store().runs().UnfinishedRuns();
  ASSERT_TRUE(ids.ok()) << ids.status();
  ASSERT_EQ(ids->size(), 1u);
  const std::string id = (*ids)[0];
  auto orphan = engine_->GetRun(id);
  ASSERT_TRUE(orphan.ok()) << orphan.status();
  EXPECT_TRUE(orphan->owner_gone());
  EXPECT_EQ(Task(*orphan, "block").attempts(), 1u) << "attempt 1 is durable";

  auto resumed = engine_->Resume(id);
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  v1::Run result = (*resumed)->Wait();
  EXPECT_EQ(result.state(), v1::RUN_SUCCEEDED) << result.reason();
  EXPECT_EQ(Task(result, "block").attempts(), 2u);
  ASSERT_EQ(executor_->requests().size(), 1u);
  EXPECT_EQ(executor_->requests()[0].attempt(), 2u);
  auto logs = engine_->store().runs().AttemptLogs(id, "block");
  ASSERT_TRUE(logs.ok()) << logs.status();
  ASSERT_EQ(logs->size(), 1u);
  EXPECT_EQ((*logs)[0].attempt, 2u);
}

}  // namespace
}  // namespace kiln
