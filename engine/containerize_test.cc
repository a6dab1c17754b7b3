// The containerize kind end to end: pipelines with containerize tasks run
// through the engine, produce OCI layout artifacts and `digest`/`image`
// outputs, are memoized, and give the same digest on two stores.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "base/testing/files.h"
#include "engine/cas/artifact_store.h"
#include "engine/cas/beneath.h"
#include "engine/cas/digest.h"
#include "engine/engine.h"
#include "engine/engine_test_fixture.h"
#include "engine/oci/layout.h"
#include "engine/pipeline/loader.h"
#include "executors/fake/fake_executor.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

std::string TempDir(const std::string& name) {
  return test_files::TempDir("containerize_", name);
}

using test_files::ReadFile;
using test_files::WriteFile;

constexpr char kPipeline[] = R"(name: images
params:
  - {name: SOURCE_DATE_EPOCH, default: "1700000000"}
tasks:
  - name: build
    run: {command: [make, build]}
    inputs: [source]
    outputs: [{artifact: app, paths: [out/app]}]
  - name: image
    needs: [build]
    containerize:
      base: scratch
      layers:
        - {artifact: app, to: /app, mode: "0755", uid: 1000, gid: 1000}
      entrypoint: [/app/out/app]
      env: {MODE: prod}
      labels: {org.opencontainers.image.revision: "${trigger.revision}"}
      expose: ["8080"]
  - name: child
    needs: [image]
    containerize:
      base: oci-layout:image
      layers:
        - {artifact: source, to: /src}
      cmd: [--serve]
      compression: zstd
  - name: use
    needs: [image, child]
    run: {command: [make, test, "${tasks.image.outputs.digest}", "${tasks.child.outputs.image}"]}
)";

class ContainerizeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = TempDir(
        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    source_ = root_ + "/src";
    WriteFile(source_ + "/main.c", "int main() { return 0; }\n");
    executor_ = std::make_shared<FakeExecutor>();
    executor_->On("make", [](const v1::ExecRequest& req) {
      FakeScript s;
      if (req.argv(1) == "build") {
        s.Do([](const v1::ExecRequest& r) {
          WriteFile(r.workspace() + "/out/app",
                    "binary of " + ReadFile(r.workspace() + "/main.c"));
        });
      }
      for (int i = 2; i < req.argv_size(); ++i) s.Stdout(req.argv(i));
      return s;
    });
  }

  std::unique_ptr<Engine> NewEngine(const std::string& store) {
    return engine_testing::MakeEngine(store, executor_);
  }

  v1::Pipeline Load(const std::string& yaml) {
    pipeline::LoadedPipeline p =
        pipeline::LoadPipelineText(yaml, "images.yaml");
    EXPECT_TRUE(p.ok()) << (p.errors.empty() ? "" : p.errors[0].ToString());
    return p.pipeline;
  }

  v1::Run Run(Engine* engine, const v1::Pipeline& p,
              const std::string& revision = "abc") {
    RunRequest req;
    req.pipeline = p;
    req.source_dir = source_;
    req.trigger.set_revision(revision);
    auto run = engine->Submit(std::move(req));
    EXPECT_TRUE(run.ok()) << run.status();
    if (!run.ok()) return {};
    return (*run)->Wait();
  }

  static const v1::TaskStatus& Task(const v1::Run& run, const std::string& n) {
    for (const auto& t : run.tasks()) {
      if (t.name() == n) return t;
    }
    static v1::TaskStatus none;
    return none;
  }

  // Unstashes the layout artifact `tree` of `store` and opens it.
  std::unique_ptr<oci::LayoutSource> OpenLayout(const std::string& store,
                                                const std::string& tree,
                                                const std::string& name) {
    auto artifacts = cas::ArtifactStore::Open(store);
    EXPECT_TRUE(artifacts.ok());
    std::string dir = root_ + "/" + name;
    EXPECT_TRUE(
        (*artifacts)->Unstash(cas::Digest::Parse(tree).value(), dir).ok());
    cas::UniqueFd fd(open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    auto source = oci::LayoutSource::Open(fd.get(), name);
    EXPECT_TRUE(source.ok()) << source.status();
    return source.ok() ? std::move(*source) : nullptr;
  }

  std::string root_, source_;
  std::shared_ptr<FakeExecutor> executor_;
};

TEST_F(ContainerizeTest, BuildsLayeredImagesMemoizedAndReproducible) {
  v1::Pipeline p = Load(kPipeline);
  std::unique_ptr<Engine> engine = NewEngine(root_ + "/store1");
  ASSERT_NE(engine, nullptr);
  v1::Run run = Run(engine.get(), p);
  ASSERT_EQ(run.state(), v1::RUN_SUCCEEDED) << run.reason();
  const v1::TaskStatus& image = Task(run, "image");
  ASSERT_EQ(image.state(), v1::TASK_SUCCEEDED) << image.reason();
  const std::string digest = image.results().at("digest");
  EXPECT_TRUE(absl::StartsWith(digest, "sha256:")) << digest;
  EXPECT_EQ(image.results().at("image"),
            absl::StrCat("oci-layout:image@", digest));
  const v1::TaskStatus& child = Task(run, "child");
  ASSERT_EQ(child.state(), v1::TASK_SUCCEEDED) << child.reason();
  const std::string child_digest = child.results().at("digest");

  // The outputs reached the consumer's argv.
  auto requests = executor_->requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[1].argv(2), digest);
  EXPECT_EQ(requests[1].argv(3),
            absl::StrCat("oci-layout:child@", child_digest));

  // The artifact is an OCI layout whose image is `digest`.
  auto layout = OpenLayout(root_ + "/store1", image.outputs().at("image"),
                           "image-layout");
  ASSERT_NE(layout, nullptr);
  auto manifest = layout->GetManifest("latest");
  ASSERT_TRUE(manifest.ok()) << manifest.status();
  EXPECT_EQ(manifest->digest, digest);
  auto parsed = oci::ParseManifest(manifest->bytes);
  ASSERT_TRUE(parsed.ok());
  ASSERT_EQ(parsed->layers.size(), 1u);
  auto config = layout->ReadBlob(parsed->config, oci::kMaxConfigBytes);
  ASSERT_TRUE(config.ok());
  auto cfg = oci::ParseImageConfig(*config);
  ASSERT_TRUE(cfg.ok());
  EXPECT_EQ(cfg->created, "2023-11-14T22:13:20Z");  // SOURCE_DATE_EPOCH
  EXPECT_EQ(cfg->labels.at("org.opencontainers.image.revision"), "abc");
  EXPECT_THAT(cfg->env, ::testing::ElementsAre("MODE=prod"));
  EXPECT_THAT(cfg->exposed_ports, ::testing::ElementsAre("8080/tcp"));

  // The child starts from the image: its layer first, then a zstd layer.
  auto child_layout = OpenLayout(root_ + "/store1", child.outputs().at("child"),
                                 "child-layout");
  ASSERT_NE(child_layout, nullptr);
  auto resolved = oci::ResolveImage(*child_layout, "latest",
                                    oci::Platform{"linux", "amd64", ""});
  ASSERT_TRUE(resolved.ok()) << resolved.status();
  ASSERT_EQ(resolved->parsed.layers.size(), 2u);
  EXPECT_EQ(resolved->parsed.layers[0].digest, parsed->layers[0].digest);
  EXPECT_EQ(resolved->parsed.layers[1].media_type, oci::kOciLayerZstd);
  EXPECT_EQ(
      resolved->parsed.annotations.at("org.opencontainers.image.base.digest"),
      digest);

  // Unchanged: both images come from the cache.
  v1::Run again = Run(engine.get(), p);
  ASSERT_EQ(again.state(), v1::RUN_SUCCEEDED) << again.reason();
  EXPECT_EQ(Task(again, "image").state(), v1::TASK_CACHED);
  EXPECT_EQ(Task(again, "child").state(), v1::TASK_CACHED);
  EXPECT_EQ(Task(again, "image").results().at("digest"), digest);

  // Another store, another umask, newer source mtimes: the same digests.
  struct timespec now[2] = {{0, UTIME_NOW}, {0, UTIME_NOW}};
  utimensat(AT_FDCWD, (source_ + "/main.c").c_str(), now, 0);
  mode_t old = umask(077);
  std::unique_ptr<Engine> other = NewEngine(root_ + "/store2");
  v1::Run second = Run(other.get(), p);
  umask(old);
  ASSERT_EQ(second.state(), v1::RUN_SUCCEEDED) << second.reason();
  EXPECT_EQ(Task(second, "image").state(), v1::TASK_SUCCEEDED);
  EXPECT_EQ(Task(second, "image").results().at("digest"), digest);
  EXPECT_EQ(Task(second, "child").results().at("digest"), child_digest);
  EXPECT_EQ(Task(second, "image").outputs().at("image"),
            image.outputs().at("image"));
}

TEST_F(ContainerizeTest, KeyFollowsLayerContentsAndTheEpoch) {
  v1::Pipeline p = Load(kPipeline);
  std::unique_ptr<Engine> engine = NewEngine(root_ + "/store");
  ASSERT_NE(engine, nullptr);
  v1::Run first = Run(engine.get(), p);
  ASSERT_EQ(first.state(), v1::RUN_SUCCEEDED) << first.reason();
  // A source change reaches the child's layer (source) and the image's
  // (through build): both rebuilt, with new digests.
  WriteFile(source_ + "/main.c", "int main() { return 1; }\n");
  v1::Run changed = Run(engine.get(), p);
  ASSERT_EQ(changed.state(), v1::RUN_SUCCEEDED) << changed.reason();
  EXPECT_EQ(Task(changed, "image").state(), v1::TASK_SUCCEEDED);
  EXPECT_NE(Task(changed, "image").results().at("digest"),
            Task(first, "image").results().at("digest"));
  EXPECT_EQ(Task(changed, "child").state(), v1::TASK_SUCCEEDED);
  // Another SOURCE_DATE_EPOCH: another image.
  v1::Pipeline later = p;
  later.mutable_params(0)->set_default_("1700000001");
  v1::Run epoch = Run(engine.get(), later);
  ASSERT_EQ(epoch.state(), v1::RUN_SUCCEEDED) << epoch.reason();
  EXPECT_EQ(Task(epoch, "image").state(), v1::TASK_SUCCEEDED);
  EXPECT_NE(Task(epoch, "image").results().at("digest"),
            Task(changed, "image").results().at("digest"));
}

TEST_F(ContainerizeTest, RegistryBaseWithoutRegistryAccessFailsClearly) {
  v1::Pipeline p = Load(R"(name: reg
tasks:
  - name: image
    containerize:
      base: registry.test/library/debian:12
      layers: [{artifact: source, to: /src}]
)");
  std::unique_ptr<Engine> engine = NewEngine(root_ + "/store");
  ASSERT_NE(engine, nullptr);
  v1::Run run = Run(engine.get(), p);
  EXPECT_EQ(run.state(), v1::RUN_FAILED);
  const v1::TaskStatus& image = Task(run, "image");
  EXPECT_EQ(image.state(), v1::TASK_FAILED);
  EXPECT_THAT(image.reason(), HasSubstr("no registry access is configured"));
  EXPECT_THAT(image.reason(), HasSubstr("registry.test/library/debian:12"));
}

// Pushing needs the registry client (kiln run/serve configure one; this
// engine has none): the task fails saying so, never a silent success. The
// push itself is tested against a real registry in tests/images.
TEST_F(ContainerizeTest, PushWithoutARegistryClientFailsTheTask) {
  const std::string yaml = R"(name: push
tasks:
  - name: image
    containerize:
      base: scratch
      layers: [{artifact: source, to: /src}]
      push: registry.test/app
)";
  v1::Pipeline p = Load(yaml);
  std::unique_ptr<Engine> engine = NewEngine(root_ + "/store");
  ASSERT_NE(engine, nullptr);
  v1::Run run = Run(engine.get(), p);
  EXPECT_EQ(run.state(), v1::RUN_FAILED);
  EXPECT_EQ(Task(run, "image").state(), v1::TASK_FAILED);
  EXPECT_THAT(Task(run, "image").reason(),
              HasSubstr("no registry client is configured"));
}

TEST_F(ContainerizeTest, BadFieldsAreRefusedAtValidation) {
  pipeline::LoadedPipeline p = pipeline::LoadPipelineText(
      R"(name: bad
tasks:
  - name: image
    containerize:
      base: "oci-layout:"
      layers: [{artifact: source, to: /a/../b, mode: "4755"}]
      expose: ["80/icmp"]
      compression: brotli
      source_date_epoch: yesterday
)",
      "bad.yaml");
  ASSERT_FALSE(p.ok());
  std::string all;
  for (const auto& d : p.errors) all += d.ToString() + "\n";
  EXPECT_THAT(all, HasSubstr("oci-layout:ARTIFACT"));
  EXPECT_THAT(all, HasSubstr("'.' or '..'"));
  EXPECT_THAT(all, HasSubstr("setuid"));
  EXPECT_THAT(all, HasSubstr("80/icmp"));
  EXPECT_THAT(all, HasSubstr("brotli"));
  EXPECT_THAT(all, HasSubstr("yesterday"));
}

}  // namespace
}  // namespace kiln
