// plan / apply / apply again / prune / the permanent-namespace guard, against
// the API server double, with what landed read back by the real kubectl.
#include "engine/factory/apply.h"

#include <fstream>
#include <memory>
#include <sstream>
#include <string>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "engine/factory/desired.h"
#include "engine/factory/loader.h"
#include "engine/factory/plan.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kube/client.h"
#include "kube/kubeconfig.h"
#include "kube/testing/fake_api_server.h"
#include "kube/testing/process.h"

namespace kiln::factory {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kDbPassword[] = "s3cr3t-db-pa55word";
constexpr char kRegistryToken[] = "t0ken-of-the-registry";
constexpr char kNewDbPassword[] = "n3w-db-pa55word";

std::string ReadExample() {
  std::ifstream in("examples/factory/shop.factory.yaml");
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

class FactoryApplyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto server = kube::testing::FakeApiServer::Start();
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    dir_ = getenv("TEST_TMPDIR");
    kubeconfig_ = dir_ + "/kubeconfig";
    ASSERT_TRUE(server_->WriteKubeconfig(kubeconfig_, "default").ok());
    kube::LoadOptions load;
    load.kubeconfig_paths = {kubeconfig_};
    load.in_cluster_fallback = false;
    auto config = kube::LoadClusterConfig(load);
    ASSERT_TRUE(config.ok()) << config.status();
    auto client = kube::Client::Create(*config);
    ASSERT_TRUE(client.ok()) << client.status();
    client_ = std::move(*client);
    secrets_.Set("db-password", kDbPassword);
    secrets_.Set("registry-token", kRegistryToken);
  }

  // Loads `text`, plans; returns the plan's text (also kept in output_).
  Plan MakeFactoryPlan(const std::string& text) {
    LoadedFactory f = LoadFactoryText(text, "shop.factory.yaml", secrets_);
    EXPECT_TRUE(f.ok()) << pipeline::JoinDiagnostics(f.errors);
    auto desired = BuildDesired(f.factory, secrets_);
    EXPECT_TRUE(desired.ok()) << desired.status();
    auto plan = MakePlan(*client_, f.factory, *desired);
    EXPECT_TRUE(plan.ok()) << plan.status();
    if (!plan.ok()) return Plan();
    output_ += FormatPlan(*plan);
    return *std::move(plan);
  }

  void Apply(const Plan& plan) {
    absl::Status s = ApplyPlan(
        *client_, plan, [this](const std::string& l) { output_ += l + "\n"; });
    ASSERT_TRUE(s.ok()) << s;
  }

  // `kubectl get ARGS -o json` parsed.
  json Kubectl(const std::vector<std::string>& args) {
    std::vector<std::string> argv = {
        "kubectl",     "--kubeconfig",       kubeconfig_,
        "--cache-dir", dir_ + "/kube-cache", "get"};
    argv.insert(argv.end(), args.begin(), args.end());
    argv.push_back("-o");
    argv.push_back("json");
    auto r = kube::testing::RunProcess(
        argv, {{"HOME", dir_}, {"KUBECONFIG", kubeconfig_}}, absl::Seconds(60));
    EXPECT_TRUE(r.ok()) << r.status();
    if (!r.ok()) return json();
    EXPECT_EQ(r->first, 0) << r->second;
    json out = json::parse(r->second, nullptr, false);
    EXPECT_FALSE(out.is_discarded()) << r->second;
    return out;
  }
  // Waits (up to 10 s) until namespace `name` is gone: a real server (and
  // a double modelling it) keeps it Terminating for a while.
  void WaitNamespaceGone(const std::string& name) {
    absl::Time deadline = absl::Now() + absl::Seconds(10);
    while (absl::Now() < deadline &&
           client_->Get("/api/v1/namespaces/" + name).ok()) {
      absl::SleepFor(absl::Milliseconds(50));
    }
    EXPECT_FALSE(KubectlFinds({"namespace", name}));
  }
  bool KubectlFinds(const std::vector<std::string>& args) {
    std::vector<std::string> argv = {
        "kubectl",     "--kubeconfig",       kubeconfig_,
        "--cache-dir", dir_ + "/kube-cache", "get"};
    argv.insert(argv.end(), args.begin(), args.end());
    auto r = kube::testing::RunProcess(
        argv, {{"HOME", dir_}, {"KUBECONFIG", kubeconfig_}}, absl::Seconds(60));
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() && r->first == 0;
  }

  int64_t Writes() {
    int64_t n = 0;
    for (const auto& [what, count] : server_->request_counts()) {
      for (const char* verb : {"create ", "update ", "patch ", "delete "}) {
        if (what.rfind(verb, 0) == 0) n += count;
      }
    }
    return n;
  }

  void ExpectNoSecretIn(const std::string& text) {
    for (const char* v : {kDbPassword, kRegistryToken, kNewDbPassword}) {
      EXPECT_THAT(text, Not(HasSubstr(v)));
      EXPECT_THAT(text, Not(HasSubstr(absl::Base64Escape(v))));
    }
  }

  std::unique_ptr<kube::testing::FakeApiServer> server_;
  std::unique_ptr<kube::Client> client_;
  source::Secrets secrets_;
  std::string dir_, kubeconfig_;
  std::string output_;
};

TEST_F(FactoryApplyTest, PlanApplyApplyAgainPrune) {
  const std::string example = ReadExample();
  Plan plan = MakeFactoryPlan(example);
  EXPECT_EQ(plan.Count(Action::kUpdate) + plan.Count(Action::kDelete), 0);
  EXPECT_THAT(output_, HasSubstr("+ create Namespace shop-cicd\n"));
  EXPECT_THAT(output_, HasSubstr("+ create Secret shop-prod/database\n"));
  EXPECT_THAT(output_,
              HasSubstr("+ create NetworkPolicy shop-prod/kiln-allow"));
  // Namespaces come first.
  EXPECT_LT(output_.find("Namespace shop-prod"),
            output_.find("ServiceAccount envs-system/factory"));
  EXPECT_EQ(Writes(), 0) << "plan wrote";
  Apply(plan);

  // What kubectl sees.
  json ns = Kubectl({"namespace", "shop-prod"});
  EXPECT_EQ(ns["metadata"]["labels"]["kiln.dev/factory"], "shop");
  EXPECT_EQ(ns["metadata"]["labels"]["kiln.dev/parent-factory"], "envs");
  EXPECT_EQ(ns["metadata"]["labels"]["app.kubernetes.io/managed-by"], "kiln");
  EXPECT_EQ(ns["metadata"]["labels"]["kiln.dev/environment-kind"], "permanent");
  EXPECT_EQ(ns["metadata"]["labels"]["tier"], "production");
  json cicd = Kubectl({"namespace", "shop-cicd"});
  EXPECT_FALSE(
      cicd["metadata"]["labels"].contains("kiln.dev/environment-kind"));
  json secret = Kubectl({"secret", "database", "-n", "shop-prod"});
  EXPECT_EQ(secret["data"]["password"], absl::Base64Escape(kDbPassword));
  EXPECT_EQ(secret["metadata"]["labels"]["kiln.dev/factory"], "shop");
  json quota = Kubectl({"resourcequota", "kiln-quota", "-n", "shop-cicd"});
  EXPECT_EQ(quota["spec"]["hard"]["requests.memory"], "8Gi");
  json limits = Kubectl({"limitrange", "kiln-limits", "-n", "shop-cicd"});
  EXPECT_EQ(limits["spec"]["limits"][0]["default"]["cpu"], "500m");
  json deny =
      Kubectl({"networkpolicy", "kiln-default-deny", "-n", "shop-prod"});
  EXPECT_EQ(deny["spec"]["policyTypes"], json::array({"Ingress"}));
  EXPECT_FALSE(deny["spec"].contains("ingress"));
  json allow = Kubectl({"networkpolicy", "kiln-allow", "-n", "shop-prod"});
  EXPECT_EQ(allow["spec"]["ingress"][0]["from"][0]["namespaceSelector"]
                 ["matchLabels"]["kubernetes.io/metadata.name"],
            "shop-cicd");
  json binding = Kubectl({"rolebinding", "deployer", "-n", "shop-test"});
  EXPECT_EQ(binding["subjects"][0]["namespace"], "shop-cicd");
  EXPECT_EQ(binding["roleRef"]["name"], "deploy");
  json role = Kubectl({"role", "deployer", "-n", "shop-cicd"});
  EXPECT_EQ(role["rules"][0]["verbs"].size(), 7u);
  json sa = Kubectl({"serviceaccount", "factory", "-n", "envs-system"});
  EXPECT_EQ(sa["metadata"]["labels"]["kiln.dev/factory"], "envs");

  // Again: nothing to do, and not one write request.
  output_.clear();
  const int64_t writes = Writes();
  Plan again = MakeFactoryPlan(example);
  EXPECT_TRUE(again.empty()) << output_;
  EXPECT_THAT(output_, HasSubstr("no changes"));
  Apply(again);
  EXPECT_EQ(Writes(), writes);

  // Change a value, a secret and a label, add a namespace; a quota
  // written differently but equal (8Gi as 8192Mi) is no change.
  std::string changed = absl::StrReplaceAll(
      example, {{"mode: fast", "mode: slow"},
                {"requests.memory: 8Gi", "requests.memory: 8192Mi"},
                {"labels: {team: shop}", "labels: {team: web}"}});
  changed +=
      "      - suffix: extra\n"
      "        config_maps: [{name: keep-me, data: {a: b}}]\n";
  secrets_.Set("db-password", kNewDbPassword);
  output_.clear();
  Plan update = MakeFactoryPlan(changed);
  EXPECT_THAT(output_, HasSubstr("~ update ConfigMap "
                                 "shop-cicd/pipeline-settings\n"
                                 "    data.mode: \"fast\" -> \"slow\"\n"));
  EXPECT_THAT(output_, HasSubstr("~ update Secret shop-prod/database\n"
                                 "    data.password: (secret value "
                                 "changed)\n"));
  EXPECT_THAT(output_, HasSubstr("~ update Namespace shop-cicd\n"
                                 "    metadata.labels.team: \"shop\" -> "
                                 "\"web\"\n"));
  EXPECT_THAT(output_, Not(HasSubstr("ResourceQuota")));
  EXPECT_THAT(output_, Not(HasSubstr("LimitRange")));
  EXPECT_THAT(output_, HasSubstr("+ create Namespace shop-extra"));
  EXPECT_EQ(update.Count(Action::kUpdate), 3) << output_;
  Apply(update);
  EXPECT_EQ(Kubectl({"configmap", "pipeline-settings", "-n",
                     "shop-cicd"})["data"]["mode"],
            "slow");
  EXPECT_EQ(
      Kubectl({"secret", "database", "-n", "shop-prod"})["data"]["password"],
      absl::Base64Escape(kNewDbPassword));

  // Prune: the config map, the role binding of shop-test, the extra
  // namespace and the stage namespace leave the file. The stage namespace is
  // permanent: kept.
  std::string pruned = absl::StrReplaceAll(
      changed,
      {{"        config_maps:\n"
        "          - name: pipeline-settings\n"
        "            data: {registry: \"localhost:5000\", mode: slow}\n",
        ""},
       {"      - suffix: stage\n"
        "        kind: permanent\n"
        "        quota:\n"
        "          hard: {pods: \"10\"}\n"
        "        network: {allow_from: [cicd]}\n",
        ""},
       {"        role_bindings:\n"
        "          - {name: deployer, role: deploy, service_accounts: "
        "[cicd/deployer]}\n",
        ""},
       {"          max: {memory: 2Gi}\n", ""},
       {"      - suffix: extra\n"
        "        config_maps: [{name: keep-me, data: {a: b}}]\n",
        ""}});
  ASSERT_NE(pruned, changed);
  output_.clear();
  Plan prune = MakeFactoryPlan(pruned);
  EXPECT_THAT(output_,
              HasSubstr("- delete ConfigMap shop-cicd/pipeline-settings\n"));
  EXPECT_THAT(output_, HasSubstr("- delete RoleBinding shop-test/deployer\n"));
  EXPECT_THAT(output_, HasSubstr("- delete Namespace shop-extra\n"));
  EXPECT_THAT(output_, HasSubstr("~ update LimitRange shop-cicd/kiln-limits\n"
                                 "    spec.limits[0].max: {\"memory\":\"2Gi\"}"
                                 " -> (removed)\n"));
  EXPECT_THAT(output_, HasSubstr("= keep Namespace shop-stage (permanent"));
  EXPECT_THAT(output_, Not(HasSubstr("delete Namespace shop-stage")));
  EXPECT_EQ(prune.Count(Action::kDelete), 3) << output_;
  Apply(prune);
  EXPECT_FALSE(
      KubectlFinds({"configmap", "pipeline-settings", "-n", "shop-cicd"}));
  EXPECT_FALSE(KubectlFinds({"rolebinding", "deployer", "-n", "shop-test"}));
  WaitNamespaceGone("shop-extra");
  EXPECT_TRUE(KubectlFinds({"namespace", "shop-stage"}));
  EXPECT_TRUE(KubectlFinds({"role", "deploy", "-n", "shop-test"}));
  json limits_after = Kubectl({"limitrange", "kiln-limits", "-n", "shop-cicd"});
  EXPECT_FALSE(limits_after["spec"]["limits"][0].contains("max"));
  EXPECT_EQ(limits_after["spec"]["limits"][0]["default"]["cpu"], "500m");

  // And pruning is idempotent too.
  output_.clear();
  const int64_t before = Writes();
  Plan settled = MakeFactoryPlan(pruned);
  EXPECT_TRUE(settled.empty()) << output_;
  Apply(settled);
  EXPECT_EQ(Writes(), before);
}

TEST_F(FactoryApplyTest, NestedFactoriesPruneOnlyTheirOwn) {
  const std::string example = ReadExample();
  Apply(MakeFactoryPlan(example));
  // The application factory leaves the file: its plain namespace goes, its
  // permanent ones stay; the environments factory's own objects stay.
  // (Its cluster roles too: they are the environments factory's.)
  std::string parent_only = example.substr(0, example.find("factories:\n"));
  output_.clear();
  Plan plan = MakeFactoryPlan(parent_only);
  EXPECT_THAT(output_, HasSubstr("- delete Namespace shop-cicd\n"));
  EXPECT_THAT(output_, HasSubstr("= keep Namespace shop-prod"));
  EXPECT_THAT(output_, HasSubstr("= keep Namespace shop-test"));
  EXPECT_THAT(output_, HasSubstr("= keep Namespace shop-stage"));
  EXPECT_THAT(output_, Not(HasSubstr("envs-system")));
  EXPECT_EQ(plan.Count(Action::kDelete), 1) << output_;
  Apply(plan);
  WaitNamespaceGone("shop-cicd");
  EXPECT_TRUE(KubectlFinds({"namespace", "shop-prod"}));
  EXPECT_TRUE(KubectlFinds({"serviceaccount", "factory", "-n", "envs-system"}));

  // A sibling factory file of another name never prunes this one's objects.
  output_.clear();
  Plan other = MakeFactoryPlan("name: other\nnamespaces: [{suffix: cicd}]\n");
  EXPECT_EQ(other.Count(Action::kDelete), 0) << output_;
  EXPECT_EQ(other.Count(Action::kCreate), 1) << output_;
}

TEST_F(FactoryApplyTest, ClusterRbacCreateApplyAgainPrune) {
  const std::string example = ReadExample();
  Plan plan = MakeFactoryPlan(example);
  EXPECT_THAT(output_, HasSubstr("+ create ClusterRole envs-factory\n"));
  EXPECT_THAT(output_, HasSubstr("+ create ClusterRoleBinding envs-factory\n"));
  Apply(plan);
  json role = Kubectl({"clusterrole", "envs-factory"});
  EXPECT_EQ(role["metadata"]["labels"][kFactoryLabel], "envs");
  EXPECT_FALSE(role["metadata"].contains("namespace"));
  EXPECT_EQ(role["rules"][0]["resources"][0], "namespaces");
  json binding = Kubectl({"clusterrolebinding", "envs-factory"});
  EXPECT_EQ(binding["roleRef"]["kind"], "ClusterRole");
  EXPECT_EQ(binding["subjects"][0]["name"], "factory");
  EXPECT_EQ(binding["subjects"][0]["namespace"], "envs-system");
  // The preview template makes no namespace and no object at apply time.
  int namespaces = 0;
  for (size_t at = output_.find("+ create Namespace "); at != std::string::npos;
       at = output_.find("+ create Namespace ", at + 1)) {
    ++namespaces;
  }
  EXPECT_EQ(namespaces, 5) << output_;

  // Applying again changes nothing.
  output_.clear();
  const int64_t writes = Writes();
  Plan again = MakeFactoryPlan(example);
  EXPECT_TRUE(again.empty()) << output_;
  Apply(again);
  EXPECT_EQ(Writes(), writes);

  // A cluster object someone else made is never touched nor pruned.
  auto other =
      client_->Create("/apis/rbac.authorization.k8s.io/v1/clusterroles",
                      {{"apiVersion", "rbac.authorization.k8s.io/v1"},
                       {"kind", "ClusterRole"},
                       {"metadata", {{"name", "someone-elses"}}},
                       {"rules", json::array()}});
  ASSERT_TRUE(other.ok()) << other.status();

  // The binding leaves the file: pruned; the role changes: updated.
  std::string changed = absl::StrReplaceAll(
      example,
      {{"cluster_role_bindings:\n  - {name: envs-factory, role: envs-factory, "
        "service_accounts: [system/factory]}\n",
        ""},
       {"resources: [namespaces]\n", "resources: [namespaces, events]\n"}});
  ASSERT_NE(changed, example);
  output_.clear();
  Plan prune = MakeFactoryPlan(changed);
  EXPECT_THAT(output_, HasSubstr("- delete ClusterRoleBinding envs-factory\n"));
  EXPECT_THAT(output_, HasSubstr("~ update ClusterRole envs-factory\n"));
  EXPECT_THAT(output_, Not(HasSubstr("someone-elses")));
  EXPECT_EQ(prune.Count(Action::kDelete), 1) << output_;
  Apply(prune);
  EXPECT_FALSE(KubectlFinds({"clusterrolebinding", "envs-factory"}));
  EXPECT_TRUE(KubectlFinds({"clusterrole", "someone-elses"}));
  EXPECT_EQ(
      Kubectl({"clusterrole", "envs-factory"})["rules"][0]["resources"].size(),
      2u);

  // Declaring a cluster role that exists without the factory's label is
  // refused before anything is written.
  std::string takeover = absl::StrCat(
      "name: grab\ncluster_roles:\n  - {name: someone-elses, rules: "
      "[{api_groups: [\"\"], resources: [pods], verbs: [get]}]}\n");
  LoadedFactory f = LoadFactoryText(takeover, "grab.yaml", secrets_);
  ASSERT_TRUE(f.ok()) << pipeline::JoinDiagnostics(f.errors);
  auto desired = BuildDesired(f.factory, secrets_);
  ASSERT_TRUE(desired.ok());
  auto refused = MakePlan(*client_, f.factory, *desired);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(refused.status().message(),
              HasSubstr("ClusterRole someone-elses exists and was not "
                        "created by a factory"));
}

TEST_F(FactoryApplyTest, EmptyMapsAndSubsetLabelsAreUpToDate) {
  const std::string text =
      "name: tiny\n"
      "namespaces:\n"
      "  - suffix: cicd\n"
      "    config_maps: [{name: empty}]\n"
      "    secrets: [{name: nothing}]\n";
  Apply(MakeFactoryPlan(text));
  // Someone else labels the namespace; the server drops the empty maps.
  auto ns = client_->Get("/api/v1/namespaces/tiny-cicd");
  ASSERT_TRUE(ns.ok()) << ns.status();
  (*ns)["metadata"]["labels"]["owner"] = "someone-else";
  ASSERT_TRUE(client_->Replace("/api/v1/namespaces/tiny-cicd", *ns).ok());
  auto cm = client_->Get("/api/v1/namespaces/tiny-cicd/configmaps/empty");
  ASSERT_TRUE(cm.ok()) << cm.status();
  cm->erase("data");
  ASSERT_TRUE(
      client_->Replace("/api/v1/namespaces/tiny-cicd/configmaps/empty", *cm)
          .ok());
  output_.clear();
  const int64_t writes = Writes();
  Plan again = MakeFactoryPlan(text);
  EXPECT_TRUE(again.empty()) << output_;
  Apply(again);
  EXPECT_EQ(Writes(), writes);
  EXPECT_EQ(Kubectl({"namespace", "tiny-cicd"})["metadata"]["labels"]["owner"],
            "someone-else");

  // A label the file set and then drops is removed; others' labels stay.
  const std::string labelled =
      "name: tiny\n"
      "namespaces:\n"
      "  - suffix: cicd\n"
      "    labels: {team: a, tier: b}\n"
      "    config_maps: [{name: empty}]\n"
      "    secrets: [{name: nothing}]\n";
  Apply(MakeFactoryPlan(labelled));
  EXPECT_EQ(Kubectl({"namespace", "tiny-cicd"})["metadata"]["labels"]["tier"],
            "b");
  output_.clear();
  Plan dropped = MakeFactoryPlan(
      absl::StrReplaceAll(labelled, {{"{team: a, tier: b}", "{team: a}"}}));
  EXPECT_THAT(output_, HasSubstr("~ update Namespace tiny-cicd\n"));
  EXPECT_THAT(output_, HasSubstr("    metadata.labels.tier: \"b\" -> "
                                 "(removed)\n"));
  Apply(dropped);
  json labels = Kubectl({"namespace", "tiny-cicd"})["metadata"]["labels"];
  EXPECT_FALSE(labels.contains("tier"));
  EXPECT_EQ(labels["team"], "a");
  EXPECT_EQ(labels["owner"], "someone-else");
  EXPECT_EQ(labels["kiln.dev/factory"], "tiny");
}

TEST_F(FactoryApplyTest, PermanentNamespaceGuard) {
  // A namespace named like a permanent environment without any label (so
  // nothing marks it), one labelled permanent, and a plain one.
  ASSERT_TRUE(client_
                  ->Create("/api/v1/namespaces",
                           {{"apiVersion", "v1"},
                            {"kind", "Namespace"},
                            {"metadata", {{"name", "shop-prod"}}}})
                  .ok());
  ASSERT_TRUE(
      client_
          ->Create("/api/v1/namespaces",
                   {{"apiVersion", "v1"},
                    {"kind", "Namespace"},
                    {"metadata",
                     {{"name", "shop-live"},
                      {"labels", {{kEnvironmentKindLabel, "permanent"}}}}}})
          .ok());
  ASSERT_TRUE(client_
                  ->Create("/api/v1/namespaces",
                           {{"apiVersion", "v1"},
                            {"kind", "Namespace"},
                            {"metadata", {{"name", "shop-scratch"}}}})
                  .ok());
  absl::Status s = DeleteNamespaceGuarded(*client_, "shop-prod", {});
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_THAT(s.message(), HasSubstr("permanent"));
  s = DeleteNamespaceGuarded(*client_, "shop-live", {});
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  s = DeleteNamespaceGuarded(*client_, "shop-scratch", {"shop-scratch"});
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  // An unreadable namespace is never deleted either.
  s = DeleteNamespaceGuarded(*client_, "shop-missing", {});
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_TRUE(KubectlFinds({"namespace", "shop-prod"}));
  EXPECT_TRUE(KubectlFinds({"namespace", "shop-live"}));
  EXPECT_TRUE(KubectlFinds({"namespace", "shop-scratch"}));
  EXPECT_TRUE(DeleteNamespaceGuarded(*client_, "shop-scratch", {}).ok());
  WaitNamespaceGone("shop-scratch");

  // ApplyPlan goes through the guard even for a plan that says delete.
  Plan forged;
  Change c;
  c.action = Action::kDelete;
  c.kind = &NamespaceKind();
  c.name = "shop-prod";
  forged.changes.push_back(c);
  s = ApplyPlan(*client_, forged, [](const std::string&) {});
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_TRUE(KubectlFinds({"namespace", "shop-prod"}));

  EXPECT_TRUE(IsPermanentNamespace(json::object(), {}));  // no name
  EXPECT_FALSE(
      IsPermanentNamespace({{"metadata", {{"name", "shop-cicd"}}}}, {}));
}

TEST_F(FactoryApplyTest, SecretValuesNeverInPlansReportsOrErrors) {
  const std::string example = ReadExample();
  Apply(MakeFactoryPlan(example));
  secrets_.Set("db-password", kNewDbPassword);
  secrets_.Set("registry-token", std::string(kRegistryToken) + "-rotated");
  Apply(MakeFactoryPlan(example));
  EXPECT_THAT(output_, HasSubstr("(secret value changed)"));
  // An API error on a secret's write names the object, not its value.
  server_->InjectFault("PUT", "/api/v1/namespaces/shop-prod/secrets/database",
                       422, 10);
  secrets_.Set("db-password", kDbPassword);
  Plan plan = MakeFactoryPlan(example);
  absl::Status s = ApplyPlan(
      *client_, plan, [this](const std::string& l) { output_ += l + "\n"; });
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(s.message(), HasSubstr("Secret shop-prod/database"));
  output_ += std::string(s.message());
  // A missing secret's error names the secret only.
  source::Secrets none;
  LoadedFactory f = LoadFactoryText(example, "shop.factory.yaml", none);
  ASSERT_FALSE(f.ok());
  output_ += pipeline::JoinDiagnostics(f.errors);
  LoadedFactory good = LoadFactoryText(example, "f", secrets_);
  ASSERT_TRUE(good.ok());
  auto desired = BuildDesired(good.factory, none);
  ASSERT_FALSE(desired.ok());
  output_ += std::string(desired.status().message());
  ExpectNoSecretIn(output_);
  ExpectNoSecretIn(absl::StrReplaceAll(output_, {{"-rotated", ""}}));
}

}  // namespace
}  // namespace kiln::factory
