// Deploy tasks end to end: the real `kiln run` renders a kustomization and
// deploys it to the API server double (in this process, with the simulated
// rollout controller); the real kubectl then reads what was applied.
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kube/testing/rollout.h"
#include "kube/testing/server_side_apply.h"
#include "nlohmann/json.hpp"
#include "tests/deploy/deploy_fixture.h"

namespace kiln {
namespace {

using json = nlohmann::json;
using deploy_testing::KilnResult;
using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::Not;

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

constexpr char kKustomization[] = R"(resources: [app.yaml]
)";

// IMAGE and REPLICAS are replaced per test.
constexpr char kApp[] = R"(apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: REPLICAS
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - {name: app, image: "IMAGE"}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
data: {mode: fast}
)";

class DeployTest : public deploy_testing::DeployFixture {
 protected:
  void SetUp() override {
    DeployFixture::SetUp();
    if (HasFatalFailure()) return;
    StartRollouts();
    Write("src/pipeline.yaml", kPipeline);
    Write("src/k8s/kustomization.yaml", kKustomization);
    App("nginx:1", 2);
  }

  void App(const std::string& image, int replicas,
           const std::string& extra = "") {
    Write("src/k8s/app.yaml",
          absl::StrReplaceAll(
              kApp, {{"IMAGE", image}, {"REPLICAS", absl::StrCat(replicas)}}) +
              extra);
  }

  // `kiln run` of the pipeline; stderr is in the result's `out`.
  KilnResult Kiln() {
    return RunKiln(
        {"run", dir_ + "/src/pipeline.yaml", "--kubeconfig", kubeconfig_},
        deploy_testing::Stderr::kMerged);
  }

  // `kubectl get KIND NAME -n shop -o json --show-managed-fields`.
  json Get(const std::string& kind, const std::string& name) {
    auto [rc, out] = Kubectl({"get", kind, name, "-n", "shop", "-o", "json",
                              "--show-managed-fields"});
    EXPECT_EQ(rc, 0) << out;
    json j = json::parse(out, nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << out;
    return j;
  }
  static std::vector<std::string> Managers(const json& obj) {
    std::vector<std::string> out;
    for (const json& e : obj["metadata"]["managedFields"]) {
      out.push_back(absl::StrCat(e["manager"].get<std::string>(), "/",
                                 e["operation"].get<std::string>()));
    }
    return out;
  }

  // kind/name -> metadata.resourceVersion of the three objects of kApp.
  std::map<std::string, std::string> ResourceVersions() {
    std::map<std::string, std::string> out;
    for (const char* kind : {"deployment", "service", "configmap"}) {
      const char* name = std::string(kind) == "configmap" ? "settings" : "web";
      out[absl::StrCat(kind, "/", name)] =
          Get(kind, name)["metadata"]["resourceVersion"].get<std::string>();
    }
    return out;
  }
  void Pipeline(const std::string& extra) {
    Write("src/pipeline.yaml",
          absl::StrReplaceAll(kPipeline,
                              {{"wait: true", "wait: true\n      " + extra}}));
  }
};

TEST_F(DeployTest, AppliesLabelledObjectsThenUpdatesThem) {
  KilnResult r = Kiln();
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_THAT(r.out, HasSubstr("Deployment/web is ready"));
  json web = Get("deployment", "web");
  EXPECT_EQ(web["metadata"]["labels"]["kiln.dev/environment"], "shop-preview");
  EXPECT_EQ(
      web["spec"]["template"]["metadata"]["labels"]["kiln.dev/environment"],
      "shop-preview");
  EXPECT_THAT(Managers(web), Contains("kiln/Apply"));
  EXPECT_EQ(web["spec"]["replicas"], 2);
  EXPECT_EQ(web["status"]["availableReplicas"], 2);
  json svc = Get("service", "web");
  EXPECT_THAT(Managers(svc), Contains("kiln/Apply"));
  json cm = Get("configmap", "settings");
  EXPECT_EQ(cm["data"]["mode"], "fast");
  // The preview namespace was created, labelled with the environment.
  auto [rc, out] = Kubectl({"get", "namespace", "shop", "-o", "json"});
  ASSERT_EQ(rc, 0) << out;
  EXPECT_EQ(json::parse(out)["metadata"]["labels"]["kiln.dev/environment"],
            "shop-preview");

  App("nginx:2", 2);
  r = Kiln();
  ASSERT_EQ(r.exit_code, 0) << r.out;
  web = Get("deployment", "web");
  EXPECT_EQ(web["spec"]["template"]["spec"]["containers"][0]["image"],
            "nginx:2");
  EXPECT_EQ(web["metadata"]["generation"], 2);
  EXPECT_EQ(web["status"]["observedGeneration"], 2);
}

// deploy.overlay: the kustomization in the source is rendered by the deploy
// itself, into an artifact recorded with the deployment: applied, compared
// by the drift check like a render task's manifests, refused when missing.
TEST_F(DeployTest, AnOverlayInTheSourceIsRenderedAndApplied) {
  const std::string pipeline = R"(name: shop
tasks:
  - name: deploy
    deploy:
      environment: shop-preview
      kind: preview
      overlay: k8s
      namespace: shop
      wait: true
)";
  Write("src/pipeline.yaml", pipeline);
  KilnResult r = Kiln();
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_THAT(r.out, HasSubstr("deploying 3 objects of overlay k8s (sha256:"));
  EXPECT_THAT(r.out, HasSubstr("Deployment/web is ready"));
  json web = Get("deployment", "web");
  EXPECT_THAT(Managers(web), Contains("kiln/Apply"));
  EXPECT_EQ(web["spec"]["template"]["spec"]["containers"][0]["image"],
            "nginx:1");
  EXPECT_EQ(web["metadata"]["labels"]["kiln.dev/environment"], "shop-preview");

  r = Kiln();
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_THAT(r.out, HasSubstr("3 objects match, not re-applied"));

  App("nginx:2", 2);
  r = Kiln();
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_THAT(r.out, HasSubstr("applying: the manifests changed"));
  EXPECT_EQ(Get("deployment",
                "web")["spec"]["template"]["spec"]["containers"][0]["image"],
            "nginx:2");

  // A kustomization that is not there fails the task, naming it.
  Write("src/pipeline.yaml",
        absl::StrReplaceAll(pipeline, {{"overlay: k8s", "overlay: k9s"}}));
  r = Kiln();
  EXPECT_NE(r.exit_code, 0) << r.out;
  EXPECT_THAT(r.out, HasSubstr("deploy: render: "));
  EXPECT_THAT(r.out, HasSubstr("k9s"));
}

TEST_F(DeployTest, ConflictWithAnotherManagerFailsUnlessForced) {
  KilnResult r = Kiln();
  ASSERT_EQ(r.exit_code, 0) << r.out;
  // Someone scales the deployment by hand with their own field manager.
  Write("scale.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, "
        "namespace: shop}\nspec: {replicas: 5}\n");
  auto [rc, out] =
      Kubectl({"apply", "--server-side", "--force-conflicts", "--field-manager",
               "ops-scaler", "-f", dir_ + "/scale.yaml"});
  ASSERT_EQ(rc, 0) << out;
  App("nginx:1", 3);
  r = Kiln();
  EXPECT_NE(r.exit_code, 0) << r.out;
  EXPECT_THAT(r.out, HasSubstr("conflict with \"ops-scaler\""));
  EXPECT_THAT(r.out, HasSubstr(".spec.replicas"));
  EXPECT_EQ(Get("deployment", "web")["spec"]["replicas"], 5);

  // The failed deployment is never a reason to skip: the same manifests
  // are applied again (and conflict again).
  r = Kiln();
  EXPECT_NE(r.exit_code, 0) << r.out;
  EXPECT_THAT(r.out, HasSubstr("applying: deployment 2 failed"));
  EXPECT_THAT(r.out, HasSubstr("conflict with \"ops-scaler\""));

  Pipeline("force: true");
  r = Kiln();
  ASSERT_EQ(r.exit_code, 0) << r.out;
  json web = Get("deployment", "web");
  EXPECT_EQ(web["spec"]["replicas"], 3);
  for (const json& e : web["metadata"]["managedFields"]) {
    if (e["manager"] == "ops-scaler") {
      EXPECT_THAT(kube::testing::FieldPaths(e["fieldsV1"]),
                  Not(Contains(".spec.replicas")));
    }
  }
}

TEST_F(DeployTest, FailedRolloutFailsTheTaskWithWhatKubectlWouldShow) {
  App("registry.example/kiln-test-crashloop:1", 1);
  KilnResult r = Kiln();
  EXPECT_NE(r.exit_code, 0) << r.out;
  EXPECT_THAT(r.out, HasSubstr("ProgressDeadlineExceeded"));
  EXPECT_THAT(r.out, HasSubstr("Warning BackOff"));
  EXPECT_THAT(r.out, HasSubstr("CrashLoopBackOff"));
  EXPECT_THAT(r.out, HasSubstr(kube::testing::kCrashLogLine));
}

TEST_F(DeployTest, ObjectsInAnotherNamespaceAreRefusedBeforeAnyWrite) {
  App("nginx:1", 1,
      "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: other, "
      "namespace: kube-system}\ndata: {a: b}\n");
  KilnResult r = Kiln();
  EXPECT_NE(r.exit_code, 0) << r.out;
  EXPECT_THAT(r.out,
              HasSubstr("ConfigMap \"other\" is in namespace \"kube-system\""));
  auto [rc, out] = Kubectl({"get", "namespace", "shop"});
  EXPECT_NE(rc, 0) << out;  // nothing was written, not even the namespace
}

// The deploy memo (docs/deploy.md, "Memoization"): a rerun of the same
// manifests applies nothing while the cluster holds what was deployed, and
// re-applies what drifted.
TEST_F(DeployTest, UnchangedDeployIsNotReappliedUntilTheClusterDrifts) {
  Pipeline("force: true");
  KilnResult r = Kiln();
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_THAT(r.out,
              HasSubstr("applying: no earlier deployment to compare with"));
  std::map<std::string, std::string> before = ResourceVersions();

  r = Kiln();
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_THAT(r.out, HasSubstr("unchanged since deployment 1 (run r"));
  EXPECT_THAT(r.out, HasSubstr("3 objects match, not re-applied"));
  EXPECT_THAT(r.out, Not(HasSubstr("serverside-applied")));
  EXPECT_THAT(r.out, HasSubstr("0 succeeded, 2 cached"));
  EXPECT_EQ(ResourceVersions(), before);

  // Someone edits the spec by hand (what `kubectl edit` or `kubectl scale`
  // does; the double serves no scale subresource): generation 2, so it is
  // re-applied and the replicas restored.
  auto [rc, out] =
      Kubectl({"patch", "deployment", "web", "-n", "shop", "--type=merge", "-p",
               R"({"spec":{"replicas":5}})"});
  ASSERT_EQ(rc, 0) << out;
  r = Kiln();
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_THAT(r.out, HasSubstr("applying: Deployment/web: generation 2, "
                               "recorded 1"));
  EXPECT_THAT(r.out, HasSubstr("Deployment/web serverside-applied"));
  json web = Get("deployment", "web");
  EXPECT_EQ(web["spec"]["replicas"], 2);
  EXPECT_EQ(web["status"]["readyReplicas"], 2);
  // ... and that deployment (2) is the one that now stands.
  before = ResourceVersions();
  r = Kiln();
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_THAT(r.out, HasSubstr("unchanged since deployment 2 (run r"));
  EXPECT_EQ(ResourceVersions(), before);

  // A deleted ConfigMap is re-created.
  std::tie(rc, out) =
      Kubectl({"delete", "configmap", "settings", "-n", "shop"});
  ASSERT_EQ(rc, 0) << out;
  r = Kiln();
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_THAT(r.out, HasSubstr("applying: ConfigMap/settings: not found"));
  EXPECT_EQ(Get("configmap", "settings")["data"]["mode"], "fast");

  // A ConfigMap edited by hand (no generation: its resourceVersion moved).
  std::tie(rc, out) =
      Kubectl({"patch", "configmap", "settings", "-n", "shop", "--type=merge",
               "-p", R"({"data":{"extra":"x"}})"});
  ASSERT_EQ(rc, 0) << out;
  r = Kiln();
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_THAT(r.out, HasSubstr("applying: ConfigMap/settings: "
                               "resourceVersion "));

  // Other manifests are applied.
  App("nginx:1", 2,
      "---\napiVersion: v1\nkind: ConfigMap\n"
      "metadata: {name: more}\ndata: {a: b}\n");
  r = Kiln();
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_THAT(r.out, HasSubstr("applying: the manifests changed"));
  EXPECT_EQ(Get("configmap", "more")["data"]["a"], "b");
  r = Kiln();
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_THAT(r.out, HasSubstr("4 objects match, not re-applied"));
}

TEST_F(DeployTest, AlwaysApplyAndCacheFalseSkipTheDriftCheck) {
  KilnResult r = Kiln();
  ASSERT_EQ(r.exit_code, 0) << r.out;
  Pipeline("always_apply: true");
  r = Kiln();
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_THAT(r.out, HasSubstr("applying: always_apply or cache: false"));
  EXPECT_THAT(r.out, HasSubstr("ConfigMap/settings serverside-applied"));
  EXPECT_THAT(r.out, Not(HasSubstr("not re-applied")));
  Write("src/pipeline.yaml",
        absl::StrReplaceAll(
            kPipeline, {{"    deploy:\n", "    cache: false\n    deploy:\n"}}));
  r = Kiln();
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_THAT(r.out, HasSubstr("applying: always_apply or cache: false"));
  EXPECT_THAT(r.out, HasSubstr("ConfigMap/settings serverside-applied"));
  // Without either, the same deployment stands.
  Write("src/pipeline.yaml", kPipeline);
  r = Kiln();
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_THAT(r.out, HasSubstr("3 objects match, not re-applied"));
}

}  // namespace
}  // namespace kiln
