// End to end: the same pipeline (a stash, two run tasks in a busybox image
// passing artifacts, an unstash) through `kiln run` on the local sandbox
// and through `kiln run --executor kubernetes` on the API double with the
// simulated kubelet (pods really run, in their images, with kiln's agent
// image from the test registry fetching inputs from and uploading outputs
// to the run's own agent blob endpoint) gives the same output artifacts
// (tree digests), the same task logs and the same unstashed files.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "engine/service/client.h"
#include "gtest/gtest.h"
#include "kube/names.h"
#include "nlohmann/json.hpp"
#include "tests/kube/pod_cluster.h"

namespace kiln::kubetest {
namespace {

using json = nlohmann::json;

constexpr char kPipeline[] = R"(name: e2e
tasks:
  - name: stash-words
    stash: {artifact: words, from: words}
  - name: shout
    needs: [stash-words]
    run:
      image: BUSYBOX
      command: [/bin/sh, -c, 'mkdir -p out && tr a-z A-Z < words/greeting.txt > out/upper.txt && cat out/upper.txt && echo shout done']
    inputs: [{artifact: words, path: words}]
    outputs:
      - {artifact: loud, paths: [out]}
  - name: count
    needs: [shout]
    run:
      image: BUSYBOX
      command: [/bin/sh, -c, 'wc -c < out/upper.txt > count.txt && cat count.txt && echo to stderr >&2']
    inputs: [loud]
    outputs:
      - {artifact: counted, paths: [count.txt]}
  - name: unstash-result
    needs: [count]
    unstash: {artifact: loud, to: result}
)";

std::string ReadText(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

struct RunRecord {
  int exit_code = -1;
  std::string err;
  std::map<std::string, std::map<std::string, std::string>> outputs;
  std::map<std::string, std::vector<std::string>> logs;  // task -> lines
  std::string result_file;                               // unstashed
};

class KubeEndToEndTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto cluster = PodCluster::Get();
    ASSERT_TRUE(cluster.ok()) << cluster.status();
    cluster_ = *cluster;
    kiln_ = absl::StrCat(std::getenv("TEST_SRCDIR"), "/",
                         std::getenv("TEST_WORKSPACE"), "/kiln");
    char tmpl[] = "/tmp/kiln-e2e-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    kubeconfig_ = dir_ + "/kubeconfig";
    ASSERT_TRUE(cluster_->server()->WriteKubeconfig(kubeconfig_, "ci").ok());
    const std::string& busybox = cluster_->busybox_image();
    registry_ = busybox.substr(0, busybox.find('/'));
  }
  void TearDown() override {
    if (!dir_.empty()) {
      pid_t pid = fork();
      if (pid == 0) {
        execl("/bin/rm", "rm", "-rf", dir_.c_str(),
              static_cast<char*>(nullptr));
        _exit(127);
      }
      waitpid(pid, nullptr, 0);
    }
  }

  // A fresh copy of the pipeline's directory; returns the pipeline file.
  std::string Source(const std::string& name) {
    std::string src = dir_ + "/" + name;
    EXPECT_EQ(mkdir(src.c_str(), 0755), 0);
    EXPECT_EQ(mkdir((src + "/words").c_str(), 0755), 0);
    std::ofstream(src + "/words/greeting.txt") << "hello from kiln\n";
    std::ofstream(src + "/pipeline.yaml") << absl::StrReplaceAll(
        kPipeline, {{"BUSYBOX", cluster_->busybox_image()}});
    return src + "/pipeline.yaml";
  }

  // Runs the pipeline from a fresh source copy `name` on the store
  // `store` ("" = its own).
  RunRecord Run(const std::string& name, std::vector<std::string> extra,
                const std::string& store = "") {
    RunRecord r;
    std::string pipeline = Source(name);
    std::vector<std::string> args = {
        kiln_,
        "run",
        pipeline,
        "--json",
        "--store",
        dir_ + "/store-" + (store.empty() ? name : store),
        "--insecure-registry",
        registry_};
    args.insert(args.end(), extra.begin(), extra.end());
    std::string out = dir_ + "/" + name + ".out";
    std::string err = dir_ + "/" + name + ".err";
    pid_t pid = fork();
    if (pid == 0) {
      int o = open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      int e = open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      dup2(o, 1);
      dup2(e, 2);
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
      argv.push_back(nullptr);
      execv(kiln_.c_str(), argv.data());
      _exit(127);
    }
    int status = 0;
    absl::Time deadline = absl::Now() + absl::Minutes(4);
    while (waitpid(pid, &status, WNOHANG) == 0) {
      if (absl::Now() > deadline) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        ADD_FAILURE() << name << ": kiln run did not finish";
        break;
      }
      absl::SleepFor(absl::Milliseconds(50));
    }
    r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    r.err = ReadText(err);
    for (absl::string_view line : absl::StrSplit(ReadText(out), '\n')) {
      json e = json::parse(line, nullptr, false);
      if (e.is_discarded() || !e.is_object()) continue;
      if (e.contains("log")) {
        r.logs[e["log"].value("task", "")].push_back(
            e["log"].value("text", ""));
      }
      if (e.contains("task_state") && e["task_state"].contains("outputs")) {
        for (const auto& [k, v] : e["task_state"]["outputs"].items()) {
          r.outputs[e["task_state"].value("task", "")][k] = v;
        }
      }
    }
    r.result_file = ReadText(dir_ + "/" + name + "/result/out/upper.txt");
    return r;
  }

  PodCluster* cluster_ = nullptr;
  std::string kiln_, dir_, kubeconfig_, registry_;
};

TEST_F(KubeEndToEndTest, PodsGiveTheSameArtifactsAndLogsAsTheLocalSandbox) {
  RunRecord local = Run("local", {});
  ASSERT_EQ(local.exit_code, 0) << local.err;
  const int pods_before = cluster_->kubelet()->pods_started();
  RunRecord pods =
      Run("pods", {"--executor", "kubernetes", "--kube-agent-image",
                   cluster_->agent_image(), "--kubeconfig", kubeconfig_});
  ASSERT_EQ(pods.exit_code, 0) << pods.err;
  // Both run tasks ran as pods (the stash and unstash run in kiln itself).
  EXPECT_EQ(cluster_->kubelet()->pods_started() - pods_before, 2);

  ASSERT_TRUE(local.outputs.count("shout")) << local.err;
  ASSERT_TRUE(local.outputs.count("count")) << local.err;
  EXPECT_EQ(pods.outputs["shout"], local.outputs["shout"]);
  EXPECT_EQ(pods.outputs["count"], local.outputs["count"]);
  EXPECT_EQ(local.logs["shout"],
            (std::vector<std::string>{"HELLO FROM KILN", "shout done"}));
  EXPECT_EQ(pods.logs["shout"], local.logs["shout"]);
  // A pod's log merges stdout and stderr: compare the lines as sets.
  std::vector<std::string> a = local.logs["count"], b = pods.logs["count"];
  std::sort(a.begin(), a.end());
  std::sort(b.begin(), b.end());
  EXPECT_EQ(a, (std::vector<std::string>{"16", "to stderr"}));
  EXPECT_EQ(b, a);
  EXPECT_EQ(local.result_file, "HELLO FROM KILN\n");
  EXPECT_EQ(pods.result_file, local.result_file);

  // Again on pods: every task is a cache hit, no pod is created.
  const int pods_after = cluster_->kubelet()->pods_started();
  std::vector<std::string> again_args = {
      "--executor",         "kubernetes",
      "--kube-agent-image", cluster_->agent_image(),
      "--kubeconfig",       kubeconfig_};
  // Same store as the pods run: a second source copy under another name
  // would be another store, so re-run with the pods store explicitly.
  again_args.push_back("--store");
  again_args.push_back(dir_ + "/store-pods");
  RunRecord again = Run("again", again_args);
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(cluster_->kubelet()->pods_started(), pods_after);
  EXPECT_EQ(again.outputs["shout"], local.outputs["shout"]);
}

// kill -9 of `kiln serve` while its task's pod really runs (the simulated
// kubelet, the agent image): the restarted server (same store, so the same
// agent token, at the same --agent-listen port) keeps and re-attaches the
// pod, whose agent then uploads its output to it; a downstream pod fetches
// that output; the run succeeds, and the slow task had exactly one pod.
constexpr char kSlowPipeline[] = R"(name: slow
options: {executor: kubernetes}
tasks:
  - name: slow
    run:
      image: BUSYBOX
      command: [/bin/sh, -c, 'echo started; sleep 8; mkdir -p out && echo made across a restart > out/made.txt; echo finished']
    outputs:
      - {artifact: made, paths: [out]}
  - name: check
    needs: [slow]
    run:
      image: BUSYBOX
      command: [/bin/sh, -c, 'cat out/made.txt']
    inputs: [made]
)";

int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

class KubeServeKillTest : public KubeEndToEndTest {
 protected:
  void TearDown() override {
    if (serve_ > 0) {
      kill(serve_, SIGKILL);
      waitpid(serve_, nullptr, 0);
    }
    KubeEndToEndTest::TearDown();
  }
  void StartServe() {
    std::string out = absl::StrCat(dir_, "/serve.out.", starts_);
    err_ = absl::StrCat(dir_, "/serve.err.", starts_);
    ++starts_;
    std::vector<std::string> args = {kiln_,
                                     "serve",
                                     "--store",
                                     dir_ + "/store",
                                     "--listen",
                                     "unix:" + dir_ + "/kiln.sock",
                                     "--grace",
                                     "5s",
                                     "--insecure-registry",
                                     registry_,
                                     "--kube-agent-image",
                                     cluster_->agent_image(),
                                     "--kubeconfig",
                                     kubeconfig_,
                                     "--agent-listen",
                                     absl::StrCat("127.0.0.1:", port_)};
    serve_ = fork();
    if (serve_ == 0) {
      int o = open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      int e = open(err_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      dup2(o, 1);
      dup2(e, 2);
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
      argv.push_back(nullptr);
      execv(kiln_.c_str(), argv.data());
      _exit(127);
    }
    for (int i = 0; i < 600; ++i) {
      if (absl::StrContains(ReadText(out), "serving on")) return;
      absl::SleepFor(absl::Milliseconds(50));
    }
    FAIL() << "kiln serve did not start: " << ReadText(err_);
  }
  service::KilnClient Client() {
    service::ClientOptions options;
    options.server = "unix:" + dir_ + "/kiln.sock";
    return service::KilnClient(options);
  }
  // Whether a pod of task `task` has its task container running.
  bool TaskRunning(const std::string& task) {
    auto pods = cluster_->Client()->List(kube::PodsPath("ci"), {});
    if (!pods.ok()) return false;
    for (const json& p : (*pods)["items"]) {
      if (p["metadata"]["labels"].value("kiln.dev/task", "") != task) continue;
      for (const json& c :
           p["status"].value("containerStatuses", json::array())) {
        if (c.value("name", "") == "task" && c.contains("state") &&
            c["state"].contains("running")) {
          return true;
        }
      }
    }
    return false;
  }

  pid_t serve_ = -1;
  int starts_ = 0;
  int port_ = FreePort();
  std::string err_;
};

TEST_F(KubeServeKillTest, KillNineWhileAPodRunsThenTheRestartedServerFinishes) {
  ASSERT_NO_FATAL_FAILURE(StartServe());
  const int pods_before = cluster_->kubelet()->pods_started();
  v1::SubmitRunRequest submit;
  submit.set_yaml(absl::StrReplaceAll(
      kSlowPipeline, {{"BUSYBOX", cluster_->busybox_image()}}));
  std::string run_id;
  {
    service::KilnClient client = Client();
    v1::SubmitRunResponse response;
    auto context = client.NewContext(absl::Seconds(30));
    grpc::Status status =
        client.stub().SubmitRun(context.get(), submit, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
    run_id = response.run_id();
  }
  bool running = false;
  for (int i = 0; i < 600 && !running; ++i) {
    running = TaskRunning("slow");
    if (!running) absl::SleepFor(absl::Milliseconds(50));
  }
  ASSERT_TRUE(running) << ReadText(err_);
  absl::SleepFor(absl::Milliseconds(500));  // "started" is printed
  kill(serve_, SIGKILL);
  waitpid(serve_, nullptr, 0);
  serve_ = -1;
  ASSERT_NO_FATAL_FAILURE(StartServe());

  std::vector<std::string> lines;
  absl::StatusOr<v1::RunState> state;
  {
    service::KilnClient client = Client();
    state = client.Watch(
        run_id, 0,
        [&](const v1::RunEvent& e) {
          if (e.has_log()) {
            lines.push_back(absl::StrCat(e.log().task(), ": ", e.log().text()));
          }
          // Why a task or the run ended otherwise, for a failure's message.
          if (e.has_task_state() && !e.task_state().reason().empty()) {
            lines.push_back(
                absl::StrCat("[", e.task_state().task(), " ",
                             v1::TaskState_Name(e.task_state().state()), ": ",
                             e.task_state().reason(), "]"));
          }
          if (e.has_run_state() && !e.run_state().reason().empty()) {
            lines.push_back(
                absl::StrCat("[run: ", e.run_state().reason(), "]"));
          }
        },
        absl::Seconds(120));
  }
  ASSERT_TRUE(state.ok()) << state.status();
  EXPECT_EQ(*state, v1::RUN_SUCCEEDED)
      << ReadText(err_) << ::testing::PrintToString(lines);
  // One pod for `slow` (adopted, not made again), one for `check`.
  EXPECT_EQ(cluster_->kubelet()->pods_started() - pods_before, 2)
      << ReadText(err_);
  EXPECT_EQ(std::count(lines.begin(), lines.end(), "slow: finished"), 1)
      << ::testing::PrintToString(lines);
  // The output the pod uploaded to the restarted server reached `check`.
  EXPECT_EQ(
      std::count(lines.begin(), lines.end(), "check: made across a restart"), 1)
      << ::testing::PrintToString(lines);
}

}  // namespace
}  // namespace kiln::kubetest
