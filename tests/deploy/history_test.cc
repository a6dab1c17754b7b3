// Deployment records end to end: the real `kiln run` deploys two versions
// to the API server double (with its rollout controller), `kiln env
// history|list` read the records, `kiln env rollback` re-applies the first
// version, and the real kubectl reads what the cluster holds after each step.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kube/testing/fake_api_server.h"
#include "kube/testing/process.h"
#include "kube/testing/rollout.h"

namespace kiln {
namespace {

using kube::testing::FakeApiServer;
using ::testing::ContainsRegex;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

constexpr char kPipeline[] = R"(name: shop
tasks:
  - name: manifests
    render:
      kustomization: k8s
  - name: deploy
    needs: [manifests]
    deploy:
      environment: shop-preview
      kind: preview
      manifests: manifests
      namespace: shop
      wait: true
      wait_timeout: 30s
)";

constexpr char kKustomization[] = "resources: [app.yaml]\n";

// IMAGE and MODE are replaced per version.
constexpr char kApp[] = R"(apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      initContainers:
      - {name: init, image: "busybox:1"}
      containers:
      - {name: app, image: "IMAGE"}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
data: {mode: MODE}
)";

std::string ReadText(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

class HistoryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    kiln_ = absl::StrCat(std::getenv("TEST_SRCDIR"), "/",
                         std::getenv("TEST_WORKSPACE"), "/kiln");
    static int counter = 0;
    dir_ = absl::StrCat(std::getenv("TEST_TMPDIR"), "/h", counter++);
    std::filesystem::create_directories(dir_ + "/src/k8s");
    auto server = FakeApiServer::Start();
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    rollouts_ = kube::testing::RolloutController::Start(server_.get());
    kubeconfig_ = dir_ + "/kubeconfig";
    ASSERT_TRUE(server_->WriteKubeconfig(kubeconfig_, "default").ok());
    Write("src/pipeline.yaml", kPipeline);
    Write("src/k8s/kustomization.yaml", kKustomization);
  }
  void TearDown() override {
    rollouts_.reset();
    server_.reset();
  }

  void Write(const std::string& rel, const std::string& text) {
    std::ofstream(dir_ + "/" + rel) << text;
  }
  void App(const std::string& image, const std::string& mode) {
    Write("src/k8s/app.yaml",
          absl::StrReplaceAll(kApp, {{"IMAGE", image}, {"MODE", mode}}));
  }

  struct Result {
    int exit_code = -1;
    std::string out;  // stdout
    std::string err;  // stderr
  };
  // The real kiln with `args` (+ --store), bounded in time.
  Result Kiln(std::vector<std::string> args) {
    args.push_back("--store");
    args.push_back(dir_ + "/store");
    static int n = 0;
    std::string out = absl::StrCat(dir_, "/out.", n), err = out + ".err";
    ++n;
    pid_t pid = fork();
    if (pid == 0) {
      int fd = open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      int efd = open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      dup2(fd, 1);
      dup2(efd, 2);
      unsetenv("KUBECONFIG");
      setenv("HOME", dir_.c_str(), 1);
      std::vector<char*> argv;
      argv.push_back(const_cast<char*>(kiln_.c_str()));
      for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
      argv.push_back(nullptr);
      execv(kiln_.c_str(), argv.data());
      _exit(127);
    }
    Result r;
    absl::Time deadline = absl::Now() + absl::Seconds(120);
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
  Result Deploy() {
    return Kiln(
        {"run", dir_ + "/src/pipeline.yaml", "--kubeconfig", kubeconfig_});
  }
  // The lines of `kiln env history shop-preview` after the header.
  std::vector<std::string> History() {
    Result r = Kiln({"env", "history", "shop-preview"});
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    std::vector<std::string> lines = absl::StrSplit(r.out, '\n');
    EXPECT_THAT(lines.front(), StartsWith("ID "));
    std::vector<std::string> out;
    for (size_t i = 1; i < lines.size(); ++i) {
      if (!lines[i].empty() && lines[i][0] != ' ') out.push_back(lines[i]);
    }
    return out;
  }

  // `kubectl get ... -o jsonpath=PATH` in namespace shop.
  std::string Kubectl(const std::string& kind, const std::string& name,
                      const std::string& jsonpath) {
    auto r = kube::testing::RunProcess(
        {"kubectl", "--kubeconfig", kubeconfig_, "--cache-dir",
         dir_ + "/kube-cache", "get", kind, name, "-n", "shop", "-o",
         "jsonpath=" + jsonpath},
        {{"HOME", dir_}, {"KUBECONFIG", kubeconfig_}}, absl::Seconds(60));
    EXPECT_TRUE(r.ok()) << r.status();
    if (!r.ok()) return "";
    EXPECT_EQ(r->first, 0) << r->second;
    return r->second;
  }

  std::string kiln_, dir_, kubeconfig_;
  std::unique_ptr<FakeApiServer> server_;
  std::unique_ptr<kube::testing::RolloutController> rollouts_;
};

TEST_F(HistoryTest, RecordsDeploymentsAndRollsBack) {
  App("nginx:1", "v1");
  Result r = Deploy();
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  App("nginx:2", "v2");
  r = Deploy();
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_EQ(Kubectl("configmap", "settings", "{.data.mode}"), "v2");

  // Both, newest first, with what they applied.
  std::vector<std::string> history = History();
  ASSERT_EQ(history.size(), 2u);
  EXPECT_THAT(history[0], StartsWith("2 "));
  EXPECT_THAT(history[0], HasSubstr("succeeded"));
  EXPECT_THAT(history[0], ContainsRegex(" shop +r[0-9a-f-]+/deploy "));
  EXPECT_THAT(history[0], HasSubstr("busybox:1,nginx:2"));
  EXPECT_THAT(history[1], StartsWith("1 "));
  EXPECT_THAT(history[1], HasSubstr("busybox:1,nginx:1"));

  Result list = Kiln({"env", "list"});
  ASSERT_EQ(list.exit_code, 0) << list.out << list.err;
  EXPECT_THAT(list.out, ContainsRegex("\nshop-preview +shop +2 +succeeded .*"
                                      "busybox:1,nginx:2"));

  // Back to v1: the previous successful deployment, by default.
  Result rb =
      Kiln({"env", "rollback", "shop-preview", "--kubeconfig", kubeconfig_});
  ASSERT_EQ(rb.exit_code, 0) << rb.out << rb.err;
  EXPECT_THAT(rb.out, HasSubstr("to deployment 1: deployment 3"));
  EXPECT_THAT(rb.out, HasSubstr("Deployment/web is ready"));
  EXPECT_EQ(Kubectl("configmap", "settings", "{.data.mode}"), "v1");
  EXPECT_EQ(
      Kubectl("deployment", "web", "{.spec.template.spec.containers[0].image}"),
      "nginx:1");
  // Applied as a deploy applies: the kiln manager, the environment label.
  EXPECT_THAT(
      Kubectl("configmap", "settings", "{.metadata.managedFields[*].manager}"),
      HasSubstr("kiln"));
  EXPECT_EQ(Kubectl("configmap", "settings",
                    "{.metadata.labels.kiln\\.dev/environment}"),
            "shop-preview");

  history = History();
  ASSERT_EQ(history.size(), 3u);
  EXPECT_THAT(history[0], StartsWith("3 "));
  EXPECT_THAT(history[0], HasSubstr("rollback to 1"));
  EXPECT_THAT(history[0], HasSubstr("busybox:1,nginx:1"));

  // A failed rollout is recorded too, with its reason; the default
  // rollback then goes to the newest successful deployment (v1 again).
  App("registry.example/kiln-test-crashloop:1", "v3");
  r = Deploy();
  ASSERT_NE(r.exit_code, 0) << r.out << r.err;
  Result failed = Kiln({"env", "history", "shop-preview", "--limit", "1"});
  ASSERT_EQ(failed.exit_code, 0) << failed.err;
  EXPECT_THAT(failed.out, ContainsRegex("\n4 +failed "));
  EXPECT_THAT(failed.out, HasSubstr("reason: Deployment/web: rollout failed"));
  EXPECT_THAT(failed.out, Not(HasSubstr("\n3 ")));
  EXPECT_EQ(Kubectl("configmap", "settings", "{.data.mode}"), "v3");
  rb = Kiln({"env", "rollback", "shop-preview", "--kubeconfig", kubeconfig_});
  ASSERT_EQ(rb.exit_code, 0) << rb.out << rb.err;
  EXPECT_THAT(rb.out, HasSubstr("to deployment 3: deployment 5"));
  EXPECT_EQ(Kubectl("configmap", "settings", "{.data.mode}"), "v1");

  // An explicit target.
  rb = Kiln({"env", "rollback", "shop-preview", "--to", "2", "--kubeconfig",
             kubeconfig_});
  ASSERT_EQ(rb.exit_code, 0) << rb.out << rb.err;
  EXPECT_EQ(Kubectl("configmap", "settings", "{.data.mode}"), "v2");
}

TEST_F(HistoryTest, ClearErrors) {
  Result none = Kiln({"env", "history", "shop-preview"});
  EXPECT_EQ(none.exit_code, 1);
  EXPECT_THAT(none.err, HasSubstr("no deployment of environment "
                                  "\"shop-preview\" is recorded"));

  App("nginx:1", "v1");
  Result r = Deploy();
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;

  Result unknown =
      Kiln({"env", "rollback", "nope", "--kubeconfig", kubeconfig_});
  EXPECT_EQ(unknown.exit_code, 1);
  EXPECT_THAT(unknown.err,
              HasSubstr("no deployment of environment \"nope\" is recorded"));
  Result only_one =
      Kiln({"env", "rollback", "shop-preview", "--kubeconfig", kubeconfig_});
  EXPECT_EQ(only_one.exit_code, 1);
  EXPECT_THAT(only_one.err, HasSubstr("no successful deployment with other "
                                      "manifests before deployment 1"));
  Result no_id = Kiln({"env", "rollback", "shop-preview", "--to", "99",
                       "--kubeconfig", kubeconfig_});
  EXPECT_EQ(no_id.exit_code, 1);
  EXPECT_THAT(no_id.err, HasSubstr("no deployment 99"));
  Result bad_id = Kiln({"env", "rollback", "shop-preview", "--to", "x"});
  EXPECT_EQ(bad_id.exit_code, 2);

  // The recorded manifests are gone from the store (its blobs deleted by
  // hand: gc would keep them): refused before anything is applied.
  std::filesystem::remove_all(dir_ + "/store/cas");
  std::filesystem::remove_all(dir_ + "/store/artifacts");
  Result gone = Kiln({"env", "rollback", "shop-preview", "--to", "1",
                      "--kubeconfig", kubeconfig_});
  EXPECT_EQ(gone.exit_code, 1);
  EXPECT_THAT(gone.err, HasSubstr("are no longer in the store"));
  Result history = Kiln({"env", "history", "shop-preview"});
  EXPECT_THAT(history.out, Not(HasSubstr("\n2 ")));  // nothing recorded
}

}  // namespace
}  // namespace kiln
