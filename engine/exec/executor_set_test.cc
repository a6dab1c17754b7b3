#include "engine/exec/executor_set.h"

#include <memory>

#include "absl/strings/match.h"
#include "executors/fake/fake_executor.h"
#include "gtest/gtest.h"

namespace kiln {
namespace {

// A fake under another name and platform.
class NamedFake : public FakeExecutor {
 public:
  explicit NamedFake(std::string name) : name_(std::move(name)) {}
  std::string Name() const override { return name_; }
  std::string Platform() const override { return name_ + "/v1"; }

 private:
  std::string name_;
};

TEST(ExecutorSetTest, TaskThenPipelineThenEngineDefault) {
  auto a = std::make_shared<NamedFake>("a");
  auto b = std::make_shared<NamedFake>("b");
  auto c = std::make_shared<NamedFake>("c");
  ExecutorSet set({a, b, c}, "a");
  ASSERT_TRUE(set.Validate().ok()) << set.Validate();
  v1::Task plain, pinned;
  pinned.set_executor("c");
  EXPECT_EQ(set.For(plain), a.get());
  EXPECT_EQ(set.For(pinned), c.get());
  v1::Pipeline p;
  p.mutable_options()->set_executor("b");
  ExecutorSet run = set.ForPipeline(p);
  EXPECT_EQ(run.For(plain), b.get());
  EXPECT_EQ(run.For(pinned), c.get());
  EXPECT_EQ(set.For(plain), a.get()) << "the engine's set is unchanged";
  EXPECT_FALSE(set.ImagesSupported(plain));
}

TEST(ExecutorSetTest, AnUnknownNameNeverFallsBackToAnotherExecutor) {
  auto a = std::make_shared<NamedFake>("a");
  ExecutorSet set({a}, "");
  EXPECT_EQ(set.Default(), a.get());
  v1::Task task;
  task.set_executor("gone");
  Executor* e = set.For(task);
  ASSERT_NE(e, nullptr);
  EXPECT_NE(e, a.get());
  v1::ExecRequest request;
  request.add_argv("x");
  auto started = e->Start(request, nullptr);
  EXPECT_TRUE(absl::IsInvalidArgument(started.status()));
  EXPECT_TRUE(absl::StrContains(started.status().message(), "(known: a)"));
  // Nor does an unknown pipeline default (a resumed run's pipeline).
  v1::Pipeline p;
  p.mutable_options()->set_executor("gone");
  ExecutorSet run = set.ForPipeline(p);
  EXPECT_FALSE(run.empty());
  EXPECT_EQ(run.Default(), nullptr);
  v1::Task plain;
  ASSERT_NE(run.For(plain), nullptr);
  EXPECT_NE(run.For(plain), a.get());
}

TEST(ExecutorSetTest, CheckNamesEveryUnknownExecutor) {
  ExecutorSet set(
      {std::make_shared<NamedFake>("a"), std::make_shared<NamedFake>("b")},
      "a");
  v1::Pipeline p;
  p.mutable_options()->set_executor("x");
  p.add_tasks()->set_name("fine");
  v1::Task* bad = p.add_tasks();
  bad->set_name("t");
  bad->set_executor("y");
  v1::Task* fin = p.add_finally();
  fin->set_name("f");
  fin->set_executor("b");
  auto diags = set.Check(p);
  ASSERT_EQ(diags.size(), 2u);
  EXPECT_TRUE(absl::StrContains(diags[0].ToString(),
                                "options.executor: unknown executor 'x' "
                                "(known: a, b)"))
      << diags[0].ToString();
  EXPECT_TRUE(absl::StrContains(diags[1].ToString(),
                                "tasks[1].executor: task 't': unknown "
                                "executor 'y'"))
      << diags[1].ToString();
}

TEST(ExecutorSetTest, ValidateRefusesEmptyDuplicateAndUnknownDefault) {
  EXPECT_FALSE(ExecutorSet({}, "").Validate().ok());
  EXPECT_FALSE(ExecutorSet({std::make_shared<NamedFake>("a"),
                            std::make_shared<NamedFake>("a")},
                           "a")
                   .Validate()
                   .ok());
  absl::Status unknown =
      ExecutorSet({std::make_shared<NamedFake>("a")}, "z").Validate();
  EXPECT_TRUE(absl::StrContains(unknown.message(), "(known: a)")) << unknown;
}

}  // namespace
}  // namespace kiln
