// The simulated kubelet (kube/testing/kubelet) running real pods on the API
// double, checked from outside as a cluster user sees them: the real
// kubectl reads a pod kiln created and ran (get -o json, logs) and deletes
// a running pod gracefully; pods created directly show the kubelet's
// reasons (CreateContainerConfigError until the secret exists,
// ErrImagePull/ImagePullBackOff with Warning events, DeadlineExceeded) and
// its termination-message rules (truncated to 4096 bytes, never read
// through a symlink).
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "executors/testing/recording_sink.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kube/names.h"
#include "kube/testing/process.h"
#include "tests/kube/pod_cluster.h"

namespace kiln {
namespace kubetest {
namespace {

using json = nlohmann::json;
using ::kiln::conformance::RecordingSink;
using ::testing::HasSubstr;

constexpr char kNs[] = "ci";

class SandboxKubeletTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<PodCluster*> cluster = PodCluster::Get();
    ASSERT_TRUE(cluster.ok()) << cluster.status();
    cluster_ = *cluster;
    client_ = cluster_->Client();
    ASSERT_NE(client_, nullptr);
    dir_ = getenv("TEST_TMPDIR");
    kubeconfig_ = dir_ + "/kubeconfig";
    ASSERT_TRUE(cluster_->server()->WriteKubeconfig(kubeconfig_, kNs).ok());
  }

  std::pair<int, std::string> Kubectl(const std::vector<std::string>& args) {
    std::vector<std::string> argv = {"kubectl", "--kubeconfig", kubeconfig_,
                                     "--cache-dir", dir_ + "/kube-cache"};
    argv.insert(argv.end(), args.begin(), args.end());
    auto r = kube::testing::RunProcess(
        argv, {{"HOME", dir_}, {"KUBECONFIG", kubeconfig_}}, absl::Seconds(60));
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : std::make_pair(-1, std::string());
  }

  // A pod of the busybox image running `script`, created directly.
  json Pod(const std::string& name, const std::string& script) {
    return {
        {"apiVersion", "v1"},
        {"kind", "Pod"},
        {"metadata", {{"name", name}, {"namespace", kNs}}},
        {"spec",
         {{"restartPolicy", "Never"},
          {"terminationGracePeriodSeconds", 1},
          {"volumes",
           json::array({{{"name", "out"}, {"emptyDir", json::object()}}})},
          {"containers",
           json::array({{{"name", "main"},
                         {"image", cluster_->busybox_image()},
                         {"command", json::array({"/bin/sh", "-c", script})},
                         {"volumeMounts",
                          json::array({{{"name", "out"},
                                        {"mountPath", "/out"}}})}}})}}}};
  }
  void Create(const json& pod) {
    absl::StatusOr<json> created = client_->Create(kube::PodsPath(kNs), pod);
    ASSERT_TRUE(created.ok()) << created.status();
  }
  // Polls the pod until `done` holds (or the timeout); the last state.
  json AwaitPod(const std::string& name,
                const std::function<bool(const json&)>& done,
                absl::Duration timeout = absl::Seconds(60)) {
    absl::Time end = absl::Now() + timeout;
    json pod;
    while (absl::Now() < end) {
      absl::StatusOr<json> got =
          cluster_->server()->GetObject(kube::PodPath(kNs, name));
      if (got.ok()) {
        pod = *got;
        if (done(pod)) return pod;
      }
      absl::SleepFor(absl::Milliseconds(100));
    }
    ADD_FAILURE() << "pod " << name
                  << " never reached the state: " << pod.dump();
    return pod;
  }
  static std::string Phase(const json& pod) {
    return pod.value("status", json::object()).value("phase", "");
  }
  static json MainState(const json& pod) {
    for (const json& c : pod["status"].value("containerStatuses", json())) {
      if (c.value("name", "") == "main") return c["state"];
    }
    return json::object();
  }
  std::vector<json> Events(const std::string& pod) {
    std::vector<json> out;
    absl::StatusOr<json> list = client_->List(kube::EventsPath(kNs));
    EXPECT_TRUE(list.ok()) << list.status();
    if (!list.ok()) return out;
    for (const json& e : (*list)["items"]) {
      if (e["involvedObject"].value("name", "") == pod) out.push_back(e);
    }
    return out;
  }

  PodCluster* cluster_ = nullptr;
  std::shared_ptr<kube::Client> client_;
  std::string dir_, kubeconfig_;
};

TEST_F(SandboxKubeletTest, KubectlReadsAPodKilnCreatedAndRan) {
  auto executor = cluster_->MakeExecutor(kNs, /*keep_finished_pods=*/1);
  ASSERT_TRUE(executor.ok()) << executor.status();
  v1::ExecRequest request;
  request.set_run_id("kubectl-run");
  request.set_task("build");
  request.set_attempt(1);
  request.set_image(cluster_->busybox_image());
  request.add_argv("/bin/sh");
  request.add_argv("-c");
  // (Pauses between the streams: stdout and stderr are separate pipes, so
  // only lines apart in time have one order in the merged log.)
  request.add_argv(
      "echo first line; sleep 0.3; echo to stderr >&2; sleep 0.3; echo last; "
      "exit 3");
  request.mutable_limits()->mutable_timeout()->set_seconds(60);
  RecordingSink sink;
  auto execution = (*executor)->Start(request, &sink);
  ASSERT_TRUE(execution.ok()) << execution.status();
  v1::ExecResult result = (*execution)->Wait();
  ASSERT_EQ(result.status(), v1::EXITED) << result.message();
  EXPECT_EQ(result.exit_code(), 3);

  auto [code, out] = Kubectl({"get", "pods", "-n", kNs, "-l",
                              "kiln.dev/run=kubectl-run", "-o", "json"});
  ASSERT_EQ(code, 0) << out;
  json list = json::parse(out, nullptr, false);
  ASSERT_TRUE(list.is_object()) << out;
  ASSERT_EQ(list["items"].size(), 1u) << out;
  const json& pod = list["items"][0];
  const std::string name = pod["metadata"]["name"];
  EXPECT_EQ(pod["metadata"]["labels"]["kiln.dev/task"], "build");
  EXPECT_EQ(pod["spec"]["nodeName"], "kiln-sandbox-node");
  EXPECT_EQ(pod["status"]["phase"], "Failed");
  const json& fetch = pod["status"]["initContainerStatuses"][0];
  EXPECT_EQ(fetch["name"], "kiln-fetch");
  EXPECT_EQ(fetch["state"]["terminated"]["exitCode"], 0);
  EXPECT_EQ(fetch["state"]["terminated"]["reason"], "Completed");
  const json& task = pod["status"]["containerStatuses"][0];
  EXPECT_EQ(task["name"], "task");
  EXPECT_EQ(task["state"]["terminated"]["exitCode"], 3);
  EXPECT_EQ(task["state"]["terminated"]["reason"], "Error");
  // The agent's result, read from /kiln/result.json in the kiln emptyDir.
  json report = json::parse(task["state"]["terminated"].value("message", "{}"),
                            nullptr, false);
  EXPECT_EQ(report.value("status", ""), "EXITED") << task.dump();
  EXPECT_EQ(report.value("exit_code", -1), 3);

  auto [log_code, log] = Kubectl({"logs", "-n", kNs, name, "-c", "task"});
  ASSERT_EQ(log_code, 0) << log;
  EXPECT_EQ(log, "first line\nto stderr\nlast\n");
  EXPECT_THAT(sink.Lines(v1::LogLine::STDOUT),
              ::testing::ElementsAre("first line", "to stderr", "last"));
}

TEST_F(SandboxKubeletTest, KubectlDeleteStopsARunningPodGracefully) {
  Create(Pod("graceful",
             "trap 'echo got TERM; exit 0' TERM; echo up; "
             "while true; do sleep 0.1; done"));
  AwaitPod("graceful", [](const json& p) { return Phase(p) == "Running"; });
  absl::Time start = absl::Now();
  auto [code, out] =
      Kubectl({"delete", "pod", "graceful", "-n", kNs, "--grace-period=20"});
  EXPECT_EQ(code, 0) << out;
  EXPECT_THAT(out, HasSubstr("pod \"graceful\" deleted"));
  // The shell exits on SIGTERM: the pod is gone long before its grace.
  EXPECT_LT(absl::Now() - start, absl::Seconds(15));
  EXPECT_TRUE(absl::IsNotFound(
      cluster_->server()->GetObject(kube::PodPath(kNs, "graceful")).status()));
}

TEST_F(SandboxKubeletTest,
       AMissingSecretIsCreateContainerConfigErrorUntilMade) {
  json pod = Pod("needs-secret", "echo token=$TOKEN");
  pod["spec"]["containers"][0]["env"] = json::array(
      {{{"name", "TOKEN"},
        {"valueFrom",
         {{"secretKeyRef", {{"name", "later"}, {"key", "token"}}}}}}});
  Create(pod);
  json waiting = AwaitPod("needs-secret", [](const json& p) {
    return MainState(p).contains("waiting") &&
           MainState(p)["waiting"].value("reason", "") ==
               "CreateContainerConfigError";
  });
  EXPECT_EQ(MainState(waiting)["waiting"].value("message", ""),
            "secret \"later\" not found");
  EXPECT_EQ(Phase(waiting), "Pending");
  json secret = {{"apiVersion", "v1"},
                 {"kind", "Secret"},
                 {"metadata", {{"name", "later"}, {"namespace", kNs}}},
                 {"stringData", {{"token", "s3cret"}}}};
  ASSERT_TRUE(client_->Create(kube::SecretsPath(kNs), secret).ok());
  json done = AwaitPod("needs-secret",
                       [](const json& p) { return Phase(p) == "Succeeded"; });
  auto [code, log] = Kubectl({"logs", "-n", kNs, "needs-secret"});
  EXPECT_EQ(code, 0);
  EXPECT_EQ(log, "token=s3cret\n");
}

TEST_F(SandboxKubeletTest, AnImageThatCannotBePulledBacksOffWithEvents) {
  json pod = Pod("no-image", "true");
  std::string busybox = cluster_->busybox_image();
  std::string missing = busybox.substr(0, busybox.find('/')) +
                        "/nothing-here@sha256:" + std::string(64, '0');
  pod["spec"]["containers"][0]["image"] = missing;
  Create(pod);
  json backoff = AwaitPod("no-image", [](const json& p) {
    return MainState(p).contains("waiting") &&
           MainState(p)["waiting"].value("reason", "") == "ImagePullBackOff";
  });
  EXPECT_EQ(Phase(backoff), "Pending");
  bool failed_event = false;
  for (const json& e : Events("no-image")) {
    if (e.value("type", "") == "Warning" && e.value("reason", "") == "Failed" &&
        absl::StrContains(e.value("message", ""),
                          "Failed to pull image \"" + missing + "\"")) {
      failed_event = true;
    }
  }
  EXPECT_TRUE(failed_event);
  // Deleting it stops the kubelet's retries; it is gone at once.
  ASSERT_TRUE(client_->Delete(kube::PodPath(kNs, "no-image")).ok());
  absl::Time end = absl::Now() + absl::Seconds(20);
  while (absl::Now() < end &&
         cluster_->server()->GetObject(kube::PodPath(kNs, "no-image")).ok()) {
    absl::SleepFor(absl::Milliseconds(100));
  }
  EXPECT_TRUE(absl::IsNotFound(
      cluster_->server()->GetObject(kube::PodPath(kNs, "no-image")).status()));
}

TEST_F(SandboxKubeletTest, ActiveDeadlineKillsAndFailsThePod) {
  json pod = Pod("deadline", "trap '' TERM; echo started; sleep 60");
  pod["spec"]["activeDeadlineSeconds"] = 2;
  Create(pod);
  absl::Time start = absl::Now();
  json failed =
      AwaitPod("deadline", [](const json& p) { return Phase(p) == "Failed"; });
  EXPECT_EQ(failed["status"].value("reason", ""), "DeadlineExceeded");
  // 2 s deadline + 1 s grace (TERM is ignored), far from the 60 s sleep.
  EXPECT_LT(absl::Now() - start, absl::Seconds(20));
  EXPECT_EQ(MainState(failed)["terminated"].value("exitCode", 0), 137);
}

TEST_F(SandboxKubeletTest, TerminationMessagesAreTruncatedAndNeverFollowLinks) {
  json pod = Pod("messages", "ln -s /etc/passwd /out/link; exit 1");
  json init = pod["spec"]["containers"][0];
  init["name"] = "long";
  init["command"] = json::array(
      {"/bin/sh", "-c", "head -c 5000 /dev/zero | tr '\\0' x > /out/long"});
  init["terminationMessagePath"] = "/out/long";
  pod["spec"]["initContainers"] = json::array({init});
  pod["spec"]["containers"][0]["terminationMessagePath"] = "/out/link";
  Create(pod);
  json done =
      AwaitPod("messages", [](const json& p) { return Phase(p) == "Failed"; });
  const json& long_state =
      done["status"]["initContainerStatuses"][0]["state"]["terminated"];
  EXPECT_EQ(long_state.value("message", "").size(), 4096u);
  EXPECT_EQ(long_state.value("reason", ""), "Completed");
  const json main = MainState(done)["terminated"];
  EXPECT_EQ(main.value("exitCode", 0), 1);
  EXPECT_FALSE(main.contains("message")) << "followed the symlink: " << main;
}

// fake_api_server_main --kubelet=sandbox as a process (how an end-to-end
// test starts the double): kubectl applies a pod, waits for it to succeed
// and reads its log.
TEST_F(SandboxKubeletTest, TheServerBinaryRunsPodsWithKubeletSandbox) {
  std::string binary =
      absl::StrCat(getenv("TEST_SRCDIR"), "/", getenv("TEST_WORKSPACE"),
                   "/kube/testing/fake_api_server_main");
  std::string kubeconfig = dir_ + "/process-kubeconfig";
  // stdin stays open (the binary stops when it closes): a pipe from sleep.
  auto server = kube::testing::TestProcess::Start(
      {"/bin/sh", "-c",
       absl::StrCat("sleep 600 | exec ", binary,
                    " --kubelet=sandbox --kubelet-dir=", dir_, "/process-node ",
                    kubeconfig, " work")});
  ASSERT_TRUE(server.ok()) << server.status();
  ASSERT_TRUE((*server)->WaitForOutput(kubeconfig + " http://127.0.0.1:",
                                       absl::Seconds(30)))
      << (*server)->output();
  auto kubectl = [&](std::vector<std::string> args) {
    std::vector<std::string> argv = {"kubectl", "--kubeconfig", kubeconfig,
                                     "--cache-dir", dir_ + "/kube-cache-2"};
    argv.insert(argv.end(), args.begin(), args.end());
    auto r =
        kube::testing::RunProcess(argv, {{"HOME", dir_}}, absl::Seconds(90));
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : std::make_pair(-1, std::string());
  };
  std::string manifest = dir_ + "/process-pod.json";
  json pod = Pod("from-process", "echo hello from a process");
  pod["metadata"]["namespace"] = "default";
  std::ofstream(manifest) << pod.dump();
  auto [applied, apply_out] = kubectl({"apply", "-f", manifest});
  ASSERT_EQ(applied, 0) << apply_out;
  auto [waited, wait_out] =
      kubectl({"wait", "-n", "default", "pod/from-process",
               "--for=jsonpath={.status.phase}=Succeeded", "--timeout=60s"});
  EXPECT_EQ(waited, 0) << wait_out << (*server)->output();
  auto [logged, log] = kubectl({"logs", "-n", "default", "from-process"});
  EXPECT_EQ(logged, 0);
  EXPECT_EQ(log, "hello from a process\n");
}

}  // namespace
}  // namespace kubetest
}  // namespace kiln
