// The factory file loader: every error positioned FILE:LINE:COL, none
// carrying a secret value.
#include "engine/factory/loader.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "engine/factory/desired.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kiln::factory {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kSecretValue[] = "hunter2-very-secret";

source::Secrets TestSecrets() {
  source::Secrets s;
  s.Set("db-password", kSecretValue);
  s.Set("registry-token", "tok-123-secret");
  return s;
}

std::string Errors(const std::string& yaml) {
  LoadedFactory f = LoadFactoryText(yaml, "f.yaml", TestSecrets());
  return pipeline::JoinDiagnostics(f.errors);
}

TEST(FactoryLoaderTest, TheExampleLoads) {
  LoadedFactory f =
      LoadFactoryFile("examples/factory/shop.factory.yaml", TestSecrets());
  ASSERT_TRUE(f.ok()) << pipeline::JoinDiagnostics(f.errors);
  EXPECT_EQ(f.factory.name(), "envs");
  ASSERT_EQ(f.factory.factories_size(), 1);
  EXPECT_EQ(f.factory.factories(0).namespaces_size(), 4);
  EXPECT_EQ(f.factory.factories(0).namespaces(3).kind(),
            v1::FactoryNamespace::PERMANENT);
  EXPECT_TRUE(f.factory.factories(0).has_previews());
  EXPECT_FALSE(f.factory.has_previews());
  ASSERT_EQ(f.factory.cluster_roles_size(), 1);
  ASSERT_EQ(f.factory.cluster_role_bindings_size(), 1);
}

TEST(FactoryLoaderTest, PreviewsTemplateIsChecked) {
  std::string errors = Errors(
      "name: shop\n"
      "namespaces: [{suffix: cicd, service_accounts: [deployer]}]\n"
      "previews:\n"
      "  suffix: pr\n"
      "  quota: {hard: {pods: lots}}\n"
      "  network: {allow_from: [cid]}\n"
      "  service_accounts: [app]\n"
      "  role_bindings:\n"
      "    - {name: b, role: nope, service_accounts: [app, cicd/deployer, "
      "ghost]}\n"
      "  secrets: [{name: s, data: {k: db-pasword}}]\n");
  EXPECT_THAT(errors, HasSubstr("f.yaml:4:3: unknown field 'suffix' in "
                                "factory.previews"));
  // Only the decode errors are reported until the file decodes.
  errors = Errors(
      "name: shop\n"
      "namespaces: [{suffix: cicd, service_accounts: [deployer]}]\n"
      "previews:\n"
      "  quota: {hard: {pods: lots}}\n"
      "  network: {allow_from: [cid]}\n"
      "  service_accounts: [app]\n"
      "  role_bindings:\n"
      "    - {name: b, role: nope, service_accounts: [app, cicd/deployer, "
      "ghost]}\n"
      "  secrets: [{name: s, data: {k: db-pasword}}]\n");
  EXPECT_THAT(errors, HasSubstr("f.yaml:4:24: factory.previews.quota.hard."
                                "pods: 'lots' is not a Kubernetes quantity"));
  EXPECT_THAT(errors, HasSubstr("f.yaml:5:26: factory.previews.network."
                                "allow_from[0]: no namespace with suffix "
                                "'cid'"));
  EXPECT_THAT(errors, HasSubstr("f.yaml:8:23: factory.previews.role_bindings"
                                "[0].role: no role 'nope' in the previews "
                                "template"));
  EXPECT_THAT(errors, HasSubstr("factory.previews.role_bindings[0]."
                                "service_accounts[2]: no service account "
                                "'ghost' in the previews template"));
  EXPECT_THAT(errors, Not(HasSubstr("service_accounts[0]")));
  EXPECT_THAT(errors, Not(HasSubstr("service_accounts[1]")));
  EXPECT_THAT(errors, HasSubstr("factory.previews.secrets[0].data.k: no kiln "
                                "secret named 'db-pasword'"));
}

TEST(FactoryLoaderTest, ClusterRbacIsChecked) {
  std::string errors = Errors(
      "name: envs\n"
      "namespaces: [{suffix: system, service_accounts: [factory]}]\n"
      "cluster_roles:\n"
      "  - {name: envs-factory, rules: [{resources: [namespaces]}]}\n"
      "cluster_role_bindings:\n"
      "  - {name: b, role: envs-factroy, service_accounts: [factory, "
      "nope/factory]}\n"
      "factories:\n"
      "  - name: shop\n"
      "    cluster_roles: [{name: envs-factory, rules: [{resources: [pods], "
      "verbs: [get]}]}]\n");
  EXPECT_THAT(errors, HasSubstr("f.yaml:4:34: factory.cluster_roles[0].rules"
                                "[0]: a rule needs verbs and resources"));
  EXPECT_THAT(errors, HasSubstr("f.yaml:6:21: factory.cluster_role_bindings"
                                "[0].role: no cluster role 'envs-factroy' in "
                                "factory 'envs'"));
  EXPECT_THAT(errors, HasSubstr("factory.cluster_role_bindings[0]."
                                "service_accounts[0]: 'factory' is not "
                                "SUFFIX/NAME"));
  EXPECT_THAT(errors, HasSubstr("factory.cluster_role_bindings[0]."
                                "service_accounts[1]: 'nope/factory' is not "
                                "SUFFIX/NAME"));
  EXPECT_THAT(errors, HasSubstr("factory.factories[0].cluster_roles[0].name: "
                                "duplicate cluster role 'envs-factory'"));
}

TEST(FactoryLoaderTest, UnknownKeyWithPositionAndSuggestion) {
  EXPECT_THAT(Errors("name: shop\n"
                     "namespaces:\n"
                     "  - suffix: cicd\n"
                     "    qouta: {hard: {pods: '1'}}\n"),
              HasSubstr("f.yaml:4:5: unknown field 'qouta' in "
                        "factory.namespaces[0] (did you mean 'quota'?)"));
  EXPECT_THAT(Errors("nme: shop\n"), HasSubstr("f.yaml:1:1: unknown field "
                                               "'nme' in factory"));
}

TEST(FactoryLoaderTest, BadNames) {
  EXPECT_THAT(Errors("name: Shop_1\n"),
              HasSubstr("f.yaml:1:7: factory.name: factory name 'Shop_1' is "
                        "not a DNS-1123 label"));
  EXPECT_THAT(Errors("name: shop\n"
                     "namespaces:\n"
                     "  - suffix: CICD\n"),
              HasSubstr("f.yaml:3:13: factory.namespaces[0].suffix: "
                        "namespace 'shop-CICD' is not a DNS-1123 label"));
  EXPECT_THAT(Errors("name: shop\n"
                     "namespaces:\n"
                     "  - suffix: cicd\n"
                     "    config_maps: [{name: Bad_Name}]\n"),
              HasSubstr("f.yaml:4:26: factory.namespaces[0].config_maps[0]."
                        "name: config map name 'Bad_Name' is not a DNS-1123 "
                        "subdomain"));
  EXPECT_THAT(Errors(absl::StrCat("name: shop\nnamespaces:\n  - suffix: ",
                                  std::string(60, 'a'), "\n")),
              HasSubstr("f.yaml:3:13: factory.namespaces[0].suffix: "
                        "namespace 'shop-aaaa"));
}

TEST(FactoryLoaderTest, DuplicateObjects) {
  EXPECT_THAT(Errors("name: shop\n"
                     "namespaces:\n"
                     "  - suffix: cicd\n"
                     "    service_accounts: [deployer, deployer]\n"),
              HasSubstr("f.yaml:4:34: factory.namespaces[0]."
                        "service_accounts[1].name: duplicate service account "
                        "'deployer'"));
  EXPECT_THAT(Errors("name: shop\n"
                     "namespaces:\n"
                     "  - suffix: cicd\n"
                     "  - suffix: cicd\n"),
              HasSubstr("f.yaml:4:13: factory.namespaces[1].suffix: "
                        "duplicate namespace 'shop-cicd'"));
  // A nested factory declaring a namespace its parent declares.
  EXPECT_THAT(Errors("name: a\n"
                     "namespaces: [{suffix: b-x}]\n"
                     "factories:\n"
                     "  - name: a-b\n"
                     "    namespaces: [{suffix: x}]\n"),
              HasSubstr("f.yaml:5:27: factory.factories[0].namespaces[0]."
                        "suffix: duplicate namespace 'a-b-x'"));
}

TEST(FactoryLoaderTest, QuantityThatIsNotAKubernetesQuantity) {
  EXPECT_THAT(Errors("name: shop\n"
                     "namespaces:\n"
                     "  - suffix: cicd\n"
                     "    quota:\n"
                     "      hard: {pods: '20', requests.memory: 8GB}\n"),
              HasSubstr("f.yaml:5:43: factory.namespaces[0].quota.hard."
                        "requests.memory: '8GB' is not a Kubernetes "
                        "quantity"));
  EXPECT_THAT(Errors("name: shop\n"
                     "namespaces:\n"
                     "  - suffix: cicd\n"
                     "    limits: {max: {cpu: lots}}\n"),
              HasSubstr("f.yaml:4:25: factory.namespaces[0].limits.max.cpu: "
                        "'lots' is not a Kubernetes quantity"));
}

TEST(FactoryLoaderTest, SecretNotFoundNamesItNeverAValue) {
  std::string errors = Errors(
      "name: shop\n"
      "namespaces:\n"
      "  - suffix: prod\n"
      "    secrets:\n"
      "      - {name: db, data: {password: db-pasword, user: db-password}}\n");
  EXPECT_THAT(errors, HasSubstr("f.yaml:5:37: factory.namespaces[0].secrets[0]"
                                ".data.password: no kiln secret named "
                                "'db-pasword' (--secrets-dir)"));
  EXPECT_THAT(errors, Not(HasSubstr(kSecretValue)));
}

TEST(FactoryLoaderTest, References) {
  std::string errors = Errors(
      "name: shop\n"
      "namespaces:\n"
      "  - suffix: test\n"
      "    network: {allow_from: [ci]}\n"
      "    role_bindings:\n"
      "      - {name: d, role: nope, service_accounts: [ghost, cicd/x]}\n");
  EXPECT_THAT(errors,
              HasSubstr("f.yaml:4:28: factory.namespaces[0].network."
                        "allow_from[0]: no namespace with suffix 'ci'"));
  EXPECT_THAT(errors, HasSubstr("f.yaml:6:25: factory.namespaces[0]."
                                "role_bindings[0].role: no role 'nope'"));
  EXPECT_THAT(errors, HasSubstr("f.yaml:6:50: factory.namespaces[0]."
                                "role_bindings[0].service_accounts[0]: no "
                                "service account 'ghost'"));
  EXPECT_THAT(errors, HasSubstr("f.yaml:6:57: factory.namespaces[0]."
                                "role_bindings[0].service_accounts[1]: "
                                "'cicd/x' is neither NAME nor SUFFIX/NAME"));
}

TEST(FactoryLoaderTest, KilnLabelsAreReserved) {
  EXPECT_THAT(Errors("name: shop\n"
                     "namespaces:\n"
                     "  - suffix: cicd\n"
                     "    labels: {kiln.dev/factory: other}\n"),
              HasSubstr("f.yaml:4:32: factory.namespaces[0].labels."
                        "kiln.dev/factory: label 'kiln.dev/factory' is set "
                        "by kiln"));
}

TEST(FactoryLoaderTest, YamlErrorsArePositioned) {
  EXPECT_THAT(Errors("name: shop\nname: again\n"), HasSubstr("f.yaml:2:1:"));
  EXPECT_THAT(Errors("name: [shop\n"), HasSubstr("f.yaml:"));
  EXPECT_THAT(Errors("namespaces: {suffix: x}\n"),
              HasSubstr("f.yaml:1:13: factory.namespaces: expected a "
                        "sequence"));
}

TEST(FactoryDesiredTest, LabelsAndNesting) {
  LoadedFactory f =
      LoadFactoryFile("examples/factory/shop.factory.yaml", TestSecrets());
  ASSERT_TRUE(f.ok()) << pipeline::JoinDiagnostics(f.errors);
  absl::StatusOr<std::vector<DesiredObject>> objects =
      BuildDesired(f.factory, TestSecrets());
  ASSERT_TRUE(objects.ok()) << objects.status();
  ASSERT_FALSE(objects->empty());
  bool seen_other = false;
  int permanent = 0;
  for (const DesiredObject& o : *objects) {
    // Namespaces first.
    if (o.kind != &NamespaceKind()) seen_other = true;
    EXPECT_FALSE(seen_other && o.kind == &NamespaceKind()) << o.Describe();
    const nlohmann::json& labels = o.manifest["metadata"]["labels"];
    EXPECT_EQ(labels.value(kFactoryLabel, ""), o.factory) << o.Describe();
    EXPECT_EQ(labels.value(kManagedByLabel, ""), "kiln");
    EXPECT_EQ(labels.value(kParentLabel, ""), o.factory == "shop" ? "envs" : "")
        << o.Describe();
    if (labels.value(kEnvironmentKindLabel, "") == "permanent") ++permanent;
  }
  EXPECT_EQ(permanent, 3);  // shop-test, shop-stage, shop-prod
}

}  // namespace
}  // namespace kiln::factory

namespace kiln::factory {
namespace {

TEST(FactoryDesiredTest, PreviewObjectsAreTheTemplateInTheNamespace) {
  LoadedFactory f =
      LoadFactoryFile("examples/factory/shop.factory.yaml", TestSecrets());
  ASSERT_TRUE(f.ok()) << pipeline::JoinDiagnostics(f.errors);
  auto objects =
      BuildPreviewObjects(f.factory, "shop", "shop-pr-1", TestSecrets());
  ASSERT_TRUE(objects.ok()) << objects.status();
  std::vector<std::string> described;
  for (const DesiredObject& o : *objects) {
    described.push_back(o.Describe());
    EXPECT_EQ(o.manifest["metadata"]["namespace"], "shop-pr-1");
    EXPECT_EQ(o.manifest["metadata"]["labels"][kFactoryLabel], "shop");
    EXPECT_EQ(o.manifest["metadata"]["labels"][kParentLabel], "envs");
  }
  EXPECT_THAT(described,
              ::testing::ElementsAre(
                  "ServiceAccount shop-pr-1/app", "Role shop-pr-1/deploy",
                  "RoleBinding shop-pr-1/deployer",
                  "ResourceQuota shop-pr-1/kiln-quota",
                  "LimitRange shop-pr-1/kiln-limits",
                  "NetworkPolicy shop-pr-1/kiln-default-deny",
                  "NetworkPolicy shop-pr-1/kiln-allow"));
  EXPECT_EQ((*objects)[2].manifest["subjects"][0]["namespace"], "shop-cicd");
  EXPECT_EQ(BuildPreviewObjects(f.factory, "envs", "x", TestSecrets())
                .status()
                .code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(BuildPreviewObjects(f.factory, "cart", "x", TestSecrets())
                .status()
                .code(),
            absl::StatusCode::kNotFound);
  // `kiln factory apply` creates no preview namespace: only the declared.
  auto desired = BuildDesired(f.factory, TestSecrets());
  ASSERT_TRUE(desired.ok()) << desired.status();
  int namespaces = 0;
  for (const DesiredObject& o : *desired) namespaces += IsNamespace(*o.kind);
  EXPECT_EQ(namespaces, 5);
}

}  // namespace
}  // namespace kiln::factory
