// Deployment records end to end: the real `kiln run` deploys two versions
// to the API server double (with its rollout controller), `kiln env
// history|list` read the records, `kiln env rollback` re-applies the first
// version, and the real kubectl reads what the cluster holds after each step.
#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/deploy/deploy_fixture.h"

namespace kiln {
namespace {

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

class HistoryTest : public deploy_testing::DeployFixture {
 protected:
  void SetUp() override {
    DeployFixture::SetUp();
    if (HasFatalFailure()) return;
    StartRollouts();
    Write("src/pipeline.yaml", kPipeline);
    Write("src/k8s/kustomization.yaml", kKustomization);
  }

  void App(const std::string& image, const std::string& mode) {
    Write("src/k8s/app.yaml",
          absl::StrReplaceAll(kApp, {{"IMAGE", image}, {"MODE", mode}}));
  }

  using Result = deploy_testing::KilnResult;
  // The real kiln with `args` (+ --store), bounded in time.
  Result Kiln(const std::vector<std::string>& args) {
    return RunKiln(args, deploy_testing::Stderr::kSeparate);
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
    auto [rc, out] = DeployFixture::Kubectl(
        {"get", kind, name, "-n", "shop", "-o", "jsonpath=" + jsonpath});
    if (rc == -1) return "";  // kubectl did not run: already a failure
    EXPECT_EQ(rc, 0) << out;
    return out;
  }
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
