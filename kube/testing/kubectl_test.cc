// Honesty check: the real kubectl (1.32, on PATH; scripts/install-deps
// provides it) against the double, with validation on.
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "base/mutex.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kube/testing/fake_api_server.h"
#include "kube/testing/process.h"

namespace kiln {
namespace kube {
namespace testing {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;

constexpr char kPod[] = R"(apiVersion: v1
kind: Pod
metadata:
  name: web
  labels: {app: demo}
spec:
  restartPolicy: Never
  containers:
  - name: main
    image: busybox:1.36
    command: ["sh", "-c", "echo hi"]
    env:
    - {name: A, value: "1"}
)";

constexpr char kConfig[] = R"(apiVersion: v1
kind: Secret
metadata: {name: creds}
stringData: {token: abc}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, labels: {app: demo}}
data: {mode: fast}
)";

class KubectlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = FakeApiServer::Start();
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = std::move(*s);
    dir_ = getenv("TEST_TMPDIR");
    kubeconfig_ = dir_ + "/kubeconfig";
    ASSERT_TRUE(server_->WriteKubeconfig(kubeconfig_, "default").ok());
  }
  // Joins every kubelet thread, including any a late delete started while
  // the earlier ones were being joined.
  void TearDown() override {
    for (;;) {
      std::vector<std::thread> threads;
      {
        MutexLock l(&mu_);
        threads.swap(kubelet_threads_);
      }
      if (threads.empty()) break;
      for (std::thread& t : threads) t.join();
    }
  }

  std::string Write(const std::string& name, const std::string& text) {
    std::string path = dir_ + "/" + name;
    std::ofstream(path) << text;
    return path;
  }
  std::vector<std::string> Argv(const std::vector<std::string>& args) {
    std::vector<std::string> argv = {"kubectl", "--kubeconfig", kubeconfig_,
                                     "--cache-dir", dir_ + "/kube-cache"};
    argv.insert(argv.end(), args.begin(), args.end());
    return argv;
  }
  std::vector<std::pair<std::string, std::string>> Env() {
    return {{"HOME", dir_}, {"KUBECONFIG", kubeconfig_}};
  }
  // Runs kubectl to completion: {exit code, output}.
  std::pair<int, std::string> Kubectl(const std::vector<std::string>& args) {
    auto r = RunProcess(Argv(args), Env(), absl::Seconds(60));
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : std::make_pair(-1, std::string());
  }
  std::unique_ptr<TestProcess> Background(
      const std::vector<std::string>& args) {
    auto p = TestProcess::Start(Argv(args), Env());
    EXPECT_TRUE(p.ok()) << p.status();
    return p.ok() ? std::move(*p) : nullptr;
  }
  // What a kubelet does when the pod starts: bind, run, report ready.
  void StartPod(const std::string& name) {
    ASSERT_TRUE(
        server_
            ->MutatePod("default", name,
                        [](json& pod) {
                          pod["spec"]["nodeName"] = "node-1";
                          pod["status"]["phase"] = "Running";
                          pod["status"]["conditions"] = {
                              {{"type", "Ready"}, {"status", "True"}},
                              {{"type", "ContainersReady"},
                               {"status", "True"}}};
                          pod["status"]["containerStatuses"] = {
                              {{"name", "main"},
                               {"ready", true},
                               {"restartCount", 0},
                               {"image", "busybox:1.36"},
                               {"state",
                                {{"running",
                                  {{"startedAt", "2026-01-01T00:00:00Z"}}}}}}};
                        })
            .ok());
  }
  void InstallKubelet(absl::Duration stop_delay) {
    server_->SetKubelet(
        {nullptr, [this, stop_delay](const json& pod) {
           std::string name = pod["metadata"]["name"];
           MutexLock l(&mu_);
           kubelet_threads_.emplace_back([this, name, stop_delay] {
             absl::SleepFor(stop_delay);
             EXPECT_TRUE(server_->FinalizePodDeletion("default", name).ok());
           });
         }});
  }

  std::unique_ptr<FakeApiServer> server_;
  std::string dir_, kubeconfig_;
  Mutex mu_;
  std::vector<std::thread> kubelet_threads_;
};

TEST_F(KubectlTest, ApplyValidatesAndCreates) {
  auto [rc, out] = Kubectl({"apply", "-f", Write("pod.yaml", kPod)});
  ASSERT_EQ(rc, 0) << out;
  EXPECT_THAT(out, HasSubstr("pod/web created"));
  std::tie(rc, out) = Kubectl({"apply", "-f", Write("config.yaml", kConfig)});
  ASSERT_EQ(rc, 0) << out;
  EXPECT_THAT(out, HasSubstr("secret/creds created"));
  EXPECT_THAT(out, HasSubstr("configmap/settings created"));
  auto secret = server_->GetObject("/api/v1/namespaces/default/secrets/creds");
  ASSERT_TRUE(secret.ok());
  EXPECT_EQ((*secret)["data"]["token"], "YWJj");

  // Validation is on: an unknown field is refused before anything is sent.
  std::string bad = kPod;
  bad.replace(bad.find("image:"), 6, "imagex:");
  bad.replace(bad.find("name: web"), 9, "name: bad");
  std::tie(rc, out) = Kubectl({"apply", "-f", Write("bad.yaml", bad)});
  EXPECT_NE(rc, 0);
  EXPECT_THAT(out, HasSubstr("unknown field \"imagex\""));
  EXPECT_EQ(
      server_->GetObject("/api/v1/namespaces/default/pods/bad").status().code(),
      absl::StatusCode::kNotFound);

  // Re-apply with a changed configmap: a strategic merge patch.
  std::string changed = kConfig;
  changed.replace(changed.find("mode: fast"), 10, "mode: slow");
  std::tie(rc, out) = Kubectl({"apply", "-f", Write("config2.yaml", changed)});
  ASSERT_EQ(rc, 0) << out;
  EXPECT_THAT(out, HasSubstr("configmap/settings configured"));
  // As on a real cluster, a Secret applied with stringData always patches
  // (stringData is write-only), but nothing changes.
  EXPECT_THAT(out, HasSubstr("secret/creds configured"));
  auto secret2 = server_->GetObject("/api/v1/namespaces/default/secrets/creds");
  EXPECT_EQ((*secret2)["metadata"]["resourceVersion"],
            (*secret)["metadata"]["resourceVersion"]);
  EXPECT_FALSE(secret2->contains("stringData"));
  auto cm =
      server_->GetObject("/api/v1/namespaces/default/configmaps/settings");
  EXPECT_EQ((*cm)["data"]["mode"], "slow");

  // Pod specs are immutable apart from images, as on a real cluster.
  std::string env_changed = kPod;
  env_changed.replace(env_changed.find("value: \"1\""), 10, "value: \"2\"");
  std::tie(rc, out) = Kubectl({"apply", "-f", Write("pod2.yaml", env_changed)});
  EXPECT_NE(rc, 0);
  EXPECT_THAT(out, HasSubstr("Forbidden: pod updates may not change fields"));

  // kubectl create sends protobuf: a clear refusal.
  std::tie(rc, out) =
      Kubectl({"create", "configmap", "x", "--from-literal=a=b"});
  EXPECT_NE(rc, 0);
  EXPECT_THAT(out, HasSubstr("accepts JSON request bodies only"));
}

TEST_F(KubectlTest, GetPods) {
  ASSERT_EQ(Kubectl({"apply", "-f", Write("pod.yaml", kPod)}).first, 0);
  std::string other = kPod;
  other.replace(other.find("name: web"), 9, "name: db");
  other.replace(other.find("app: demo"), 9, "app: data");
  ASSERT_EQ(Kubectl({"apply", "-f", Write("db.yaml", other)}).first, 0);
  StartPod("web");

  auto [rc, out] = Kubectl({"get", "pods", "-o", "json"});
  ASSERT_EQ(rc, 0) << out;
  json list = json::parse(out);
  ASSERT_EQ(list["items"].size(), 2u);
  EXPECT_EQ(list["items"][1]["metadata"]["name"], "web");
  EXPECT_EQ(list["items"][1]["status"]["phase"], "Running");

  std::tie(rc, out) = Kubectl({"get", "pods", "-l", "app=demo", "-o", "name"});
  ASSERT_EQ(rc, 0) << out;
  EXPECT_EQ(out, "pod/web\n");
  std::tie(rc, out) = Kubectl({"get", "pods", "--field-selector",
                               "status.phase=Pending", "-o", "name"});
  EXPECT_EQ(out, "pod/db\n");
  std::tie(rc, out) = Kubectl({"get", "pods"});
  ASSERT_EQ(rc, 0) << out;
  EXPECT_THAT(out, HasSubstr("READY   STATUS    RESTARTS"));
  EXPECT_THAT(out, ::testing::ContainsRegex("web +1/1 +Running +0"));
  std::tie(rc, out) = Kubectl({"get", "pod", "nope"});
  EXPECT_NE(rc, 0);
  EXPECT_THAT(out, HasSubstr("pods \"nope\" not found"));
}

TEST_F(KubectlTest, Logs) {
  ASSERT_EQ(Kubectl({"apply", "-f", Write("pod.yaml", kPod)}).first, 0);
  auto [rc, out] = Kubectl({"logs", "web"});
  EXPECT_NE(rc, 0);
  EXPECT_THAT(out, HasSubstr("is waiting to start: ContainerCreating"));
  StartPod("web");
  absl::Time t = absl::Now();
  server_->AppendLog("default", "web", "main", "hello", t);
  server_->AppendLog("default", "web", "main", "world",
                     t + absl::Milliseconds(1));
  std::tie(rc, out) = Kubectl({"logs", "web"});
  ASSERT_EQ(rc, 0) << out;
  EXPECT_EQ(out, "hello\nworld\n");
  std::tie(rc, out) = Kubectl({"logs", "web", "-c", "main", "--tail=1"});
  EXPECT_EQ(out, "world\n");

  auto follow = Background({"logs", "-f", "web"});
  ASSERT_TRUE(follow->WaitForOutput("world\n", absl::Seconds(20)))
      << follow->output();
  server_->AppendLog("default", "web", "main", "more", absl::Now());
  ASSERT_TRUE(follow->WaitForOutput("more\n", absl::Seconds(20)))
      << follow->output();
  server_->EndLog("default", "web", "main");
  auto code = follow->Wait(absl::Seconds(20));
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_EQ(*code, 0);
  EXPECT_EQ(follow->output(), "hello\nworld\nmore\n");
}

TEST_F(KubectlTest, GracefulDeleteWithKubelet) {
  InstallKubelet(absl::Milliseconds(500));
  ASSERT_EQ(Kubectl({"apply", "-f", Write("pod.yaml", kPod)}).first, 0);
  StartPod("web");
  auto [rc, out] = Kubectl({"delete", "pod", "web"});
  ASSERT_EQ(rc, 0) << out;
  EXPECT_THAT(out, HasSubstr("pod \"web\" deleted"));
  // kubectl delete waits until the object is gone.
  EXPECT_EQ(
      server_->GetObject("/api/v1/namespaces/default/pods/web").status().code(),
      absl::StatusCode::kNotFound);
  std::tie(rc, out) = Kubectl({"delete", "pod", "web"});
  EXPECT_NE(rc, 0);
  EXPECT_THAT(out, HasSubstr("not found"));
}

TEST_F(KubectlTest, Wait) {
  ASSERT_EQ(Kubectl({"apply", "-f", Write("pod.yaml", kPod)}).first, 0);
  auto ready =
      Background({"wait", "--for=condition=Ready", "pod/web", "--timeout=30s"});
  auto phase = Background({"wait", "--for=jsonpath={.status.phase}=Running",
                           "pod/web", "--timeout=30s"});
  absl::SleepFor(absl::Seconds(1));
  StartPod("web");
  auto code = ready->Wait(absl::Seconds(40));
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_EQ(*code, 0) << ready->output();
  EXPECT_THAT(ready->output(), HasSubstr("pod/web condition met"));
  code = phase->Wait(absl::Seconds(40));
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_EQ(*code, 0) << phase->output();

  auto [rc, out] = Kubectl(
      {"wait", "--for=condition=Ready=false", "pod/web", "--timeout=1s"});
  EXPECT_NE(rc, 0);
  EXPECT_THAT(out, HasSubstr("timed out"));

  InstallKubelet(absl::Seconds(1));
  auto gone = Background({"wait", "--for=delete", "pod/web", "--timeout=30s"});
  absl::SleepFor(absl::Milliseconds(500));
  ASSERT_EQ(Kubectl({"delete", "pod", "web", "--wait=false"}).first, 0);
  code = gone->Wait(absl::Seconds(40));
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_EQ(*code, 0) << gone->output();
  EXPECT_THAT(gone->output(), HasSubstr("pod/web condition met"));
}

TEST_F(KubectlTest, GetWatch) {
  ASSERT_EQ(Kubectl({"apply", "-f", Write("pod.yaml", kPod)}).first, 0);
  auto watch = Background({"get", "pods", "--watch", "-o", "name"});
  ASSERT_TRUE(watch->WaitForOutput("pod/web\n", absl::Seconds(20)))
      << watch->output();
  std::string other = kPod;
  other.replace(other.find("name: web"), 9, "name: late");
  ASSERT_EQ(Kubectl({"apply", "-f", Write("late.yaml", other)}).first, 0);
  EXPECT_TRUE(watch->WaitForOutput("pod/late\n", absl::Seconds(20)))
      << watch->output();
  auto table = Background({"get", "pods", "--watch"});
  ASSERT_TRUE(table->WaitForOutput("late", absl::Seconds(20)))
      << table->output();
  StartPod("late");
  EXPECT_TRUE(table->WaitForOutput("Running", absl::Seconds(20)))
      << table->output();
}

}  // namespace
}  // namespace testing
}  // namespace kube
}  // namespace kiln
