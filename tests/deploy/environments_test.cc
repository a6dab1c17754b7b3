// Deploy tasks through declared environments, end to end: the real
// `kiln run` deploys to the API server double and the real kubectl reads
// the result. A preview's namespace is created with kiln's labels and its
// expiry; a permanent environment's namespace is never created by a
// deploy; objects dropped from the manifests are pruned, and nothing else.
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/deploy/deploy_fixture.h"

namespace kiln {
namespace {

using json = nlohmann::json;
using deploy_testing::KilnResult;
using ::testing::HasSubstr;
using ::testing::Not;

// ENV is replaced per test.
constexpr char kPipeline[] = R"(name: shop
environments:
  - name: preview
    kind: preview
    namespace: "shop-${trigger.branch_slug}"
    ttl: 2h
  - {name: stage, kind: permanent, namespace: shop-stage}
tasks:
  - name: manifests
    render: {kustomization: k8s}
  - name: deploy
    needs: [manifests]
    deploy: {environment: ENV, manifests: manifests}
)";

constexpr char kApp[] = R"(apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - {name: app, image: "nginx:1"}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
data: {mode: fast}
)";

constexpr char kDropped[] = R"(---
apiVersion: v1
kind: ConfigMap
metadata: {name: extra}
data: {a: b}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
)";

class EnvironmentDeployTest : public deploy_testing::DeployFixture {
 protected:
  // The factory file (kFactory) and a pipeline whose preview environment
  // names it.
  void WritePreviewWithFactory();

  void SetUp() override {
    DeployFixture::SetUp();
    if (HasFatalFailure()) return;
    Write("src/k8s/kustomization.yaml", "resources: [app.yaml]\n");
    Write("src/k8s/app.yaml", kApp);
  }

  void Pipeline(const std::string& env) {
    Write("src/pipeline.yaml", absl::StrReplaceAll(kPipeline, {{"ENV", env}}));
  }

  // `kiln run` of the pipeline on `branch`; stderr is in the result's `out`.
  KilnResult Kiln(const std::string& branch) {
    return RunKiln({"run", dir_ + "/src/pipeline.yaml", "--kubeconfig",
                    kubeconfig_, "--branch", branch},
                   deploy_testing::Stderr::kMerged);
  }

  // The object as kubectl sees it; null when absent.
  json Get(const std::string& ns, const std::string& kind,
           const std::string& name) {
    std::vector<std::string> args = {"get", kind, name, "-o", "json"};
    if (!ns.empty()) args.insert(args.end(), {"-n", ns});
    auto [rc, out] = Kubectl(args);
    if (rc != 0) {
      EXPECT_THAT(out, HasSubstr("NotFound")) << out;
      return json();
    }
    return json::parse(out);
  }
  // kubectl apply --server-side of `yaml` as field manager `manager`.
  void ApplyAs(const std::string& manager, const std::string& yaml) {
    const std::string file = absl::StrCat("extra.", extra_files_++, ".yaml");
    Write(file, yaml);
    auto [rc, out] = Kubectl({"apply", "--server-side", "--field-manager",
                              manager, "-f", dir_ + "/" + file});
    ASSERT_EQ(rc, 0) << out;
  }

  // A namespace made by hand (no labels), with kubectl.
  void CreateNamespace(const std::string& name) {
    ApplyAs("someone",
            absl::StrCat("apiVersion: v1\nkind: Namespace\nmetadata: {name: ",
                         name, "}\n"));
  }

  int extra_files_ = 0;
};

TEST_F(EnvironmentDeployTest, PreviewDeployCreatesTheLabelledNamespace) {
  Pipeline("preview");
  const absl::Time before = absl::Now();
  KilnResult r = Kiln("Feature/Louder_Moo");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_THAT(r.out, HasSubstr("preview environment preview: namespace "
                               "shop-feature-louder-moo ensured"));
  json ns = Get("", "namespace", "shop-feature-louder-moo");
  ASSERT_TRUE(ns.is_object());
  const json& labels = ns["metadata"]["labels"];
  EXPECT_EQ(labels["kiln.dev/app"], "shop");
  EXPECT_EQ(labels["kiln.dev/branch"], "feature-louder-moo");
  EXPECT_EQ(labels["kiln.dev/environment"], "preview");
  EXPECT_EQ(labels["kiln.dev/environment-kind"], "preview");
  absl::Time expires;
  std::string error;
  ASSERT_TRUE(absl::ParseTime(
      absl::RFC3339_full,
      ns["metadata"]["annotations"]["kiln.dev/expires-at"].get<std::string>(),
      &expires, &error))
      << error;
  EXPECT_GE(expires, before + absl::Hours(2) - absl::Seconds(2));
  EXPECT_LE(expires, absl::Now() + absl::Hours(2) + absl::Seconds(2));
  json web = Get("shop-feature-louder-moo", "deployment", "web");
  ASSERT_TRUE(web.is_object());
  EXPECT_EQ(web["metadata"]["labels"]["kiln.dev/environment"], "preview");
  // A preview may not take over a namespace kiln did not make as one.
  CreateNamespace("shop-by-hand");
  r = Kiln("by-hand");
  EXPECT_NE(r.exit_code, 0) << r.out;
  EXPECT_THAT(r.out, HasSubstr("cannot use existing namespace"));
  EXPECT_TRUE(Get("shop-by-hand", "deployment", "web").is_null());
}

// A preview environment naming a factory: every preview namespace gets the
// factory's `previews` template (server-side applied before the manifests);
// a second deploy changes none of its objects.
constexpr char kFactory[] = R"(name: platform
factories:
  - name: shop
    namespaces:
      - suffix: cicd
        service_accounts: [deployer]
    previews:
      labels: {team: shop}
      quota: {hard: {pods: "5", requests.cpu: "1"}}
      limits: {default: {cpu: 200m, memory: 256Mi}}
      network: {allow_same_namespace: true, allow_from: [cicd]}
      service_accounts: [app]
      roles:
        - name: deploy
          rules: [{api_groups: [apps], resources: [deployments], verbs: [get, patch]}]
      role_bindings:
        - {name: deployer, role: deploy, service_accounts: [cicd/deployer, app]}
)";

void EnvironmentDeployTest::WritePreviewWithFactory() {
  Write("src/infra/shop.factory.yaml", kFactory);
  Write("src/pipeline.yaml",
        absl::StrReplaceAll(kPipeline,
                            {{"ENV", "preview"},
                             {"    ttl: 2h\n",
                              "    ttl: 2h\n"
                              "    factory: infra/shop.factory.yaml#shop\n"}}));
}

TEST_F(EnvironmentDeployTest, PreviewGetsTheFactoryTemplate) {
  WritePreviewWithFactory();
  KilnResult r = Kiln("pr-7");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_THAT(r.out, HasSubstr("factory shop: 7 object(s) of the previews "
                               "template applied in shop-pr-7"));
  const std::string ns = "shop-pr-7";
  auto [rc, listed] =
      Kubectl({"get",
               "resourcequota,limitrange,networkpolicy,serviceaccount,"
               "role,rolebinding",
               "-n", ns, "-o", "json"});
  ASSERT_EQ(rc, 0) << listed;
  std::map<std::string, std::string> versions;  // "Kind/name" -> rv
  const json first = json::parse(listed);
  for (const json& item : first["items"]) {
    std::string name = item["metadata"]["name"];
    if (item["kind"] == "ServiceAccount" && name == "default") continue;
    EXPECT_EQ(item["metadata"]["labels"]["kiln.dev/factory"], "shop") << name;
    versions[absl::StrCat(item["kind"].get<std::string>(), "/", name)] =
        item["metadata"]["resourceVersion"];
  }
  EXPECT_EQ(versions.size(), 7u) << listed;
  for (const char* want :
       {"ResourceQuota/kiln-quota", "LimitRange/kiln-limits",
        "NetworkPolicy/kiln-default-deny", "NetworkPolicy/kiln-allow",
        "ServiceAccount/app", "Role/deploy", "RoleBinding/deployer"}) {
    EXPECT_TRUE(versions.count(want)) << want << "\n" << listed;
  }
  json quota = Get(ns, "resourcequota", "kiln-quota");
  ASSERT_TRUE(quota.is_object());
  EXPECT_EQ(quota["spec"]["hard"]["pods"], "5");
  json binding = Get(ns, "rolebinding", "deployer");
  ASSERT_TRUE(binding.is_object());
  EXPECT_EQ(binding["subjects"][0]["namespace"], "shop-cicd");
  EXPECT_EQ(binding["subjects"][1]["namespace"], ns);
  json allow = Get(ns, "networkpolicy", "kiln-allow");
  ASSERT_TRUE(allow.is_object());
  EXPECT_EQ(allow["spec"]["ingress"][0]["from"][1]["namespaceSelector"]
                 ["matchLabels"]["kubernetes.io/metadata.name"],
            "shop-cicd");
  json nsobj = Get("", "namespace", ns);
  ASSERT_TRUE(nsobj.is_object());
  EXPECT_EQ(nsobj["metadata"]["labels"]["team"], "shop");
  EXPECT_EQ(nsobj["metadata"]["labels"]["kiln.dev/environment"], "preview");
  EXPECT_TRUE(Get(ns, "deployment", "web").is_object());
  // The factory's permanent namespaces are not a deploy's business.
  EXPECT_TRUE(Get("", "namespace", "shop-cicd").is_null());

  // Deploying again changes nothing in the template's objects.
  r = Kiln("pr-7");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  auto [rc2, again] =
      Kubectl({"get",
               "resourcequota,limitrange,networkpolicy,serviceaccount,"
               "role,rolebinding",
               "-n", ns, "-o", "json"});
  ASSERT_EQ(rc2, 0) << again;
  const json second = json::parse(again);
  ASSERT_EQ(second["items"].size(), first["items"].size()) << again;
  for (const json& item : second["items"]) {
    std::string key = absl::StrCat(item["kind"].get<std::string>(), "/",
                                   item["metadata"]["name"].get<std::string>());
    if (key == "ServiceAccount/default") continue;
    EXPECT_EQ(item["metadata"]["resourceVersion"], versions[key]) << key;
  }
}

// An object dropped from the previews template leaves the previews that
// got it at their next deploy; the template's other objects, a deploy's
// objects and an object someone labelled like the factory's by hand stay.
TEST_F(EnvironmentDeployTest, ObjectsDroppedFromThePreviewTemplateArePruned) {
  WritePreviewWithFactory();
  KilnResult r = Kiln("pr-8");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const std::string ns = "shop-pr-8";
  ASSERT_TRUE(Get(ns, "resourcequota", "kiln-quota").is_object());
  ASSERT_TRUE(Get(ns, "rolebinding", "deployer").is_object());
  ApplyAs("someone",
          absl::StrCat("apiVersion: v1\nkind: ServiceAccount\nmetadata:\n",
                       "  name: by-hand\n  namespace: ", ns,
                       "\n  labels: {kiln.dev/factory: shop, "
                       "app.kubernetes.io/managed-by: kiln}\n"));

  // The quota and the role binding leave the template.
  std::string smaller = absl::StrReplaceAll(
      kFactory,
      {{"      quota: {hard: {pods: \"5\", requests.cpu: \"1\"}}\n", ""},
       {"      role_bindings:\n        - {name: deployer, role: deploy, "
        "service_accounts: [cicd/deployer, app]}\n",
        ""}});
  ASSERT_NE(smaller, kFactory);
  Write("src/infra/shop.factory.yaml", smaller);
  r = Kiln("pr-8");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_THAT(r.out, HasSubstr("ResourceQuota " + ns +
                               "/kiln-quota pruned (no longer in the "
                               "previews template)"));
  EXPECT_THAT(r.out, HasSubstr("RoleBinding " + ns + "/deployer pruned"));
  EXPECT_THAT(r.out, HasSubstr("5 object(s) of the previews template "
                               "applied in shop-pr-8, 2 pruned"));
  EXPECT_TRUE(Get(ns, "resourcequota", "kiln-quota").is_null());
  EXPECT_TRUE(Get(ns, "rolebinding", "deployer").is_null());
  EXPECT_TRUE(Get(ns, "role", "deploy").is_object());
  EXPECT_TRUE(Get(ns, "limitrange", "kiln-limits").is_object());
  EXPECT_TRUE(Get(ns, "serviceaccount", "app").is_object());
  EXPECT_TRUE(Get(ns, "serviceaccount", "by-hand").is_object());
  EXPECT_TRUE(Get(ns, "deployment", "web").is_object());

  // Nothing more to prune on the next deploy.
  r = Kiln("pr-8");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_THAT(r.out, Not(HasSubstr("pruned")));
}

TEST_F(EnvironmentDeployTest, FactoryReferenceErrorsArePositioned) {
  Write("src/infra/shop.factory.yaml", kFactory);
  auto with = [&](const std::string& ref) {
    Write("src/pipeline.yaml",
          absl::StrReplaceAll(
              kPipeline,
              {{"ENV", "preview"},
               {"    ttl: 2h\n",
                absl::StrCat("    ttl: 2h\n    factory: ", ref, "\n")}}));
    return Kiln("pr-8");
  };
  KilnResult r = with("infra/shop.factory.yaml#shoq");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.out, HasSubstr("pipeline.yaml:7:14: environment 'preview': "
                               "no factory 'shoq' in "
                               "'infra/shop.factory.yaml' (did you mean "
                               "'shop'?)"));
  r = with("infra/shop.factory.yaml#platform");
  EXPECT_THAT(r.out, HasSubstr("pipeline.yaml:7:14: environment 'preview': "
                               "factory 'platform' in "
                               "'infra/shop.factory.yaml' declares no "
                               "previews template"));
  r = with("infra/missing.yaml#shop");
  EXPECT_THAT(r.out, HasSubstr("pipeline.yaml:7:14: environment 'preview': "
                               "factory file 'infra/missing.yaml' cannot "
                               "be read"));
  EXPECT_TRUE(Get("", "namespace", "shop-pr-8").is_null());
}

TEST_F(EnvironmentDeployTest, PermanentNamespaceIsNeverCreatedByADeploy) {
  Pipeline("stage");
  KilnResult r = Kiln("main");
  EXPECT_NE(r.exit_code, 0) << r.out;
  EXPECT_THAT(r.out,
              HasSubstr("namespace 'shop-stage' of permanent environment "
                        "'stage' does not exist; kiln never creates"));
  EXPECT_TRUE(Get("", "namespace", "shop-stage").is_null());

  CreateNamespace("shop-stage");
  r = Kiln("main");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  json ns = Get("", "namespace", "shop-stage");
  EXPECT_EQ(ns["metadata"]["labels"]["kiln.dev/environment-kind"], "permanent");
  EXPECT_FALSE(ns["metadata"].contains("annotations") &&
               ns["metadata"]["annotations"].contains("kiln.dev/expires-at"));
  EXPECT_TRUE(Get("shop-stage", "configmap", "settings").is_object());
}

TEST_F(EnvironmentDeployTest, PruneRemovesOnlyWhatKilnAppliedAndNoLongerHas) {
  Pipeline("preview");
  Write("src/k8s/app.yaml", std::string(kApp) + kDropped);
  KilnResult r = Kiln("feature/a");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const std::string ns = "shop-feature-a";
  ASSERT_TRUE(Get(ns, "configmap", "extra").is_object());
  ASSERT_TRUE(Get(ns, "service", "web").is_object());
  // Beside kiln's objects: an unlabelled one, one labelled as the
  // environment's but applied by another manager, and kiln-looking objects
  // in another namespace.
  ApplyAs("someone", absl::StrCat("apiVersion: v1\nkind: ConfigMap\n",
                                  "metadata: {name: by-hand, namespace: ", ns,
                                  "}\ndata: {x: y}\n"));
  ApplyAs("someone",
          absl::StrCat("apiVersion: v1\nkind: ConfigMap\nmetadata:\n",
                       "  name: lookalike\n  namespace: ", ns,
                       "\n  labels: {kiln.dev/environment: preview, "
                       "app.kubernetes.io/managed-by: kiln}\ndata: {x: y}\n"));
  CreateNamespace("elsewhere");
  ApplyAs("kiln",
          "apiVersion: v1\nkind: ConfigMap\nmetadata:\n"
          "  name: extra\n  namespace: elsewhere\n"
          "  labels: {kiln.dev/environment: preview, "
          "app.kubernetes.io/managed-by: kiln}\ndata: {x: y}\n");

  // The ConfigMap and the Service are dropped from the manifests.
  Write("src/k8s/app.yaml", kApp);
  r = Kiln("feature/a");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_THAT(r.out, HasSubstr("ConfigMap/extra pruned"));
  EXPECT_THAT(r.out, HasSubstr("Service/web pruned"));
  EXPECT_THAT(r.out, Not(HasSubstr("ConfigMap/settings pruned")));
  EXPECT_TRUE(Get(ns, "configmap", "extra").is_null());
  EXPECT_TRUE(Get(ns, "service", "web").is_null());
  EXPECT_TRUE(Get(ns, "configmap", "settings").is_object());
  EXPECT_TRUE(Get(ns, "deployment", "web").is_object());
  EXPECT_TRUE(Get(ns, "configmap", "by-hand").is_object());
  EXPECT_TRUE(Get(ns, "configmap", "lookalike").is_object());
  EXPECT_TRUE(Get("elsewhere", "configmap", "extra").is_object());
  EXPECT_TRUE(Get("", "namespace", ns).is_object());
  // Another branch's preview is another namespace: nothing of it is pruned.
  r = Kiln("feature/b");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_THAT(r.out, Not(HasSubstr("pruned")));
  EXPECT_TRUE(Get(ns, "configmap", "settings").is_object());
}

}  // namespace
}  // namespace kiln
