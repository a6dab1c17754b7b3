#include "engine/deploy/manifests.h"

#include "engine/deploy/deployer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kiln::deploy {
namespace {

using nlohmann::json;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr char kApp[] = R"(apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  template:
    metadata: {labels: {app: web}}
    spec:
      initContainers: [{name: init, image: "busybox:1"}]
      containers: [{name: app, image: "reg.example/web@sha256:abc"}]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec: {ports: [{port: 80}]}
---
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: prod}
data: {replicas: "3", on: "true"}
---
apiVersion: v1
kind: Namespace
metadata: {name: prod}
)";

TEST(ManifestsTest, ParsesOrdersAndTypesScalars) {
  auto m = ParseManifests(kApp, "manifests.yaml");
  ASSERT_TRUE(m.ok()) << m.status();
  ASSERT_EQ(m->size(), 4u);
  EXPECT_EQ((*m)[0].object["spec"]["replicas"], 2);
  EXPECT_EQ((*m)[2].object["data"]["replicas"], "3");
  OrderForApply(&*m);
  std::vector<std::string> kinds;
  for (const Manifest& x : *m) kinds.push_back(x.kind);
  EXPECT_THAT(kinds,
              ElementsAre("Namespace", "ConfigMap", "Service", "Deployment"));
  EXPECT_THAT(ImagesOf(*m),
              ElementsAre("busybox:1", "reg.example/web@sha256:abc"));
}

TEST(ManifestsTest, PlacesAndLabelsOrRefusesAnotherNamespace) {
  auto m = ParseManifests(kApp, "manifests.yaml");
  ASSERT_TRUE(m.ok());
  Manifest& web = (*m)[0];
  ASSERT_TRUE(PrepareNamespaced(&web, "prod", "production").ok());
  EXPECT_EQ(web.object["metadata"]["namespace"], "prod");
  EXPECT_EQ(web.object["metadata"]["labels"][kEnvironmentLabel], "production");
  EXPECT_EQ(
      web.object["spec"]["template"]["metadata"]["labels"][kEnvironmentLabel],
      "production");
  Manifest& cm = (*m)[2];
  absl::Status s = PrepareNamespaced(&cm, "stage", "stage");
  EXPECT_TRUE(absl::IsFailedPrecondition(s));
  EXPECT_THAT(std::string(s.message()),
              HasSubstr("ConfigMap \"settings\" is in namespace \"prod\""));
  Manifest& ns = (*m)[3];
  EXPECT_TRUE(
      absl::IsFailedPrecondition(PrepareClusterScoped(&ns, "stage", "stage")));
  EXPECT_TRUE(PrepareClusterScoped(&ns, "prod", "production").ok());
}

TEST(ManifestsTest, RefusesBadDocuments) {
  EXPECT_THAT(std::string(ParseManifests("kind: ConfigMap\nmetadata: {name: "
                                         "a}\n",
                                         "m.yaml")
                              .status()
                              .message()),
              HasSubstr("m.yaml document 1: the object has no apiVersion"));
  EXPECT_THAT(std::string(ParseManifests("apiVersion: v1\nkind: Pod\n"
                                         "metadata: {generateName: a-}\n",
                                         "m.yaml")
                              .status()
                              .message()),
              HasSubstr("generateName cannot be applied"));
  EXPECT_THAT(
      std::string(ParseManifests("apiVersion: v1\nkind: ConfigMap\nmetadata: "
                                 "{name: a}\n---\napiVersion: v1\nkind: "
                                 "ConfigMap\nmetadata: {name: a}\n",
                                 "m.yaml")
                      .status()
                      .message()),
      HasSubstr("appears twice"));
  // Aliases bombs and junk are the hardened parser's: refused, not hung.
  EXPECT_FALSE(ParseManifests("a: &a [*a]\n", "m.yaml").ok());
  EXPECT_FALSE(ParseManifests("\n,\n", "m.yaml").ok());
}

TEST(ManifestsTest, RolloutStates) {
  json d = {{"kind", "Deployment"},
            {"metadata", {{"generation", 2}}},
            {"spec", {{"replicas", 2}}},
            {"status",
             {{"observedGeneration", 1},
              {"updatedReplicas", 2},
              {"readyReplicas", 2},
              {"availableReplicas", 2}}}};
  EXPECT_FALSE(CheckRollout(d).done);  // generation not observed yet
  d["status"]["observedGeneration"] = 2;
  EXPECT_TRUE(CheckRollout(d).done);
  d["status"]["availableReplicas"] = 1;
  EXPECT_FALSE(CheckRollout(d).done);
  d["status"]["conditions"] = {{{"type", "Progressing"},
                                {"status", "False"},
                                {"reason", "ProgressDeadlineExceeded"}}};
  EXPECT_TRUE(CheckRollout(d).failed);
  json job = {{"kind", "Job"},
              {"status",
               {{"conditions",
                 {{{"type", "Failed"},
                   {"status", "True"},
                   {"reason", "BackoffLimitExceeded"}}}}}}};
  EXPECT_TRUE(CheckRollout(job).failed);
  EXPECT_THAT(CheckRollout(job).detail, HasSubstr("BackoffLimitExceeded"));
}

}  // namespace
}  // namespace kiln::deploy
