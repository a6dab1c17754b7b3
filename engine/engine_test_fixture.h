// The fixture of the engine tests (engine_test.cc, engine_lifecycle_test.cc):
// an engine over a fresh store with a FakeExecutor that plays "make"
// (build writes out/app from src/main.c; test, forms, hang and fail), and
// helpers to run a pipeline and read its tasks. MakeEngine serves every
// engine test that opens an engine over a store with one executor.
#ifndef KILN_ENGINE_ENGINE_TEST_FIXTURE_H_
#define KILN_ENGINE_ENGINE_TEST_FIXTURE_H_

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_replace.h"
#include "base/testing/files.h"
#include "engine/engine.h"
#include "executors/fake/fake_executor.h"
#include "gtest/gtest.h"

namespace kiln::engine_testing {

inline std::string TempDir(const std::string& name) {
  return test_files::TempDir("engine_test_", name);
}

using test_files::ReadFile;
using test_files::WriteFile;

// An engine over `store_dir` running tasks on `executor`, with whatever
// else `configure` sets on its options. nullptr (and a test failure naming
// the status) when Engine::Create refuses.
inline std::unique_ptr<Engine> MakeEngine(
    const std::string& store_dir, std::shared_ptr<Executor> executor,
    const std::function<void(EngineOptions&)>& configure = nullptr) {
  EngineOptions options;
  options.store_dir = store_dir;
  options.executor = std::move(executor);
  if (configure) configure(options);
  auto engine = Engine::Create(options);
  if (!engine.ok()) {
    ADD_FAILURE() << "Engine::Create: " << engine.status();
    return nullptr;
  }
  return *std::move(engine);
}

// build: "make build" writes out/app from src/main.c; test: "make test".
inline v1::Pipeline BuildTestPipeline() {
  v1::Pipeline p;
  p.set_name("demo");
  auto* param = p.add_params();
  param->set_name("greeting");
  param->set_default_("hi");
  v1::Task* build = p.add_tasks();
  build->set_name("build");
  build->mutable_run()->add_command("make");
  build->mutable_run()->add_command("build");
  build->add_inputs()->set_artifact("source");
  auto* out = build->add_outputs();
  out->set_artifact("app");
  out->add_paths("out/app");
  v1::Task* test = p.add_tasks();
  test->set_name("test");
  test->add_needs("build");
  test->mutable_run()->add_command("make");
  test->mutable_run()->add_command("test");
  test->mutable_run()->add_command("${params.greeting}");
  test->add_inputs()->set_artifact("app");
  return p;
}

class EngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = TempDir("store_" + Name());
    source_ = TempDir("src_" + Name());
    WriteFile(source_ + "/src/main.c", "int main() { return 0; }\n");
    executor_ = std::make_shared<FakeExecutor>();
    executor_->On("make", [](const v1::ExecRequest& req) {
      FakeScript s;
      std::string target = req.argv(1);
      s.Stdout("make " + target);
      if (target == "build") {
        s.Do([](const v1::ExecRequest& r) {
          std::string src = ReadFile(r.workspace() + "/src/main.c");
          WriteFile(r.workspace() + "/out/app", "binary of " + src);
        });
      }
      if (target == "test" && req.argv_size() > 2) s.Stdout(req.argv(2));
      if (target == "test" && req.env().count("TOKEN")) {
        s.Stdout(req.env().at("TOKEN"));
      }
      if (target == "forms" && req.env().count("TOKEN")) {
        // The secret as a task might print it: mid-line, encoded, escaped.
        const std::string& v = req.env().at("TOKEN");
        s.Stdout("before " + v + " after");
        s.Stdout("b64=" + absl::Base64Escape(v) + ";");
        s.Stdout("url=" + absl::WebSafeBase64Escape(v) + ";");
        s.Stdout("{\"token\": \"" +
                 absl::StrReplaceAll(
                     v, {{"\\", "\\\\"}, {"\"", "\\\""}, {"\n", "\\n"}}) +
                 "\"}");
      }
      if (target == "hang") s.Delay(absl::Seconds(60));
      if (target == "fail") s.Exit(2);
      return s;
    });
    engine_ = MakeEngine(store_, executor_, [](EngineOptions& options) {
      options.retry_backoff = absl::Milliseconds(1);
    });
    ASSERT_NE(engine_, nullptr);
  }

  std::string Name() {
    return ::testing::UnitTest::GetInstance()->current_test_info()->name();
  }

  v1::Run Run(v1::Pipeline p, v1::Trigger trigger = {},
              std::vector<v1::RunEvent>* events = nullptr) {
    RunRequest req;
    req.pipeline = std::move(p);
    req.source_dir = source_;
    req.trigger = std::move(trigger);
    auto run = engine_->Submit(std::move(req));
    EXPECT_TRUE(run.ok()) << run.status();
    if (!run.ok()) return {};
    v1::Run result = (*run)->Wait();
    if (events != nullptr) {
      (*run)->Subscribe(
          0, [events](const v1::RunEvent& e) { events->push_back(e); });
    }
    return result;
  }

  static const v1::TaskStatus& Task(const v1::Run& run, const std::string& n) {
    for (const auto& t : run.tasks()) {
      if (t.name() == n) return t;
    }
    static v1::TaskStatus none;
    return none;
  }

  size_t Executed() { return executor_->requests().size(); }

  std::string store_, source_;
  std::shared_ptr<FakeExecutor> executor_;
  std::unique_ptr<Engine> engine_;
};

}  // namespace kiln::engine_testing

#endif  // KILN_ENGINE_ENGINE_TEST_FIXTURE_H_
