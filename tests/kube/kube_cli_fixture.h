// Shared by the tests of `kiln run|serve` with the kubernetes executor: the
// API server double in this process with a kubelet that plays each pod
// (scheduled, fetch done, task running with log lines, then — once the
// test releases it — the agent's result), and helpers to run the real
// `kiln` binary.
#ifndef KILN_TESTS_KUBE_KUBE_CLI_FIXTURE_H_
#define KILN_TESTS_KUBE_KUBE_CLI_FIXTURE_H_

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "base/mutex.h"
#include "engine/service/client.h"
#include "gtest/gtest.h"
#include "kube/client.h"
#include "kube/names.h"
#include "kube/testing/fake_api_server.h"
#include "nlohmann/json.hpp"

namespace kiln::testing {

using json = nlohmann::json;
using kube::testing::FakeApiServer;

inline constexpr char kNs[] = "ci";
inline constexpr char kAgentImage[] =
    "registry.test/kiln-agent@sha256:"
    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
inline constexpr char kTaskImage[] =
    "registry.test/busybox@sha256:"
    "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210";

inline std::string ReadText(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

inline void WriteText(const std::string& path, const std::string& text) {
  std::ofstream(path) << text;
}

// A loopback TCP port that was free a moment ago.
inline int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

// Plays every pod the executor creates: scheduled, kiln-fetch done, task
// running, "started in <pod>"; with the agent's env it uploads a blob to
// the endpoint the pod names with the token of the Secret it names (over
// TLS verified with KILN_AGENT_CA when the pod has it, as the agent
// would); then waits for Release() and ends with "finished in
// <pod>" and the agent's EXITED 0 result.
class PlayingKubelet {
 public:
  explicit PlayingKubelet(FakeApiServer* server) : server_(server) {
    FakeApiServer::KubeletHooks hooks;
    hooks.on_pod_created = [this](const json& pod) {
      MutexLock lock(&mu_);
      created_.push_back(pod);
      threads_.emplace_back([this, pod] { Play(pod); });
    };
    hooks.on_pod_deleting = [this](const json& pod) {
      // The containers stop at once.
      std::string name = pod["metadata"]["name"];
      MutexLock lock(&mu_);
      threads_.emplace_back(
          [this, name] { (void)server_->FinalizePodDeletion(kNs, name); });
    };
    server_->SetKubelet(hooks);
  }
  ~PlayingKubelet() {
    Release();
    std::vector<std::thread> threads;
    {
      MutexLock lock(&mu_);
      stopping_ = true;
      threads.swap(threads_);
    }
    for (auto& t : threads) t.join();
    server_->SetKubelet({});
  }

  void Release() {
    MutexLock lock(&mu_);
    released_ = true;
  }
  std::vector<json> created() {
    MutexLock lock(&mu_);
    return created_;
  }
  // Pods that reached "task running".
  int running() {
    MutexLock lock(&mu_);
    return running_;
  }
  bool WaitRunning(int n, absl::Duration d) {
    MutexLock lock(&mu_);
    return mu_.AwaitWithDeadline(
        [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return running_ >= n; },
        absl::Now() + d);
  }
  // What the pods' uploads to the agent endpoint answered ("" = OK).
  std::vector<std::string> uploads() {
    MutexLock lock(&mu_);
    return uploads_;
  }

 private:
  static std::string Env(const json& pod, const std::string& name) {
    json env = json::array();
    if (pod.contains("spec") && pod["spec"].contains("containers") &&
        !pod["spec"]["containers"].empty()) {
      env = pod["spec"]["containers"][0].value("env", json::array());
    }
    for (const json& e : env) {
      if (e["name"] == name && e.contains("value")) return e["value"];
    }
    return "";
  }
  std::string SecretToken(const json& pod) {
    for (const json& e : pod["spec"]["containers"][0]["env"]) {
      if (e["name"] != "KILN_AGENT_TOKEN") continue;
      const json& ref = e["valueFrom"]["secretKeyRef"];
      auto secret = server_->GetObject(
          absl::StrCat("/api/v1/namespaces/", kNs, "/secrets/",
                       ref["name"].get<std::string>()));
      if (!secret.ok()) return "";
      std::string token;
      absl::Base64Unescape(
          (*secret)["data"][ref["key"].get<std::string>()].get<std::string>(),
          &token);
      return token;
    }
    return "";
  }
  void Mutate(const std::string& name, const std::function<void(json&)>& fn) {
    (void)server_->MutatePod(kNs, name, fn);
  }
  void Play(json pod) {
    const std::string name = pod["metadata"]["name"];
    // Only pods of kiln's executor (with an agent) are played.
    if (Env(pod, "KILN_AGENT_SERVER").empty()) return;
    Mutate(name, [](json& p) {
      p["spec"]["nodeName"] = "node-1";
      p["status"]["phase"] = "Pending";
    });
    Mutate(name, [](json& p) {
      p["status"]["initContainerStatuses"] = json::array(
          {{{"name", "kiln-fetch"},
            {"state",
             {{"terminated", {{"exitCode", 0}, {"reason", "Completed"}}}}}}});
    });
    // The agent's channel: the endpoint and token the pod was given.
    {
      service::ClientOptions options;
      options.server = Env(pod, "KILN_AGENT_SERVER");
      options.token = SecretToken(pod);
      options.tls_roots = Env(pod, "KILN_AGENT_CA");
      service::KilnClient agent(options);
      absl::Status up = agent.UploadBytes(absl::StrCat("uploaded by ", name));
      MutexLock lock(&mu_);
      uploads_.push_back(up.ok() ? "" : up.ToString());
    }
    Mutate(name, [](json& p) {
      p["status"]["phase"] = "Running";
      p["status"]["containerStatuses"] =
          json::array({{{"name", "task"},
                        {"image", p["spec"]["containers"][0]["image"]},
                        {"state", {{"running", json::object()}}}}});
    });
    server_->AppendLog(kNs, name, "task", absl::StrCat("started in ", name),
                       absl::Now());
    {
      MutexLock lock(&mu_);
      ++running_;
      mu_.Await([&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return released_ || stopping_;
      });
      if (stopping_ && !released_) return;
    }
    server_->AppendLog(kNs, name, "task", absl::StrCat("finished in ", name),
                       absl::Now());
    server_->EndLog(kNs, name, "task");
    json result = {{"v", 1}, {"status", "EXITED"}, {"exit_code", 0}};
    Mutate(name, [&](json& p) {
      p["status"]["phase"] = "Succeeded";
      p["status"]["containerStatuses"] =
          json::array({{{"name", "task"},
                        {"state",
                         {{"terminated",
                           {{"exitCode", 0},
                            {"reason", "Completed"},
                            {"message", result.dump()}}}}}}});
    });
  }

  FakeApiServer* server_;
  Mutex mu_;
  std::vector<std::thread> threads_ ABSL_GUARDED_BY(mu_);
  std::vector<json> created_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> uploads_ ABSL_GUARDED_BY(mu_);
  int running_ ABSL_GUARDED_BY(mu_) = 0;
  bool released_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
};

class KubeCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    kiln_ = absl::StrCat(std::getenv("TEST_SRCDIR"), "/",
                         std::getenv("TEST_WORKSPACE"), "/kiln");
    static int counter = 0;
    dir_ = absl::StrCat(std::getenv("TEST_TMPDIR"), "/k", counter++);
    ASSERT_EQ(mkdir(dir_.c_str(), 0700), 0);
    // Socket paths are limited to 107 bytes: bind relative to dir_.
    ASSERT_EQ(chdir(dir_.c_str()), 0);
    kube::testing::FakeApiServerOptions options;
    options.initial_namespaces.push_back(kNs);
    auto server = FakeApiServer::Start(options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    kubeconfig_ = dir_ + "/kubeconfig";
    ASSERT_TRUE(server_->WriteKubeconfig(kubeconfig_, kNs).ok());
    // Answered once: the double is listening.
    ASSERT_TRUE(server_->GetObject("/api/v1/namespaces/ci").ok());
    kubelet_ = std::make_unique<PlayingKubelet>(server_.get());
  }
  void TearDown() override {
    kubelet_.reset();
    server_.reset();
  }

  struct Result {
    int exit_code = -1;
    std::string out, err;
  };
  // Runs `kiln ARGS...` to its end (at most `limit`).
  Result Kiln(const std::vector<std::string>& args,
              absl::Duration limit = absl::Seconds(120)) {
    static int n = 0;
    std::string out = absl::StrCat(dir_, "/out.", n),
                err = absl::StrCat(dir_, "/err.", n);
    ++n;
    pid_t pid = Spawn(args, out, err);
    Result r;
    absl::Time deadline = absl::Now() + limit;
    int status = 0;
    while (waitpid(pid, &status, WNOHANG) == 0) {
      if (absl::Now() > deadline) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        ADD_FAILURE() << "kiln did not finish in time";
        break;
      }
      absl::SleepFor(absl::Milliseconds(20));
    }
    r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    r.out = ReadText(out);
    r.err = ReadText(err);
    return r;
  }
  pid_t Spawn(const std::vector<std::string>& args, const std::string& out,
              const std::string& err) {
    pid_t pid = fork();
    if (pid == 0) {
      int o = open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      int e = open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      dup2(o, 1);
      dup2(e, 2);
      for (const auto& [k, v] : child_env_) setenv(k.c_str(), v.c_str(), 1);
      std::vector<char*> argv;
      argv.push_back(const_cast<char*>(kiln_.c_str()));
      for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
      argv.push_back(nullptr);
      execv(kiln_.c_str(), argv.data());
      _exit(127);
    }
    return pid;
  }

  // The pods in the namespace now.
  std::vector<std::string> PodNames() {
    std::vector<std::string> names;
    kube::ClusterConfig config;
    config.server = server_->url();
    auto client = kube::Client::Create(config);
    if (!client.ok()) return names;
    auto list = (*client)->List(kube::PodsPath(kNs), {});
    EXPECT_TRUE(list.ok()) << list.status();
    if (!list.ok()) return names;
    for (const json& p : (*list)["items"]) {
      names.push_back(p["metadata"]["name"]);
    }
    return names;
  }
  // Creates a pod as kiln labels it, of run `run_id`, with instance label
  // `instance`.
  void CreateKilnPod(const std::string& name, const std::string& run_id,
                     const std::string& instance) {
    kube::ClusterConfig config;
    config.server = server_->url();
    auto client = kube::Client::Create(config);
    ASSERT_TRUE(client.ok());
    json pod = {{"apiVersion", "v1"},
                {"kind", "Pod"},
                {"metadata",
                 {{"name", name},
                  {"labels",
                   {{"app.kubernetes.io/managed-by", "kiln"},
                    {"kiln.dev/instance", instance},
                    {"kiln.dev/run", run_id}}},
                  {"annotations", {{"kiln.dev/run-id", run_id}}}}},
                {"spec",
                 {{"containers",
                   json::array({{{"name", "task"}, {"image", kTaskImage}}})}}}};
    ASSERT_TRUE((*client)->Create(kube::PodsPath(kNs), pod).ok());
  }

  std::string kiln_, dir_, kubeconfig_;
  // Set in the environment of the kiln processes started.
  std::vector<std::pair<std::string, std::string>> child_env_;
  std::unique_ptr<FakeApiServer> server_;
  std::unique_ptr<PlayingKubelet> kubelet_;
};

}  // namespace kiln::testing

#endif  // KILN_TESTS_KUBE_KUBE_CLI_FIXTURE_H_
