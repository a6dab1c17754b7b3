// What the RunStore tests share: a fresh directory per test, pipelines and
// events built in one line, and a fixture holding an open store.
#ifndef KILN_ENGINE_STORE_RUN_STORE_TEST_UTIL_H_
#define KILN_ENGINE_STORE_RUN_STORE_TEST_UTIL_H_

#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/store/run_store.h"
#include "gtest/gtest.h"

namespace kiln::store {

inline std::string FreshDir() {
  const char* tmp = std::getenv("TEST_TMPDIR");
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string dir = absl::StrCat(tmp ? tmp : "/tmp", "/run_store_test/",
                                 info->test_suite_name(), ".", info->name());
  std::filesystem::remove_all(dir);
  return dir;
}

inline v1::Pipeline MakePipeline(const std::string& name,
                                 std::vector<std::string> tasks,
                                 std::vector<std::string> finally = {}) {
  v1::Pipeline p;
  p.set_name(name);
  for (const auto& t : tasks) p.add_tasks()->set_name(t);
  for (const auto& t : finally) p.add_finally()->set_name(t);
  return p;
}

inline v1::RunEvent RunState(v1::RunState state,
                             const std::string& reason = "") {
  v1::RunEvent e;
  e.mutable_run_state()->set_state(state);
  e.mutable_run_state()->set_reason(reason);
  return e;
}

inline v1::RunEvent TaskState(const std::string& task, v1::TaskState state,
                              uint32_t attempt, int exit_code = 0,
                              const std::string& reason = "") {
  v1::RunEvent e;
  auto* t = e.mutable_task_state();
  t->set_task(task);
  t->set_state(state);
  t->set_attempt(attempt);
  t->set_exit_code(exit_code);
  t->set_reason(reason);
  return e;
}

inline v1::RunEvent Log(const std::string& task, const std::string& text) {
  v1::RunEvent e;
  e.mutable_log()->set_task(task);
  e.mutable_log()->set_text(text);
  return e;
}

class RunStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = FreshDir();
    auto store = RunStore::Open(dir_);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
  }

  std::string NewRun(const std::string& pipeline = "demo",
                     const std::string& key = "") {
    auto created = store_->CreateRun(MakePipeline(pipeline, {"a", "b"}, {"z"}),
                                     v1::Trigger(), "src", key);
    EXPECT_TRUE(created.ok()) << created.status();
    return created.ok() ? created->run_id : "";
  }

  std::string dir_;
  std::unique_ptr<RunStore> store_;
};

}  // namespace kiln::store

#endif  // KILN_ENGINE_STORE_RUN_STORE_TEST_UTIL_H_
