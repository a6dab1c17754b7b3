// The agent bundle (//engine/agent:bundle) runs through its own loader
// inside an image that has nothing but busybox (the local sandbox's image
// mode), and fetches an input from the blob endpoint on the host.
#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "engine/cas/artifact_store.h"
#include "engine/service/agent_blob_server.h"
#include "engine/service/testing/fake_engine.h"
#include "executors/local_sandbox/local_sandbox_executor.h"
#include "executors/testing/busybox_image.h"
#include "executors/testing/recording_sink.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace kiln {
namespace {

using ::kiln::conformance::BusyboxImageAccess;
using ::kiln::conformance::RecordingSink;
using ::kiln::conformance::TestReference;

constexpr char kRun[] =
    "/kiln/agent/lib/ld-linux-x86-64.so.2 --library-path /kiln/agent/lib "
    "/kiln/agent/bin/kiln-agent";

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream content;
  content << in.rdbuf();
  return content.str();
}

class BundleImageTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* tmp = getenv("TEST_TMPDIR");
    root_ = absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/bundle-XXXXXX");
    ASSERT_NE(mkdtemp(root_.data()), nullptr);
    for (const char* dir : {"layers", "ws", "work"}) {
      ASSERT_EQ(mkdir(absl::StrCat(root_, "/", dir).c_str(), 0755), 0);
    }
    images_ = std::make_unique<BusyboxImageAccess>(root_ + "/layers");
    auto base = images_->BusyboxLayer("base");
    ASSERT_TRUE(base.ok()) << base.status();
    // The bundle as an image layer at /kiln/agent, as the agent image has it.
    auto layer = images_->NewLayer("agent");
    ASSERT_TRUE(layer.ok()) << layer.status();
    std::string bundle =
        absl::StrCat(getenv("TEST_SRCDIR"), "/", getenv("TEST_WORKSPACE"),
                     "/engine/agent/bundle/kiln");
    std::error_code ec;
    std::filesystem::copy(bundle, *layer + "/kiln",
                          std::filesystem::copy_options::recursive, ec);
    ASSERT_FALSE(ec) << ec.message() << " " << bundle;
    PreparedImage image;
    image.layer_dirs = {*base, *layer};
    reference_ = TestReference("agent");
    images_->Add(reference_, std::move(image));

    LocalSandboxOptions options;
    options.work_root = root_ + "/work";
    options.hidden_paths = DefaultHiddenPaths("");
    options.cgroups = LocalSandboxOptions::Cgroups::kOff;
    options.images = images_.get();
    auto executor = LocalSandboxExecutor::Create(options);
    ASSERT_TRUE(executor.ok()) << executor.status();
    executor_ = std::move(*executor);
  }
  void TearDown() override {
    executor_.reset();
    std::error_code ignored;
    std::filesystem::remove_all(root_, ignored);
  }

  v1::ExecResult Run(const std::string& script,
                     const std::vector<std::string>& env, RecordingSink* sink) {
    v1::ExecRequest request;
    request.set_run_id("run");
    request.set_task("task");
    request.set_attempt(1);
    request.set_image(reference_);
    request.add_argv("/bin/sh");
    request.add_argv("-c");
    request.add_argv(script);
    (*request.mutable_env())["PATH"] = "/bin:/usr/bin";
    for (const std::string& e : env) {
      size_t eq = e.find('=');
      (*request.mutable_env())[e.substr(0, eq)] = e.substr(eq + 1);
    }
    request.set_network(true);  // the blob endpoint is on the host's loopback
    request.set_workspace(root_ + "/ws");
    request.mutable_limits()->mutable_timeout()->set_seconds(60);
    auto execution = executor_->Start(request, sink);
    EXPECT_TRUE(execution.ok()) << execution.status();
    if (!execution.ok()) return v1::ExecResult();
    return (*execution)->Wait();
  }

  std::string root_, reference_;
  std::unique_ptr<BusyboxImageAccess> images_;
  std::unique_ptr<LocalSandboxExecutor> executor_;
};

TEST_F(BundleImageTest, RunsInABusyboxImage) {
  RecordingSink sink;
  // No libc in the image: only the bundle's loader and libraries.
  v1::ExecResult result =
      Run(absl::StrCat("test ! -e /lib/x86_64-linux-gnu/libc.so.6 && ", kRun,
                       " --version"),
          {}, &sink);
  ASSERT_EQ(result.status(), v1::EXITED) << result.message();
  EXPECT_EQ(result.exit_code(), 0)
      << absl::StrJoin(sink.Lines(v1::LogLine::STDERR), "\n");
  auto out = sink.Lines(v1::LogLine::STDOUT);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_TRUE(absl::StartsWith(out[0], "kiln-agent ")) << out[0];
}

TEST_F(BundleImageTest, FetchesFromTheBlobEndpointInsideTheImage) {
  service::testing::FakeEngineOptions engine_options;
  engine_options.store_dir = root_ + "/store";
  auto engine = service::testing::FakeEngine::Create(engine_options);
  ASSERT_TRUE(engine.ok()) << engine.status();
  auto blobs = service::StartAgentBlobServer(engine->get(), {});
  ASSERT_TRUE(blobs.ok()) << blobs.status();
  auto artifacts = cas::ArtifactStore::Open(root_ + "/store");
  ASSERT_TRUE(artifacts.ok());
  ASSERT_EQ(mkdir((root_ + "/input").c_str(), 0755), 0);
  std::ofstream(root_ + "/input/hello.txt") << "hello from the engine\n";
  auto stashed = (*artifacts)->Stash(root_ + "/input");
  ASSERT_TRUE(stashed.ok()) << stashed.status();
  nlohmann::json spec = {{"v", 1},
                         {"inputs",
                          {{{"artifact", "in"},
                            {"tree", stashed->tree.ToString()},
                            {"archive", stashed->archive.ToString()},
                            {"path", "src"}}}},
                         {"outputs", nlohmann::json::array()}};
  RecordingSink sink;
  v1::ExecResult result = Run(
      absl::StrCat("mkdir -p kout ws && ", kRun,
                   " --kiln /kiln --kiln-out kout --workspace ws fetch && "
                   "cat ws/src/hello.txt && test -x kout/agent/bin/kiln-agent"),
      {"KILN_AGENT_SPEC=" + spec.dump(),
       "KILN_AGENT_SERVER=" + (*blobs)->address(),
       "KILN_AGENT_TOKEN=" + (*blobs)->token()},
      &sink);
  ASSERT_EQ(result.status(), v1::EXITED) << result.message();
  EXPECT_EQ(result.exit_code(), 0)
      << absl::StrJoin(sink.Lines(v1::LogLine::STDERR), "\n");
  EXPECT_EQ(sink.Lines(v1::LogLine::STDOUT),
            std::vector<std::string>{"hello from the engine"});
  EXPECT_TRUE(
      absl::StrContains(ReadFile(root_ + "/ws/kout/fetch.json"), "\"EXITED\""));
  (*blobs)->Stop();
  (*engine)->Shutdown(absl::Seconds(1));
}

}  // namespace
}  // namespace kiln
