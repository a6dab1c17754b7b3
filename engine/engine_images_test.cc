// Image-mode runs from the engine's side: run.image is pinned to a digest
// before the key (a moved tag is a new key, never a stale hit), the
// executor gets the pinned reference and the engine's image store, an
// image that cannot be pinned fails the task clearly, and validation asks
// the executor each task runs on.
#include <stdlib.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "base/mutex.h"
#include "engine/cas/file_io.h"
#include "engine/engine.h"
#include "engine/image/testing/memory_registry.h"
#include "engine/pipeline/loader.h"
#include "executors/fake/fake_executor.h"
#include "gtest/gtest.h"

namespace kiln {
namespace {

using image::testing::MemoryRegistry;
using image::testing::TarBuilder;

class DoneExecution : public Execution {
 public:
  explicit DoneExecution(v1::ExecResult result) : result_(std::move(result)) {}
  v1::ExecResult Wait() override { return result_; }
  void Cancel() override {}

 private:
  v1::ExecResult result_;
};

// Runs nothing: prepares the request's image through the engine's
// ImageAccess and records what it got.
class ImageExecutor : public Executor {
 public:
  std::string Name() const override { return "imagey"; }
  std::string Platform() const override { return "imagey/v1"; }
  ExecutorCapabilities Capabilities() const override {
    ExecutorCapabilities c;
    c.images = true;
    return c;
  }
  absl::StatusOr<std::unique_ptr<Execution>> Start(
      const v1::ExecRequest& request, OutputSink* sink) override {
    return StartStaged(request, sink, HostWorkspaceOptions());
  }
  absl::StatusOr<std::unique_ptr<Execution>> StartStaged(
      const v1::ExecRequest& request, OutputSink*,
      const HostWorkspaceOptions& host) override {
    v1::ExecResult result;
    result.set_status(v1::EXITED);
    if (!request.image().empty()) {
      if (host.images == nullptr) {
        result.set_status(v1::SETUP_FAILED);
        result.set_message("no ImageAccess given");
      } else {
        absl::StatusOr<PreparedImage> prepared =
            host.images->Prepare(request.image());
        if (!prepared.ok()) {
          result.set_status(v1::SETUP_FAILED);
          result.set_message(std::string(prepared.status().message()));
        } else {
          MutexLock lock(&mu_);
          prepared_.push_back(*prepared);
        }
      }
    }
    MutexLock lock(&mu_);
    images_.push_back(request.image());
    return std::make_unique<DoneExecution>(result);
  }

  std::vector<std::string> images() const {
    MutexLock lock(&mu_);
    return images_;
  }
  std::vector<PreparedImage> prepared() const {
    MutexLock lock(&mu_);
    return prepared_;
  }

 private:
  mutable Mutex mu_;
  std::vector<std::string> images_ ABSL_GUARDED_BY(mu_);
  std::vector<PreparedImage> prepared_ ABSL_GUARDED_BY(mu_);
};

class EngineImagesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = absl::StrCat(getenv("TEST_TMPDIR"), "/ei-", cas::RandomSuffix());
    ASSERT_TRUE(cas::MakeDirs(root_ + "/src").ok());
    registry_ = std::make_shared<MemoryRegistry>();
    layer_ =
        registry_->AddLayer(TarBuilder().File("bin/tool", "v1", 0755).Finish());
    oci::ImageConfig config;
    config.env = {"PATH=/bin"};
    v1_ = registry_->AddImage("reg.test/tools", {layer_}, config, "stable");
    executor_ = std::make_shared<ImageExecutor>();
    fake_ = std::make_shared<FakeExecutor>();
    fake_->SetDefault([](const v1::ExecRequest&) { return FakeScript(); });
  }
  void TearDown() override {
    engine_.reset();
    ASSERT_TRUE(cas::RemoveTree(root_).ok());
  }

  void MakeEngine(bool with_registry = true) {
    EngineOptions options;
    options.store_dir = root_ + "/store";
    options.executors = {executor_, fake_};
    options.default_executor = "imagey";
    options.retry_backoff = absl::Milliseconds(1);
    if (with_registry) options.image_sources = registry_;
    auto engine = Engine::Create(options);
    ASSERT_TRUE(engine.ok()) << engine.status();
    engine_ = std::move(*engine);
  }

  absl::StatusOr<v1::Run> Run(const std::string& yaml) {
    pipeline::LoadedPipeline loaded =
        pipeline::LoadPipelineText(yaml, "pipeline.yaml");
    if (!loaded.ok()) {
      return absl::InvalidArgumentError(loaded.errors[0].ToString());
    }
    RunRequest req;
    req.pipeline = std::move(loaded.pipeline);
    req.source_dir = root_ + "/src";
    auto run = engine_->Submit(std::move(req));
    if (!run.ok()) return run.status();
    return (*run)->Wait();
  }

  static v1::TaskStatus Task(const v1::Run& run, const std::string& n) {
    for (const auto& t : run.tasks()) {
      if (t.name() == n) return t;
    }
    return v1::TaskStatus();
  }

  std::string root_;
  std::shared_ptr<MemoryRegistry> registry_;
  image::testing::BuiltLayer layer_;
  std::string v1_;
  std::shared_ptr<ImageExecutor> executor_;
  std::shared_ptr<FakeExecutor> fake_;
  std::unique_ptr<Engine> engine_;
};

constexpr char kImageTask[] = R"(
name: images
tasks:
  - name: build
    run: {image: "reg.test/tools:stable", command: [tool]}
)";

TEST_F(EngineImagesTest, TheTagIsPinnedBeforeTheKeyAndAMovedTagIsANewKey) {
  MakeEngine();
  absl::StatusOr<v1::Run> first = Run(kImageTask);
  ASSERT_TRUE(first.ok()) << first.status();
  v1::TaskStatus built = Task(*first, "build");
  ASSERT_EQ(built.state(), v1::TASK_SUCCEEDED) << built.reason();
  ASSERT_EQ(executor_->images(),
            std::vector<std::string>{"reg.test/tools@" + v1_});
  // The executor prepared it through the engine's image store.
  ASSERT_EQ(executor_->prepared().size(), 1u);
  EXPECT_EQ(executor_->prepared()[0].env,
            std::vector<std::string>{"PATH=/bin"});
  ASSERT_EQ(executor_->prepared()[0].layer_dirs.size(), 1u);
  EXPECT_TRUE(absl::StartsWith(executor_->prepared()[0].layer_dirs[0],
                               engine_->store_dir() + "/images/layers/"));

  // Same tag, same digest: a cache hit.
  absl::StatusOr<v1::Run> second = Run(kImageTask);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(Task(*second, "build").state(), v1::TASK_CACHED)
      << Task(*second, "build").reason();
  EXPECT_EQ(Task(*second, "build").cache_key(), built.cache_key());

  // The tag moves: the task runs again, on the new digest, under a new key.
  auto v2_layer =
      registry_->AddLayer(TarBuilder().File("bin/tool", "v2", 0755).Finish());
  std::string v2 = registry_->AddImage("reg.test/tools", {v2_layer},
                                       oci::ImageConfig(), "stable");
  absl::StatusOr<v1::Run> third = Run(kImageTask);
  ASSERT_TRUE(third.ok()) << third.status();
  v1::TaskStatus rebuilt = Task(*third, "build");
  EXPECT_EQ(rebuilt.state(), v1::TASK_SUCCEEDED) << rebuilt.reason();
  EXPECT_NE(rebuilt.cache_key(), built.cache_key());
  ASSERT_EQ(executor_->images().size(), 2u);
  EXPECT_EQ(executor_->images()[1], "reg.test/tools@" + v2);
}

TEST_F(EngineImagesTest, AnImageThatCannotBePinnedFailsTheTaskClearly) {
  MakeEngine();
  absl::StatusOr<v1::Run> run = Run(R"(
name: images
tasks:
  - name: build
    run: {image: "reg.test/tools:gone", command: [tool]}
)");
  ASSERT_TRUE(run.ok()) << run.status();
  v1::TaskStatus t = Task(*run, "build");
  EXPECT_EQ(t.state(), v1::TASK_FAILED);
  EXPECT_NE(t.reason().find("image 'reg.test/tools:gone'"), std::string::npos)
      << t.reason();
  EXPECT_TRUE(executor_->images().empty());  // nothing ran, not on the host
}

TEST_F(EngineImagesTest, WithoutRegistryAccessATagFailsSayingSo) {
  MakeEngine(/*with_registry=*/false);
  absl::StatusOr<v1::Run> run = Run(kImageTask);
  ASSERT_TRUE(run.ok()) << run.status();
  v1::TaskStatus t = Task(*run, "build");
  EXPECT_EQ(t.state(), v1::TASK_FAILED);
  EXPECT_NE(t.reason().find("no registry access"), std::string::npos)
      << t.reason();
  EXPECT_TRUE(executor_->images().empty());
}

TEST_F(EngineImagesTest, APinnedImageThatCannotBePulledFailsTheTask) {
  MakeEngine(/*with_registry=*/false);
  // By digest it is pinned already, but the store does not have it.
  absl::StatusOr<v1::Run> run = Run(absl::StrCat(R"(
name: images
tasks:
  - name: build
    run: {image: "reg.test/tools@)",
                                                 v1_, R"(", command: [tool]}
)"));
  ASSERT_TRUE(run.ok()) << run.status();
  v1::TaskStatus t = Task(*run, "build");
  EXPECT_EQ(t.state(), v1::TASK_FAILED);
  EXPECT_NE(t.reason().find("no registry access"), std::string::npos)
      << t.reason();
  EXPECT_TRUE(executor_->prepared().empty());
}

TEST_F(EngineImagesTest, HostImageRunsOnTheHostAndValidationAsksTheExecutor) {
  MakeEngine();
  absl::StatusOr<v1::Run> run = Run(R"(
name: images
tasks:
  - name: host
    run: {image: host, command: [tool]}
)");
  ASSERT_TRUE(run.ok()) << run.status();
  EXPECT_EQ(Task(*run, "host").state(), v1::TASK_SUCCEEDED);
  EXPECT_EQ(executor_->images(), std::vector<std::string>{""});
  // An image on the executor that runs none is refused before anything
  // runs; the same task on the image executor is accepted.
  absl::StatusOr<v1::Run> refused = Run(R"(
name: images
tasks:
  - name: build
    executor: fake
    run: {image: "reg.test/tools:stable", command: [tool]}
)");
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("cannot run here"),
            std::string::npos)
      << refused.status();
  EXPECT_TRUE(fake_->requests().empty());
}

}  // namespace
}  // namespace kiln
