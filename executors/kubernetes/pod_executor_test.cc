// The pod executor against the API server double, with a scripted kubelet
// standing in for the node: each test scripts what the pod's containers do
// (statuses, log lines, termination messages as kiln's agent writes them),
// so the executor's side is checked exactly: creation and adoption, the
// watch, live logs across dropped streams, result mapping, outputs through
// ArchiveAccess, cancel, infrastructure failures, re-attach.
#include "executors/kubernetes/pod_executor.h"

#include <atomic>
#include <map>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "base/mutex.h"
#include "executors/kubernetes/pod_manifest.h"
#include "executors/kubernetes/pod_names.h"
#include "executors/testing/recording_sink.h"
#include "gtest/gtest.h"
#include "kube/client.h"
#include "kube/testing/fake_api_server.h"

namespace kiln {
namespace {

using json = nlohmann::json;
using kube::testing::FakeApiServer;

constexpr char kNs[] = "ci";
constexpr char kAgent[] = "registry.test/kiln-agent@sha256:aaaa";
constexpr char kImage[] = "registry.test/busybox@sha256:bbbb";

// Archives are "archive-of-<tree>"; adoption is recorded; a tree named
// "forged" is refused as the engine refuses a forged claim.
class FakeArchives : public ArchiveAccess {
 public:
  absl::StatusOr<std::string> ArchiveOf(const std::string& tree) override {
    if (tree == "sha256:unknown") return absl::NotFoundError("no archive");
    return "sha256:archive-of-" + tree.substr(7);
  }
  absl::Status AdoptArchive(const std::string& tree,
                            const std::string& archive) override {
    MutexLock lock(&mu_);
    if (tree == "sha256:forged")
      return absl::InvalidArgumentError("archive does not hold the tree");
    adopted_[tree] = archive;
    return absl::OkStatus();
  }
  std::map<std::string, std::string> adopted() {
    MutexLock lock(&mu_);
    return adopted_;
  }

 private:
  Mutex mu_;
  std::map<std::string, std::string> adopted_ ABSL_GUARDED_BY(mu_);
};

class ScriptedKubelet;

// What a test's pod does, run on its own thread.
struct PodControl {
  FakeApiServer* server;
  ScriptedKubelet* kubelet;
  std::string name;
  json pod;  // as created
  void Mutate(const std::function<void(json&)>& fn) {
    ASSERT_TRUE(server->MutatePod(kNs, name, fn).ok());
  }
  void Schedule() {
    Mutate([](json& p) {
      p["spec"]["nodeName"] = "node-1";
      p["status"]["phase"] = "Pending";
    });
  }
  void FetchDone() {
    Mutate([](json& p) {
      p["status"]["initContainerStatuses"] = json::array(
          {{{"name", "kiln-fetch"},
            {"state",
             {{"terminated", {{"exitCode", 0}, {"reason", "Completed"}}}}}}});
    });
  }
  void TaskRunning() {
    Mutate([](json& p) {
      p["status"]["phase"] = "Running";
      p["status"]["containerStatuses"] =
          json::array({{{"name", "task"},
                        {"image", p["spec"]["containers"][0]["image"]},
                        {"state", {{"running", json::object()}}}}});
    });
  }
  void Log(const std::string& line, absl::Time t = absl::Now()) {
    server->AppendLog(kNs, name, "task", line, t);
  }
  void TaskExited(int code, const json& result) {
    server->EndLog(kNs, name, "task");
    Mutate([&](json& p) {
      p["status"]["phase"] = code == 0 ? "Succeeded" : "Failed";
      p["status"]["containerStatuses"] =
          json::array({{{"name", "task"},
                        {"state",
                         {{"terminated",
                           {{"exitCode", code},
                            {"reason", code == 0 ? "Completed" : "Error"},
                            {"message", result.dump()}}}}}}});
    });
  }
  // The agent's result for a successful run: every declared output with a
  // tree named after it (as the spec in the pod's env lists them).
  json AgentSuccess() const {
    json spec;
    for (const json& e : pod["spec"]["containers"][0]["env"]) {
      if (e["name"] == "KILN_AGENT_SPEC")
        spec = json::parse(e["value"].get<std::string>());
    }
    json outputs = json::object();
    for (const json& o : spec["outputs"]) {
      std::string tree = "sha256:tree-" + o["artifact"].get<std::string>();
      outputs[o["artifact"].get<std::string>()] = {
          {"tree", tree}, {"archive", "sha256:up-" + tree.substr(7)}};
    }
    return {
        {"v", 1}, {"status", "EXITED"}, {"exit_code", 0}, {"outputs", outputs}};
  }
  bool WaitDeleting(absl::Duration d);
};

class ScriptedKubelet {
 public:
  using Script = std::function<void(PodControl&)>;
  explicit ScriptedKubelet(FakeApiServer* server) : server_(server) {
    FakeApiServer::KubeletHooks hooks;
    hooks.on_pod_created = [this](const json& pod) {
      std::string name = pod["metadata"]["name"];
      MutexLock lock(&mu_);
      ++created_;
      threads_.emplace_back([this, pod, name] {
        PodControl c{server_, this, name, pod};
        Script script;
        {
          MutexLock lock(&mu_);
          script = script_;
        }
        if (script) script(c);
      });
    };
    hooks.on_pod_deleting = [this](const json& pod) {
      MutexLock lock(&mu_);
      deleting_.insert(pod["metadata"]["name"].get<std::string>());
    };
    server_->SetKubelet(hooks);
  }
  ~ScriptedKubelet() {
    {
      MutexLock lock(&mu_);
      stopping_ = true;
    }
    std::vector<std::thread> threads;
    {
      MutexLock lock(&mu_);
      threads.swap(threads_);
    }
    for (auto& t : threads) t.join();
    server_->SetKubelet({});
  }
  void SetScript(Script s) {
    MutexLock lock(&mu_);
    script_ = std::move(s);
  }
  int created() {
    MutexLock lock(&mu_);
    return created_;
  }
  // Waits until the pod is marked for deletion (or the kubelet stops).
  bool WaitDeleting(const std::string& name, absl::Duration d) {
    MutexLock lock(&mu_);
    return mu_.AwaitWithDeadline(
               [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
                 return deleting_.count(name) > 0 || stopping_;
               },
               absl::Now() + d) &&
           deleting_.count(name) > 0;
  }

 private:
  FakeApiServer* server_;
  Mutex mu_;
  Script script_ ABSL_GUARDED_BY(mu_);
  std::vector<std::thread> threads_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> deleting_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  int created_ ABSL_GUARDED_BY(mu_) = 0;
};

bool PodControl::WaitDeleting(absl::Duration d) {
  return kubelet->WaitDeleting(name, d);
}

// The usual life of a pod: scheduled, inputs fetched, the task prints
// `lines` and exits with `code`.
ScriptedKubelet::Script RunAndExit(std::vector<std::string> lines, int code) {
  return [lines, code](PodControl& c) {
    c.Schedule();
    c.FetchDone();
    c.TaskRunning();
    for (const auto& l : lines) c.Log(l);
    if (code == 0) {
      c.TaskExited(0, c.AgentSuccess());
    } else {
      c.TaskExited(code, {{"v", 1}, {"status", "EXITED"}, {"exit_code", code}});
    }
  };
}

class PodExecutorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    kube::testing::FakeApiServerOptions server_options;
    server_options.initial_namespaces.push_back(kNs);
    auto server = FakeApiServer::Start(server_options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    // One answered request: the server is listening (stopping it before
    // its listen loop ran would hang the double's destructor).
    ASSERT_TRUE(Client()->Get("/version").ok());
    kubelet_ = std::make_unique<ScriptedKubelet>(server_.get());
    executor_ = MakeExecutor();
  }
  void TearDown() override {
    executor_.reset();
    kubelet_.reset();
    server_.reset();
  }

  std::shared_ptr<kube::Client> Client() {
    kube::ClusterConfig config;
    config.server = server_->url();
    config.context = "fake";
    auto client = kube::Client::Create(config);
    EXPECT_TRUE(client.ok()) << client.status();
    return std::shared_ptr<kube::Client>(std::move(*client));
  }

  PodExecutorOptions Options() {
    PodExecutorOptions o;
    o.client = Client();
    o.namespace_name = kNs;
    o.agent_image = kAgent;
    o.agent_server = "127.0.0.1:1";
    o.agent_token = "secret-token";
    o.pending_timeout = absl::Seconds(20);
    return o;
  }

  std::unique_ptr<Executor> MakeExecutor(
      std::function<void(PodExecutorOptions&)> edit = nullptr) {
    PodExecutorOptions o = Options();
    if (edit) edit(o);
    auto e = CreatePodExecutor(std::move(o));
    EXPECT_TRUE(e.ok()) << e.status();
    return e.ok() ? std::move(*e) : nullptr;
  }

  v1::ExecRequest Request(uint32_t attempt = 1) {
    v1::ExecRequest r;
    r.set_run_id("run-1");
    r.set_task("build");
    r.set_attempt(attempt);
    r.set_image(kImage);
    r.add_argv("make");
    auto* in = r.add_inputs();
    in->set_artifact("src");
    in->set_digest("sha256:srctree");
    auto* out = r.add_outputs();
    out->set_artifact("bin");
    out->add_paths("out");
    return r;
  }

  v1::ExecResult Run(const v1::ExecRequest& r, conformance::RecordingSink* sink,
                     Executor* executor = nullptr) {
    HostWorkspaceOptions host;
    host.archives = &archives_;
    auto exec =
        (executor ? executor : executor_.get())->StartStaged(r, sink, host);
    EXPECT_TRUE(exec.ok()) << exec.status();
    if (!exec.ok()) return {};
    return (*exec)->Wait();
  }

  bool PodExists(const std::string& name) {
    return server_->GetObject(kube::PodPath(kNs, name)).ok();
  }

  std::unique_ptr<FakeApiServer> server_;
  std::unique_ptr<ScriptedKubelet> kubelet_;
  std::unique_ptr<Executor> executor_;
  FakeArchives archives_;
};

TEST_F(PodExecutorTest, OptionsAreChecked) {
  PodExecutorOptions o = Options();
  o.agent_image = "registry.test/kiln-agent:latest";
  EXPECT_EQ(CreatePodExecutor(o).status().code(),
            absl::StatusCode::kInvalidArgument);
  o = Options();
  o.namespace_name = "";
  EXPECT_FALSE(CreatePodExecutor(o).ok());
  o = Options();
  o.client = nullptr;
  EXPECT_FALSE(CreatePodExecutor(o).ok());
  o = Options();
  o.defaults.add_tolerations()->set_effect("Sometimes");
  EXPECT_EQ(CreatePodExecutor(o).status().message(),
            "pod executor defaults: tolerations[0]: effect 'Sometimes' is "
            "invalid: must be NoSchedule, PreferNoSchedule or NoExecute");
}

TEST_F(PodExecutorTest, PlatformAndCapabilities) {
  EXPECT_EQ(executor_->Name(), "kubernetes");
  EXPECT_TRUE(executor_->Capabilities().images);
  EXPECT_EQ(executor_->Platform(), "linux/any/kubernetes/v1/agent=sha256:aaaa");
  auto arm = MakeExecutor([](PodExecutorOptions& o) {
    (*o.defaults.mutable_node_selector())["kubernetes.io/arch"] = "arm64";
  });
  EXPECT_EQ(arm->Platform(), "linux/arm64/kubernetes/v1/agent=sha256:aaaa");
}

TEST_F(PodExecutorTest, RefusesHostImageAndArtifactsWithoutArchiveAccess) {
  conformance::RecordingSink sink;
  v1::ExecRequest r = Request();
  for (const char* image : {"", "host"}) {
    r.set_image(image);
    auto s = executor_->Start(r, &sink);
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  }
  r.set_image(kImage);
  EXPECT_EQ(executor_->Start(r, &sink).status().code(),
            absl::StatusCode::kInvalidArgument);  // no ArchiveAccess
  EXPECT_EQ(kubelet_->created(), 0);
}

TEST_F(PodExecutorTest, RunsThePodAndCollectsResultOutputsAndLogs) {
  kubelet_->SetScript(RunAndExit({"compiling", "", "done  x"}, 0));
  conformance::RecordingSink sink;
  v1::ExecResult result = Run(Request(), &sink);
  EXPECT_EQ(result.status(), v1::EXITED) << result.message();
  EXPECT_EQ(result.exit_code(), 0);
  EXPECT_EQ(result.outputs().at("bin"), "sha256:tree-bin");
  EXPECT_EQ(archives_.adopted().at("sha256:tree-bin"), "sha256:up-tree-bin");
  EXPECT_EQ(sink.Lines(v1::LogLine::STDOUT),
            (std::vector<std::string>{"compiling", "", "done  x"}));
  EXPECT_EQ(result.log_bytes(), 10u + 1u + 8u);
  // The pod was deleted after its result; the token secret stays.
  std::string name = kubernetes::PodName("run-1", "build", 1);
  EXPECT_FALSE(PodExists(name));
  auto secret =
      server_->GetObject(kube::SecretPath(kNs, "kiln-agent-kubernetes"));
  ASSERT_TRUE(secret.ok()) << secret.status();
  EXPECT_EQ(secret->at("data").at("token"), "c2VjcmV0LXRva2Vu");
}

TEST_F(PodExecutorTest, ThePodCarriesTheSpecWithInputArchives) {
  json seen;
  kubelet_->SetScript([&](PodControl& c) {
    seen = c.pod;
    RunAndExit({}, 0)(c);
  });
  conformance::RecordingSink sink;
  v1::ExecResult result = Run(Request(), &sink);
  ASSERT_EQ(result.status(), v1::EXITED);
  ASSERT_TRUE(seen.is_object());
  EXPECT_EQ(seen["metadata"]["labels"]["kiln.dev/attempt"], "1");
  json spec;
  for (const json& e : seen["spec"]["initContainers"][0]["env"]) {
    if (e["name"] == "KILN_AGENT_SPEC")
      spec = json::parse(e["value"].get<std::string>());
  }
  EXPECT_EQ(spec["inputs"][0]["archive"], "sha256:archive-of-srctree");
  EXPECT_EQ(seen["spec"]["containers"][0]["image"], kImage);
}

TEST_F(PodExecutorTest, ExitCodeAndFailedOutputs) {
  kubelet_->SetScript(RunAndExit({"oops"}, 3));
  conformance::RecordingSink sink;
  v1::ExecResult result = Run(Request(), &sink);
  EXPECT_EQ(result.status(), v1::EXITED);
  EXPECT_EQ(result.exit_code(), 3);
  EXPECT_TRUE(result.outputs().empty());

  // An upload the engine refuses to adopt is OUTPUTS_FAILED.
  kubelet_->SetScript([](PodControl& c) {
    c.Schedule();
    c.TaskRunning();
    json r = c.AgentSuccess();
    r["outputs"]["bin"]["tree"] = "sha256:forged";
    c.TaskExited(0, r);
  });
  conformance::RecordingSink sink2;
  v1::ExecResult forged = Run(Request(2), &sink2);
  EXPECT_EQ(forged.status(), v1::OUTPUTS_FAILED);
  EXPECT_EQ(forged.message(), "output 'bin': archive does not hold the tree");
  EXPECT_TRUE(forged.outputs().empty());
}

TEST_F(PodExecutorTest, UnknownInputArchiveIsInputsFailedWithoutAPod) {
  v1::ExecRequest r = Request();
  r.mutable_inputs(0)->set_digest("sha256:unknown");
  conformance::RecordingSink sink;
  v1::ExecResult result = Run(r, &sink);
  EXPECT_EQ(result.status(), v1::INPUTS_FAILED);
  EXPECT_EQ(result.message(), "input 'src': no archive");
  EXPECT_EQ(kubelet_->created(), 0);
}

TEST_F(PodExecutorTest, DroppedLogStreamsLoseAndRepeatNothing) {
  const int kLines = 60;
  kubelet_->SetScript([&](PodControl& c) {
    c.Schedule();
    c.FetchDone();
    c.TaskRunning();
    // Many lines per second, several with the very same timestamp.
    absl::Time base = absl::FromUnixSeconds(absl::ToUnixSeconds(absl::Now()));
    for (int i = 0; i < kLines; ++i) {
      c.Log(absl::StrCat("line ", i), base + absl::Milliseconds(100 * (i / 3)));
      if (i % 13 == 12) {
        absl::SleepFor(absl::Milliseconds(150));
        c.server->DropLogStreams();
      }
    }
    absl::SleepFor(absl::Milliseconds(100));
    c.TaskExited(0, c.AgentSuccess());
  });
  conformance::RecordingSink sink;
  v1::ExecResult result = Run(Request(), &sink);
  ASSERT_EQ(result.status(), v1::EXITED) << result.message();
  std::vector<std::string> want;
  for (int i = 0; i < kLines; ++i) want.push_back(absl::StrCat("line ", i));
  EXPECT_EQ(sink.Lines(v1::LogLine::STDOUT), want);
}

TEST_F(PodExecutorTest, ExpiredWatchIsRelisted) {
  kubelet_->SetScript([&](PodControl& c) {
    c.Schedule();
    c.TaskRunning();
    absl::SleepFor(absl::Milliseconds(300));
    c.server->CompactHistory();
    c.server->ExpireWatches();
    absl::SleepFor(absl::Milliseconds(100));
    c.Log("after the 410");
    c.TaskExited(0, c.AgentSuccess());
  });
  conformance::RecordingSink sink;
  v1::ExecResult result = Run(Request(), &sink);
  EXPECT_EQ(result.status(), v1::EXITED) << result.message();
  EXPECT_EQ(sink.Lines(v1::LogLine::STDOUT),
            std::vector<std::string>{"after the 410"});
}

TEST_F(PodExecutorTest, EvictionMidTaskIsAnInfrastructureFailure) {
  kubelet_->SetScript([](PodControl& c) {
    c.Schedule();
    c.TaskRunning();
    c.Log("working");
    absl::SleepFor(absl::Milliseconds(200));
    c.server->EndLog(kNs, c.name, "task");
    c.Mutate([](json& p) {
      p["status"]["phase"] = "Failed";
      p["status"]["reason"] = "Evicted";
      p["status"]["message"] = "The node was low on resource: memory.";
    });
  });
  conformance::RecordingSink sink;
  v1::ExecResult result = Run(Request(), &sink);
  EXPECT_EQ(result.status(), v1::INFRA_FAILED);
  EXPECT_EQ(result.message(),
            "pod evicted: The node was low on resource: memory.");
  EXPECT_TRUE(result.outputs().empty());
  EXPECT_EQ(sink.Lines(v1::LogLine::STDOUT),
            std::vector<std::string>{"working"});
}

// The pod ends before the executor has seen its task container running
// (no pause between the two updates): the log is still read.
TEST_F(PodExecutorTest, APodEndedBeforeItWasSeenRunningStillHasItsLogRead) {
  kubelet_->SetScript([](PodControl& c) {
    c.Schedule();
    c.TaskRunning();
    c.Log("working");
    c.server->EndLog(kNs, c.name, "task");
    c.Mutate([](json& p) {
      p["status"]["phase"] = "Failed";
      p["status"]["reason"] = "Evicted";
      p["status"]["message"] = "The node was low on resource: memory.";
    });
  });
  conformance::RecordingSink sink;
  v1::ExecResult result = Run(Request(), &sink);
  EXPECT_EQ(result.status(), v1::INFRA_FAILED);
  EXPECT_EQ(sink.Lines(v1::LogLine::STDOUT),
            std::vector<std::string>{"working"});
}

TEST_F(PodExecutorTest, ImagePullFailure) {
  kubelet_->SetScript([](PodControl& c) {
    c.Schedule();
    c.FetchDone();
    for (const char* reason : {"ErrImagePull", "ImagePullBackOff"}) {
      c.Mutate([&](json& p) {
        p["status"]["containerStatuses"] = json::array(
            {{{"name", "task"},
              {"image", p["spec"]["containers"][0]["image"]},
              {"state",
               {{"waiting",
                 {{"reason", reason}, {"message", "manifest unknown"}}}}}}});
      });
      c.server->RecordEvent(kNs, c.name, "Warning", "Failed",
                            std::string("Error: ") + reason);
      absl::SleepFor(absl::Milliseconds(200));
    }
  });
  conformance::RecordingSink sink;
  v1::ExecResult result = Run(Request(), &sink);
  EXPECT_EQ(result.status(), v1::INFRA_FAILED);
  EXPECT_EQ(result.message(),
            absl::StrCat("image '", kImage,
                         "' of container task cannot be pulled: "
                         "ImagePullBackOff: manifest unknown"));
}

TEST_F(PodExecutorTest, PendingTimeoutNamesTheSchedulersMessage) {
  executor_ = MakeExecutor(
      [](PodExecutorOptions& o) { o.pending_timeout = absl::Seconds(1); });
  kubelet_->SetScript([](PodControl& c) {
    c.server->RecordEvent(kNs, c.name, "Warning", "FailedScheduling",
                          "0/3 nodes are available: 3 node(s) had untolerated "
                          "taint {dedicated: gpu}.");
  });
  conformance::RecordingSink sink;
  absl::Time start = absl::Now();
  v1::ExecResult result = Run(Request(), &sink);
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
  EXPECT_EQ(result.status(), v1::INFRA_FAILED);
  EXPECT_EQ(result.message(),
            "pod kiln-run-1-build-1 did not start within 1s: FailedScheduling: "
            "0/3 nodes are available: 3 node(s) had untolerated taint "
            "{dedicated: gpu}.");
  EXPECT_FALSE(PodExists("kiln-run-1-build-1"));
}

TEST_F(PodExecutorTest, CancelDeletesThePodGracefully) {
  std::atomic<bool> got_term{false};
  kubelet_->SetScript([&](PodControl& c) {
    c.Schedule();
    c.TaskRunning();
    c.Log("started");
    if (c.WaitDeleting(absl::Seconds(30))) {
      got_term = true;
      c.server->EndLog(kNs, c.name, "task");
      c.Mutate([](json& p) {
        p["status"]["phase"] = "Failed";
        p["status"]["containerStatuses"] = json::array(
            {{{"name", "task"},
              {"state",
               {{"terminated",
                 {{"exitCode", 143},
                  {"reason", "Error"},
                  {"message",
                   R"({"v":1,"status":"SIGNALED","exit_code":143,"signal":15})"}}}}}}});
      });
      ASSERT_TRUE(c.server->FinalizePodDeletion(kNs, c.name).ok());
    }
  });
  conformance::RecordingSink sink;
  HostWorkspaceOptions host;
  host.archives = &archives_;
  v1::ExecRequest r = Request();
  r.mutable_limits()->mutable_kill_grace()->set_seconds(3);
  auto exec = executor_->StartStaged(r, &sink, host);
  ASSERT_TRUE(exec.ok());
  ASSERT_TRUE(sink.AwaitLines(1, absl::Seconds(20)));
  absl::Time start = absl::Now();
  (*exec)->Cancel();
  v1::ExecResult result = (*exec)->Wait();
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
  EXPECT_TRUE(got_term);
  EXPECT_EQ(result.status(), v1::CANCELLED) << result.message();
  EXPECT_FALSE(PodExists("kiln-run-1-build-1"));
}

TEST_F(PodExecutorTest, CancelForcesAPodThatIgnoresTheGrace) {
  // The kubelet never finishes the graceful delete: the executor deletes
  // with grace 0 after kill_grace.
  kubelet_->SetScript([&](PodControl& c) {
    c.Schedule();
    c.TaskRunning();
    c.Log("started");
  });
  conformance::RecordingSink sink;
  HostWorkspaceOptions host;
  host.archives = &archives_;
  v1::ExecRequest r = Request();
  r.mutable_limits()->mutable_kill_grace()->set_seconds(1);
  auto exec = executor_->StartStaged(r, &sink, host);
  ASSERT_TRUE(exec.ok());
  ASSERT_TRUE(sink.AwaitLines(1, absl::Seconds(20)));
  (*exec)->Cancel();
  v1::ExecResult result = (*exec)->Wait();
  EXPECT_EQ(result.status(), v1::CANCELLED);
  EXPECT_FALSE(PodExists("kiln-run-1-build-1"));
}

TEST_F(PodExecutorTest, PodDeletedBySomeoneElse) {
  kubelet_->SetScript([&](PodControl& c) {
    c.Schedule();
    c.TaskRunning();
    c.Log("started");
    absl::SleepFor(absl::Milliseconds(200));
    kube::DeleteOptions del;
    del.grace_period_seconds = 0;
    kube::ClusterConfig config;
    config.server = c.server->url();
    auto client = kube::Client::Create(config);
    ASSERT_TRUE(client.ok());
    ASSERT_TRUE((*client)->Delete(kube::PodPath(kNs, c.name), del).ok());
  });
  conformance::RecordingSink sink;
  v1::ExecResult result = Run(Request(), &sink);
  EXPECT_EQ(result.status(), v1::INFRA_FAILED);
  EXPECT_EQ(result.message(),
            "pod kiln-run-1-build-1 was deleted by someone else");
}

TEST_F(PodExecutorTest, SameAttemptAdoptsItsPod) {
  // An engine that restarts the same attempt finds the pod it created
  // (409 AlreadyExists) and adopts it: never two pods for one attempt.
  kubelet_->SetScript([](PodControl& c) {
    c.Schedule();
    c.TaskRunning();
    c.Log("first");
    absl::SleepFor(absl::Milliseconds(500));
    c.TaskExited(0, c.AgentSuccess());
  });
  auto client = Client();
  kubernetes::PodManifestParams p;
  p.name = kubernetes::PodName("run-1", "build", 1);
  p.namespace_name = kNs;
  p.agent_image = kAgent;
  p.token_secret = "kiln-agent-kubernetes";
  p.agent_spec = kubernetes::BuildAgentSpec(
      Request(), {"sha256:archive-of-srctree"}, absl::Hours(4));
  json manifest = kubernetes::BuildPodManifest(Request(), p);
  ASSERT_TRUE(client->Create(kube::PodsPath(kNs), manifest).ok());
  conformance::RecordingSink sink;
  v1::ExecResult result = Run(Request(), &sink);
  EXPECT_EQ(result.status(), v1::EXITED) << result.message();
  EXPECT_EQ(result.outputs().at("bin"), "sha256:tree-bin");
  EXPECT_EQ(kubelet_->created(), 1);
}

TEST_F(PodExecutorTest, AlienPodWithTheSameNameIsNotAdopted) {
  auto client = Client();
  json alien = {
      {"apiVersion", "v1"},
      {"kind", "Pod"},
      {"metadata", {{"name", "kiln-run-1-build-1"}}},
      {"spec",
       {{"containers", json::array({{{"name", "x"}, {"image", "busybox"}}})}}}};
  ASSERT_TRUE(client->Create(kube::PodsPath(kNs), alien).ok());
  conformance::RecordingSink sink;
  v1::ExecResult result = Run(Request(), &sink);
  EXPECT_EQ(result.status(), v1::INFRA_FAILED);
  EXPECT_EQ(result.message(),
            "pod kiln-run-1-build-1 already exists and is not this attempt's "
            "(or is being deleted)");
  EXPECT_TRUE(PodExists("kiln-run-1-build-1"));  // not ours: left alone
}

TEST_F(PodExecutorTest, RestartedEngineReattachesToTheEarlierAttemptsPod) {
  // Engine 1 started attempt 1 and was killed: its pod runs on. The
  // restarted engine runs attempt 2 of the same request: it re-attaches
  // (logs continue, the result is collected) instead of starting again, and
  // deletes the task's other uncollected pods.
  std::atomic<bool> finish{false};
  kubelet_->SetScript([&](PodControl& c) {
    if (c.pod["metadata"]["labels"]["kiln.dev/attempt"] != "1") return;
    c.Schedule();
    c.TaskRunning();
    c.Log("from attempt 1");
    while (!finish) absl::SleepFor(absl::Milliseconds(20));
    c.Log("still attempt 1");
    c.TaskExited(0, c.AgentSuccess());
  });
  auto client = Client();
  kubernetes::PodManifestParams p;
  p.namespace_name = kNs;
  p.agent_image = kAgent;
  p.token_secret = "kiln-agent-kubernetes";
  p.agent_spec = kubernetes::BuildAgentSpec(
      Request(), {"sha256:archive-of-srctree"}, absl::Hours(4));
  p.name = kubernetes::PodName("run-1", "build", 1);
  ASSERT_TRUE(client
                  ->Create(kube::PodsPath(kNs),
                           kubernetes::BuildPodManifest(Request(1), p))
                  .ok());
  // An orphan: attempt 0 of another request of the same task.
  v1::ExecRequest other = Request(0);
  other.set_argv(0, "other");
  p.name = kubernetes::PodName("run-1", "build", 0);
  ASSERT_TRUE(
      client
          ->Create(kube::PodsPath(kNs), kubernetes::BuildPodManifest(other, p))
          .ok());

  auto restarted = MakeExecutor();
  conformance::RecordingSink sink;
  HostWorkspaceOptions host;
  host.archives = &archives_;
  auto exec = restarted->StartStaged(Request(2), &sink, host);
  ASSERT_TRUE(exec.ok());
  ASSERT_TRUE(sink.AwaitLines(1, absl::Seconds(20)));
  finish = true;
  v1::ExecResult result = (*exec)->Wait();
  EXPECT_EQ(result.status(), v1::EXITED) << result.message();
  EXPECT_EQ(result.outputs().at("bin"), "sha256:tree-bin");
  EXPECT_EQ(sink.Lines(v1::LogLine::STDOUT),
            (std::vector<std::string>{"from attempt 1", "still attempt 1"}));
  EXPECT_FALSE(PodExists(kubernetes::PodName("run-1", "build", 2)));
  EXPECT_FALSE(PodExists(kubernetes::PodName("run-1", "build", 1)));
  EXPECT_FALSE(PodExists(kubernetes::PodName("run-1", "build", 0)));
  EXPECT_EQ(kubelet_->created(), 2);  // the two made before the restart
}

TEST_F(PodExecutorTest, KeptPodsAreBoundedAndNeverReadopted) {
  executor_ =
      MakeExecutor([](PodExecutorOptions& o) { o.keep_finished_pods = 1; });
  kubelet_->SetScript(RunAndExit({"x"}, 1));
  conformance::RecordingSink s1, s2;
  EXPECT_EQ(Run(Request(1), &s1).exit_code(), 1);
  EXPECT_TRUE(PodExists("kiln-run-1-build-1"));
  // The retry runs anew (the kept pod's result was collected) ...
  v1::ExecResult second = Run(Request(2), &s2);
  EXPECT_EQ(second.exit_code(), 1);
  EXPECT_EQ(kubelet_->created(), 2);
  // ... and only the newest finished pod is kept.
  EXPECT_FALSE(PodExists("kiln-run-1-build-1"));
  EXPECT_TRUE(PodExists("kiln-run-1-build-2"));
}

TEST_F(PodExecutorTest, LogLimitStopsThePod) {
  kubelet_->SetScript([&](PodControl& c) {
    c.Schedule();
    c.TaskRunning();
    for (int i = 0; i < 100; ++i) c.Log("0123456789");
    if (c.WaitDeleting(absl::Seconds(30))) {
      c.server->EndLog(kNs, c.name, "task");
      ASSERT_TRUE(c.server->FinalizePodDeletion(kNs, c.name).ok());
    }
  });
  v1::ExecRequest r = Request();
  r.mutable_limits()->set_max_log_bytes(55);
  r.mutable_limits()->mutable_kill_grace()->set_seconds(1);
  conformance::RecordingSink sink;
  v1::ExecResult result = Run(r, &sink);
  EXPECT_EQ(result.status(), v1::LOG_LIMIT) << result.message();
  EXPECT_EQ(sink.LineCount(), 5u);
}

}  // namespace
}  // namespace kiln
