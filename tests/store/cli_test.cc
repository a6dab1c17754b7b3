// `kiln runs` and `kiln logs` over a real store, through a kiln binary
// built with only these verbs (kiln_store_verbs).
#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "engine/store/log_file.h"
#include "engine/store/run_lease.h"
#include "engine/store/run_store.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace kiln::store {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

struct Output {
  int exit_code;
  std::string out;
};

// Runs the verbs binary with `args` (already shell-quoted where needed),
// capturing stdout; stderr is folded in when `with_stderr`.
Output Kiln(const std::string& args, bool with_stderr = false) {
  std::string binary = absl::StrCat(std::getenv("TEST_SRCDIR"),
                                    "/kiln/tests/store/kiln_store_verbs");
  std::string command = absl::StrCat("'", binary, "' ", args,
                                     with_stderr ? " 2>&1" : " 2>/dev/null");
  FILE* pipe = popen(command.c_str(), "r");
  EXPECT_NE(pipe, nullptr);
  Output result;
  char buffer[4096];
  size_t n;
  while ((n = fread(buffer, 1, sizeof buffer, pipe)) > 0) {
    result.out.append(buffer, n);
  }
  int status = pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

v1::RunEvent TaskEvent(const std::string& name, v1::TaskState state,
                       uint32_t attempt) {
  v1::RunEvent e;
  e.mutable_task_state()->set_task(name);
  e.mutable_task_state()->set_state(state);
  e.mutable_task_state()->set_attempt(attempt);
  return e;
}

v1::RunEvent RunStateEvent(v1::RunState state) {
  v1::RunEvent e;
  e.mutable_run_state()->set_state(state);
  return e;
}

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = absl::StrCat(
        std::getenv("TEST_TMPDIR"), "/cli_store_",
        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    auto store = RunStore::Open(dir_);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
  }

  std::string Create(const std::string& pipeline) {
    v1::Pipeline p;
    p.set_name(pipeline);
    for (const char* t : {"build", "test", "image", "deploy"}) {
      p.add_tasks()->set_name(t);
    }
    auto created = store_->CreateRun(p, v1::Trigger(), ".", "");
    EXPECT_TRUE(created.ok());
    return created->run_id;
  }

  void WriteLog(const std::string& run, const std::string& task,
                uint32_t attempt, std::vector<std::string> lines) {
    auto log = AttemptLogFile::Open(dir_, run, task, attempt);
    ASSERT_TRUE(log.ok()) << log.status();
    for (const auto& line : lines) {
      ASSERT_TRUE((*log)
                      ->AppendLine(LogStream::kStdout, line,
                                   absl::FromUnixSeconds(1700000000))
                      .ok());
    }
    ASSERT_TRUE((*log)->Close().ok());
    ASSERT_TRUE(store_
                    ->RecordAttemptLog(run, task, attempt,
                                       (*log)->relative_path(), (*log)->bytes())
                    .ok());
  }

  std::string dir_;
  std::unique_ptr<RunStore> store_;
};

TEST_F(CliTest, RunsListsATable) {
  std::string first = Create("kcow");
  ASSERT_TRUE(
      store_
          ->AppendEvents(first, {RunStateEvent(v1::RUN_RUNNING),
                                 TaskEvent("build", v1::TASK_SUCCEEDED, 1),
                                 TaskEvent("test", v1::TASK_FAILED, 1),
                                 TaskEvent("image", v1::TASK_SKIPPED, 0),
                                 TaskEvent("deploy", v1::TASK_SKIPPED, 0),
                                 RunStateEvent(v1::RUN_FAILED)})
          .ok());
  std::string second = Create("other");
  ASSERT_TRUE(
      store_
          ->AppendEvents(second, {RunStateEvent(v1::RUN_RUNNING),
                                  TaskEvent("build", v1::TASK_CACHED, 0)})
          .ok());
  // This process owns the running run (as an engine would).
  auto lease = RunLease::Acquire(dir_, second);
  ASSERT_TRUE(lease.ok()) << lease.status();

  Output out = Kiln("runs --store " + dir_);
  ASSERT_EQ(out.exit_code, 0) << out.out;
  std::vector<std::string> lines =
      absl::StrSplit(out.out, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 3u) << out.out;
  EXPECT_THAT(lines[0], HasSubstr("PIPELINE"));
  EXPECT_THAT(lines[1], HasSubstr(second));  // newest first
  EXPECT_THAT(lines[1], HasSubstr("running"));
  EXPECT_THAT(lines[1], HasSubstr("0/0/0/1"));
  EXPECT_THAT(lines[2], HasSubstr(first));
  EXPECT_THAT(lines[2], HasSubstr("failed"));
  EXPECT_THAT(lines[2], HasSubstr("1/1/2/0"));

  out = Kiln("runs --state failed --store " + dir_);
  ASSERT_EQ(out.exit_code, 0);
  EXPECT_THAT(out.out, HasSubstr(first));
  EXPECT_THAT(out.out, Not(HasSubstr(second)));

  out = Kiln("runs --limit 1 --json --store " + dir_);
  ASSERT_EQ(out.exit_code, 0);
  nlohmann::json json = nlohmann::json::parse(out.out);
  ASSERT_EQ(json.size(), 1u);
  EXPECT_EQ(json[0]["id"], second);
  EXPECT_EQ(json[0]["pipeline"], "other");
  EXPECT_EQ(json[0]["state"], "running");
  EXPECT_EQ(json[0]["tasks"]["cached"], 1);
  EXPECT_EQ(json[0]["tasks"]["total"], 4);
  EXPECT_TRUE(json[0]["finished"].is_null());

  EXPECT_EQ(Kiln("runs --state bogus --store " + dir_).exit_code, 2);
  EXPECT_EQ(Kiln("runs --limit 0 --store " + dir_).exit_code, 2);
}

TEST_F(CliTest, RunsShowsARunWithoutALiveOwnerAsInterrupted) {
  // Recorded as running, but no process holds its lease (its owner was
  // killed): not "running" forever.
  std::string id = Create("kcow");
  ASSERT_TRUE(store_->AppendEvents(id, {RunStateEvent(v1::RUN_RUNNING)}).ok());
  Output out = Kiln("runs --store " + dir_);
  ASSERT_EQ(out.exit_code, 0) << out.out;
  EXPECT_THAT(out.out, HasSubstr("interrupted (owner gone)"));
  out = Kiln("runs --json --store " + dir_);
  ASSERT_EQ(out.exit_code, 0);
  nlohmann::json json = nlohmann::json::parse(out.out);
  ASSERT_EQ(json.size(), 1u);
  EXPECT_EQ(json[0]["state"], "interrupted");
  EXPECT_EQ(json[0]["owner_gone"], true);

  // Owned again: running.
  auto lease = RunLease::Acquire(dir_, id);
  ASSERT_TRUE(lease.ok()) << lease.status();
  out = Kiln("runs --store " + dir_);
  ASSERT_EQ(out.exit_code, 0);
  EXPECT_THAT(out.out, HasSubstr("running"));
  EXPECT_THAT(out.out, Not(HasSubstr("interrupted")));
}

TEST_F(CliTest, StoreComesFromTheEnvironment) {
  std::string id = Create("kcow");
  setenv("KILN_STORE", dir_.c_str(), 1);
  Output out = Kiln("runs");
  unsetenv("KILN_STORE");
  ASSERT_EQ(out.exit_code, 0);
  EXPECT_THAT(out.out, HasSubstr(id));
  // A named store that does not exist is an error (a typo must not read as
  // "no runs"), and nothing is created.
  std::string missing = dir_ + "-missing";
  out = Kiln("runs --json --store " + missing);
  EXPECT_EQ(out.exit_code, 1);
  EXPECT_EQ(out.out, "");
  EXPECT_FALSE(std::filesystem::exists(missing));
}

TEST_F(CliTest, LogsPrintsEveryTaskInOrder) {
  std::string id = Create("kcow");
  WriteLog(id, "test", 1, {"testing", "FAIL"});
  WriteLog(id, "build", 1, {"compiling", "linked"});
  WriteLog(id, "test", 2, {"testing again", "PASS"});

  Output out = Kiln(absl::StrCat("logs ", id, " --store ", dir_));
  ASSERT_EQ(out.exit_code, 0) << out.out;
  EXPECT_EQ(out.out,
            "[build] compiling\n[build] linked\n"
            "[test#2] testing again\n[test#2] PASS\n");

  out = Kiln(absl::StrCat("logs ", id, " test --attempt 1 --store ", dir_));
  ASSERT_EQ(out.exit_code, 0);
  EXPECT_EQ(out.out, "testing\nFAIL\n");

  out = Kiln(absl::StrCat("logs ", id, " build --timestamps --store ", dir_));
  ASSERT_EQ(out.exit_code, 0);
  EXPECT_THAT(out.out, HasSubstr("2023-11-14T22:13:20Z compiling\n"));

  EXPECT_EQ(Kiln(absl::StrCat("logs ", id, " nope --store ", dir_)).exit_code,
            1);
  EXPECT_EQ(Kiln(absl::StrCat("logs r-nope --store ", dir_)).exit_code, 1);
  EXPECT_EQ(Kiln(absl::StrCat("logs --store ", dir_)).exit_code, 2);
  // A task without logs, asked for by name.
  EXPECT_EQ(Kiln(absl::StrCat("logs ", id, " image --store ", dir_)).exit_code,
            1);
}

TEST_F(CliTest, LogsReportsAMissingFile) {
  std::string id = Create("kcow");
  WriteLog(id, "build", 1, {"one"});
  std::filesystem::remove(dir_ + "/" + AttemptLogRelativePath(id, "build", 1));
  Output out = Kiln(absl::StrCat("logs ", id, " --store ", dir_), true);
  EXPECT_EQ(out.exit_code, 1);
  EXPECT_THAT(out.out, HasSubstr("cannot read the log of build attempt 1"));
}

}  // namespace
}  // namespace kiln::store
