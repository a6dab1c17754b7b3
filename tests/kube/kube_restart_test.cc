// kill -9 of `kiln serve` while a task runs as a pod: the restarted server
// keeps the pod (its run is unfinished: the orphan sweep must not delete
// it), re-attaches it (no second pod for the attempt), reads its log and
// result, and the run succeeds with them. The pod's agent reaches the
// restarted server with the same token (kept in the store) at the same
// endpoint.
//
// The kubelet is scripted in this test (tests/kube/kube_cli_fixture.h):
// it plays the pod's containers and the agent's result.
#include <sys/wait.h>

#include <atomic>

#include "absl/strings/match.h"
#include "engine/service/client.h"
#include "tests/kube/kube_cli_fixture.h"

namespace kiln::testing {
namespace {

class KubeRestartTest : public KubeCliTest {
 protected:
  void TearDown() override {
    if (serve_ > 0) {
      kill(serve_, SIGKILL);
      waitpid(serve_, nullptr, 0);
    }
    KubeCliTest::TearDown();
  }

  void StartServe() {
    std::string out = absl::StrCat(dir_, "/serve.out.", starts_);
    std::string err = absl::StrCat(dir_, "/serve.err.", starts_);
    ++starts_;
    serve_ =
        Spawn({"serve", "--store", dir_ + "/store", "--listen",
               "unix:kiln.sock", "--grace", "5s", "--kube-agent-image",
               kAgentImage, "--kubeconfig", kubeconfig_, "--namespace", kNs,
               "--agent-listen", absl::StrCat("127.0.0.1:", agent_port_)},
              out, err);
    for (int i = 0; i < 600; ++i) {
      if (absl::StrContains(ReadText(out), "serving on")) {
        serve_err_ = err;
        return;
      }
      int status;
      if (waitpid(serve_, &status, WNOHANG) == serve_) {
        serve_ = -1;
        FAIL() << "kiln serve exited: " << ReadText(err);
      }
      absl::SleepFor(absl::Milliseconds(50));
    }
    FAIL() << "kiln serve did not start: " << ReadText(err);
  }

  service::KilnClient Client() {
    service::ClientOptions options;
    options.server = "unix:kiln.sock";
    return service::KilnClient(options);
  }

  pid_t serve_ = -1;
  int starts_ = 0;
  int agent_port_ = FreePort();
  std::string serve_err_;
};

TEST_F(KubeRestartTest, KillNineMidTaskReattachesThePodAndFinishesTheRun) {
  ASSERT_NO_FATAL_FAILURE(StartServe());
  std::string token_file = dir_ + "/store/kubernetes/agent-token";
  std::string token = ReadText(token_file);
  ASSERT_FALSE(token.empty());
  struct stat st;
  ASSERT_EQ(stat(token_file.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  v1::SubmitRunRequest submit;
  submit.set_yaml(
      absl::StrCat("name: slow-pod\n"
                   "options: {executor: kubernetes}\n"
                   "tasks:\n"
                   "  - name: build\n"
                   "    run:\n"
                   "      image: ",
                   kTaskImage,
                   "\n"
                   "      command: [/bin/sh, -c, 'make']\n"));
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
  // The pod runs (its agent reached the endpoint); kill -9 the server.
  ASSERT_TRUE(kubelet_->WaitRunning(1, absl::Seconds(60)))
      << ReadText(serve_err_);
  kill(serve_, SIGKILL);
  waitpid(serve_, nullptr, 0);
  serve_ = -1;
  ASSERT_EQ(PodNames().size(), 1u);

  ASSERT_NO_FATAL_FAILURE(StartServe());
  // The restarted server kept the pod of the unfinished run and its token.
  EXPECT_EQ(ReadText(token_file), token);
  EXPECT_TRUE(absl::StrContains(
      ReadText(serve_err_),
      "0 pod(s) of finished runs deleted, 1 of unfinished runs kept"))
      << ReadText(serve_err_);
  ASSERT_EQ(PodNames().size(), 1u);
  // The pod's agent reaches the restarted server with the token it has.
  {
    service::ClientOptions options;
    options.server = absl::StrCat("127.0.0.1:", agent_port_);
    options.token = token.substr(0, token.find('\n'));
    service::KilnClient agent(options);
    EXPECT_TRUE(agent.UploadBytes("after the restart").ok());
  }

  // The task ends; the restarted server collects the pod's result.
  kubelet_->Release();
  std::vector<std::string> lines;
  absl::StatusOr<v1::RunState> state;
  {
    service::KilnClient client = Client();
    state = client.Watch(
        run_id, 0,
        [&](const v1::RunEvent& e) {
          if (e.has_log()) lines.push_back(e.log().text());
        },
        absl::Seconds(60));
  }
  ASSERT_TRUE(state.ok()) << state.status() << "\n" << ReadText(serve_err_);
  EXPECT_EQ(*state, v1::RUN_SUCCEEDED) << ReadText(serve_err_);
  // Exactly one pod for the task, whose log both servers followed: the
  // line it printed before the kill and the one after, each once.
  std::vector<json> pods = kubelet_->created();
  ASSERT_EQ(pods.size(), 1u) << pods[0]["metadata"].dump() << "\n"
                             << pods.back()["metadata"].dump();
  const std::string pod = pods[0]["metadata"]["name"];
  EXPECT_EQ(std::count(lines.begin(), lines.end(), "finished in " + pod), 1)
      << ::testing::PrintToString(lines);
  EXPECT_GE(std::count(lines.begin(), lines.end(), "started in " + pod), 1)
      << ::testing::PrintToString(lines);
  // Collected and deleted.
  for (int i = 0; i < 100 && !PodNames().empty(); ++i) {
    absl::SleepFor(absl::Milliseconds(50));
  }
  EXPECT_TRUE(PodNames().empty());
}

// A run that finished while its pod stayed behind (kept): the next server
// deletes the pod at start; a pod of another store's kiln stays.
TEST_F(KubeRestartTest, AfterARestartPodsOfFinishedRunsAreDeleted) {
  ASSERT_NO_FATAL_FAILURE(StartServe());
  std::string instance = ReadText(dir_ + "/store/kubernetes/instance");
  instance = instance.substr(0, instance.find('\n'));
  kill(serve_, SIGKILL);
  waitpid(serve_, nullptr, 0);
  serve_ = -1;
  CreateKilnPod("stale", "run-that-is-not-recorded", instance);
  CreateKilnPod("foreign", "run-that-is-not-recorded", "kforeign");
  ASSERT_NO_FATAL_FAILURE(StartServe());
  EXPECT_TRUE(absl::StrContains(ReadText(serve_err_),
                                "1 pod(s) of finished runs deleted"))
      << ReadText(serve_err_);
  EXPECT_EQ(PodNames(), std::vector<std::string>{"foreign"});
}

TEST_F(KubeRestartTest, ServeRefusesAnAgentEndpointWithoutAFixedPort) {
  Result r =
      Kiln({"serve", "--store", dir_ + "/store", "--listen", "unix:kiln.sock",
            "--kube-agent-image", kAgentImage, "--kubeconfig", kubeconfig_,
            "--agent-listen", "127.0.0.1:0"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(absl::StrContains(r.err, "needs --agent-listen HOST:PORT"))
      << r.err;
}

}  // namespace
}  // namespace kiln::testing
