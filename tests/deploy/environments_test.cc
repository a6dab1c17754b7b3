// Deploy tasks through declared environments, end to end: the real
// `kiln run` deploys to the API server double and the real kubectl reads
// the result. A preview's namespace is created with kiln's labels and its
// expiry; a permanent environment's namespace is never created by a
// deploy; objects dropped from the manifests are pruned, and nothing else.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kube/testing/fake_api_server.h"
#include "kube/testing/process.h"
#include "nlohmann/json.hpp"

namespace kiln {
namespace {

using json = nlohmann::json;
using kube::testing::FakeApiServer;
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

std::string ReadText(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

class EnvironmentDeployTest : public ::testing::Test {
 protected:
  void SetUp() override {
    kiln_ = absl::StrCat(std::getenv("TEST_SRCDIR"), "/",
                         std::getenv("TEST_WORKSPACE"), "/kiln");
    static int counter = 0;
    dir_ = absl::StrCat(std::getenv("TEST_TMPDIR"), "/e", counter++);
    ASSERT_EQ(mkdir(dir_.c_str(), 0700), 0);
    ASSERT_EQ(mkdir((dir_ + "/src").c_str(), 0700), 0);
    ASSERT_EQ(mkdir((dir_ + "/src/k8s").c_str(), 0700), 0);
    auto server = FakeApiServer::Start();
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    kubeconfig_ = dir_ + "/kubeconfig";
    ASSERT_TRUE(server_->WriteKubeconfig(kubeconfig_, "default").ok());
    Write("src/k8s/kustomization.yaml", "resources: [app.yaml]\n");
    Write("src/k8s/app.yaml", kApp);
  }
  void TearDown() override { server_.reset(); }

  void Write(const std::string& rel, const std::string& text) {
    std::ofstream(dir_ + "/" + rel) << text;
  }
  void Pipeline(const std::string& env) {
    Write("src/pipeline.yaml", absl::StrReplaceAll(kPipeline, {{"ENV", env}}));
  }

  struct Result {
    int exit_code = -1;
    std::string output;  // stdout and stderr
  };
  Result Kiln(const std::string& branch) {
    std::vector<std::string> args = {
        "run",          dir_ + "/src/pipeline.yaml",
        "--store",      dir_ + "/store",
        "--kubeconfig", kubeconfig_,
        "--branch",     branch};
    static int n = 0;
    std::string out = absl::StrCat(dir_, "/out.", n++);
    pid_t pid = fork();
    if (pid == 0) {
      int fd = open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      dup2(fd, 1);
      dup2(fd, 2);
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
    r.output = ReadText(out);
    return r;
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
    static int n = 0;
    std::string file = absl::StrCat(dir_, "/extra.", n++, ".yaml");
    std::ofstream(file) << yaml;
    auto [rc, out] = Kubectl(
        {"apply", "--server-side", "--field-manager", manager, "-f", file});
    ASSERT_EQ(rc, 0) << out;
  }

  // A namespace made by hand (no labels), with kubectl.
  void CreateNamespace(const std::string& name) {
    ApplyAs("someone",
            absl::StrCat("apiVersion: v1\nkind: Namespace\nmetadata: {name: ",
                         name, "}\n"));
  }

  std::string kiln_, dir_, kubeconfig_;
  std::unique_ptr<FakeApiServer> server_;
};

TEST_F(EnvironmentDeployTest, PreviewDeployCreatesTheLabelledNamespace) {
  Pipeline("preview");
  const absl::Time before = absl::Now();
  Result r = Kiln("Feature/Louder_Moo");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("preview environment preview: namespace "
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
  EXPECT_NE(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("cannot use existing namespace"));
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

TEST_F(EnvironmentDeployTest, PreviewGetsTheFactoryTemplate) {
  ASSERT_EQ(mkdir((dir_ + "/src/infra").c_str(), 0700), 0);
  Write("src/infra/shop.factory.yaml", kFactory);
  Write("src/pipeline.yaml",
        absl::StrReplaceAll(kPipeline,
                            {{"ENV", "preview"},
                             {"    ttl: 2h\n",
                              "    ttl: 2h\n"
                              "    factory: infra/shop.factory.yaml#shop\n"}}));
  Result r = Kiln("pr-7");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("factory shop: 7 object(s) of the previews "
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
  ASSERT_EQ(r.exit_code, 0) << r.output;
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
  ASSERT_EQ(mkdir((dir_ + "/src/infra").c_str(), 0700), 0);
  Write("src/infra/shop.factory.yaml", kFactory);
  Write("src/pipeline.yaml",
        absl::StrReplaceAll(kPipeline,
                            {{"ENV", "preview"},
                             {"    ttl: 2h\n",
                              "    ttl: 2h\n"
                              "    factory: infra/shop.factory.yaml#shop\n"}}));
  Result r = Kiln("pr-8");
  ASSERT_EQ(r.exit_code, 0) << r.output;
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
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("ResourceQuota " + ns +
                                  "/kiln-quota pruned (no longer in the "
                                  "previews template)"));
  EXPECT_THAT(r.output, HasSubstr("RoleBinding " + ns + "/deployer pruned"));
  EXPECT_THAT(r.output, HasSubstr("5 object(s) of the previews template "
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
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, Not(HasSubstr("pruned")));
}

TEST_F(EnvironmentDeployTest, FactoryReferenceErrorsArePositioned) {
  ASSERT_EQ(mkdir((dir_ + "/src/infra").c_str(), 0700), 0);
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
  Result r = with("infra/shop.factory.yaml#shoq");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.output, HasSubstr("pipeline.yaml:7:14: environment 'preview': "
                                  "no factory 'shoq' in "
                                  "'infra/shop.factory.yaml' (did you mean "
                                  "'shop'?)"));
  r = with("infra/shop.factory.yaml#platform");
  EXPECT_THAT(r.output, HasSubstr("pipeline.yaml:7:14: environment 'preview': "
                                  "factory 'platform' in "
                                  "'infra/shop.factory.yaml' declares no "
                                  "previews template"));
  r = with("infra/missing.yaml#shop");
  EXPECT_THAT(r.output, HasSubstr("pipeline.yaml:7:14: environment 'preview': "
                                  "factory file 'infra/missing.yaml' cannot "
                                  "be read"));
  EXPECT_TRUE(Get("", "namespace", "shop-pr-8").is_null());
}

TEST_F(EnvironmentDeployTest, PermanentNamespaceIsNeverCreatedByADeploy) {
  Pipeline("stage");
  Result r = Kiln("main");
  EXPECT_NE(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output,
              HasSubstr("namespace 'shop-stage' of permanent environment "
                        "'stage' does not exist; kiln never creates"));
  EXPECT_TRUE(Get("", "namespace", "shop-stage").is_null());

  CreateNamespace("shop-stage");
  r = Kiln("main");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  json ns = Get("", "namespace", "shop-stage");
  EXPECT_EQ(ns["metadata"]["labels"]["kiln.dev/environment-kind"], "permanent");
  EXPECT_FALSE(ns["metadata"].contains("annotations") &&
               ns["metadata"]["annotations"].contains("kiln.dev/expires-at"));
  EXPECT_TRUE(Get("shop-stage", "configmap", "settings").is_object());
}

TEST_F(EnvironmentDeployTest, PruneRemovesOnlyWhatKilnAppliedAndNoLongerHas) {
  Pipeline("preview");
  Write("src/k8s/app.yaml", std::string(kApp) + kDropped);
  Result r = Kiln("feature/a");
  ASSERT_EQ(r.exit_code, 0) << r.output;
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
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("ConfigMap/extra pruned"));
  EXPECT_THAT(r.output, HasSubstr("Service/web pruned"));
  EXPECT_THAT(r.output, Not(HasSubstr("ConfigMap/settings pruned")));
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
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, Not(HasSubstr("pruned")));
  EXPECT_TRUE(Get(ns, "configmap", "settings").is_object());
}

}  // namespace
}  // namespace kiln
