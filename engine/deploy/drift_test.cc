// The deploy memo's comparisons: a recorded deployment against what a deploy
// would apply, and a recorded object against its live state.
#include "engine/deploy/drift.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kiln::deploy {
namespace {

using json = nlohmann::json;
using ::testing::HasSubstr;

std::vector<Manifest> Manifests() {
  std::vector<Manifest> out;
  auto add = [&out](const char* api, const char* kind, const char* name,
                    json extra) {
    Manifest m;
    m.api_version = api;
    m.kind = kind;
    m.name = name;
    m.object = {
        {"apiVersion", api}, {"kind", kind}, {"metadata", {{"name", name}}}};
    m.object.merge_patch(extra);
    out.push_back(std::move(m));
  };
  add("v1", "ConfigMap", "settings",
      json::parse(R"({"metadata": {"labels": {"app": "hello"}}})"));
  add("apps/v1", "Deployment", "hello", json::parse(R"({
        "metadata": {"annotations": {"team": "web"}},
        "spec": {"template": {"spec": {"containers": [
          {"name": "c", "image": "hello:1"}]}}}})"));
  return out;
}

store::DeploymentRecord Record() {
  store::DeploymentRecord r;
  r.id = 7;
  r.run_id = "r1";
  r.environment = "stage";
  r.namespace_name = "shop-stage";
  r.kube_context = "dev";
  r.manifests_digest = "sha256:aa";
  r.images = {"hello:1"};
  r.succeeded = true;
  r.objects = {{"v1", "ConfigMap", "shop-stage", "settings"},
               {"apps/v1", "Deployment", "shop-stage", "hello"}};
  r.objects[0].uid = "u-cm";
  r.objects[0].resource_version = "10";
  r.objects[1].uid = "u-dep";
  r.objects[1].resource_version = "12";
  r.objects[1].generation = 2;
  return r;
}

DeployIntent Intent() {
  DeployIntent i;
  i.environment = "stage";
  i.namespace_name = "shop-stage";
  i.kube_context = "dev";
  i.manifests_digest = "sha256:aa";
  return i;
}

TEST(RecordMismatchTest, TheSameDeploymentStands) {
  EXPECT_EQ(RecordMismatch(Record(), Intent(), Manifests()), "");
}

TEST(RecordMismatchTest, EachDifferenceIsNamed) {
  store::DeploymentRecord failed = Record();
  failed.succeeded = false;
  EXPECT_EQ(RecordMismatch(failed, Intent(), Manifests()),
            "deployment 7 failed");

  store::DeploymentRecord rollback = Record();
  rollback.rollback_to = 3;
  EXPECT_THAT(RecordMismatch(rollback, Intent(), Manifests()),
              HasSubstr("rollback"));

  DeployIntent other = Intent();
  other.manifests_digest = "sha256:bb";
  EXPECT_EQ(RecordMismatch(Record(), other, Manifests()),
            "the manifests changed (deployment 7 applied sha256:aa)");

  other = Intent();
  other.kube_context = "prod";
  EXPECT_THAT(RecordMismatch(Record(), other, Manifests()),
              HasSubstr("elsewhere"));

  other = Intent();
  other.force = true;
  EXPECT_EQ(RecordMismatch(Record(), other, Manifests()),
            "force is on, deployment 7 had it off");

  store::DeploymentRecord images = Record();
  images.images = {"hello:0"};
  EXPECT_THAT(RecordMismatch(images, Intent(), Manifests()),
              HasSubstr("images differ"));

  std::vector<Manifest> fewer = Manifests();
  fewer.erase(fewer.begin());  // the ConfigMap
  EXPECT_THAT(RecordMismatch(Record(), Intent(), fewer),
              HasSubstr("objects differ"));

  // A record from before schema 7 has no live state: never unchanged.
  store::DeploymentRecord old = Record();
  old.objects[1].uid.clear();
  EXPECT_THAT(RecordMismatch(old, Intent(), Manifests()),
              HasSubstr("no live state of Deployment/hello"));
}

json Live(const store::DeployedObject& o) {
  json meta = {{"name", o.name},
               {"namespace", o.namespace_name},
               {"uid", o.uid},
               {"resourceVersion", o.resource_version},
               {"labels",
                {{"kiln.dev/environment", "stage"},
                 {"app.kubernetes.io/managed-by", "kiln"},
                 {"app", "hello"}}},
               {"annotations", {{"team", "web"}}}};
  if (o.generation > 0) meta["generation"] = o.generation;
  json live = {
      {"apiVersion", o.api_version}, {"kind", o.kind}, {"metadata", meta}};
  if (o.kind == "Deployment") {
    live["spec"] = {{"replicas", 2}};
    live["status"] = {{"observedGeneration", o.generation},
                      {"replicas", 2},
                      {"updatedReplicas", 2},
                      {"readyReplicas", 2},
                      {"availableReplicas", 2}};
  }
  return live;
}

TEST(ObjectDriftTest, AnUntouchedObjectMatches) {
  store::DeploymentRecord r = Record();
  std::vector<Manifest> m = Manifests();
  for (int i = 0; i < 2; ++i) {
    json live = Live(r.objects[i]);
    EXPECT_EQ(ObjectDrift(r.objects[i], &live, &m[i], "stage", true), "");
  }
}

TEST(ObjectDriftTest, MissingOrRecreatedObjectsDrift) {
  store::DeploymentRecord r = Record();
  EXPECT_EQ(
      ObjectDrift(r.objects[0], nullptr, nullptr, "stage", false),
      "ConfigMap/settings: not found (deleted, or kiln's labels removed)");
  json live = Live(r.objects[0]);
  live["metadata"]["uid"] = "u-other";
  EXPECT_EQ(ObjectDrift(r.objects[0], &live, nullptr, "stage", false),
            "ConfigMap/settings: recreated (another uid)");
  live = Live(r.objects[0]);
  live["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z";
  EXPECT_EQ(ObjectDrift(r.objects[0], &live, nullptr, "stage", false),
            "ConfigMap/settings: being deleted");
}

// Without a generation, any write (resourceVersion) is drift; with one,
// only a spec change (generation) is, so controllers' status writes are not.
TEST(ObjectDriftTest, GenerationWinsOverResourceVersion) {
  store::DeploymentRecord r = Record();
  json cm = Live(r.objects[0]);
  cm["metadata"]["resourceVersion"] = "11";
  EXPECT_EQ(ObjectDrift(r.objects[0], &cm, nullptr, "stage", false),
            "ConfigMap/settings: resourceVersion 11, recorded 10");

  json dep = Live(r.objects[1]);
  dep["metadata"]["resourceVersion"] = "99";  // a status write
  EXPECT_EQ(ObjectDrift(r.objects[1], &dep, nullptr, "stage", false), "");
  dep["metadata"]["generation"] = 3;  // kubectl scale / edit of the spec
  EXPECT_EQ(ObjectDrift(r.objects[1], &dep, nullptr, "stage", false),
            "Deployment/hello: generation 3, recorded 2");
}

TEST(ObjectDriftTest, KilnsMetadataMustStay) {
  store::DeploymentRecord r = Record();
  std::vector<Manifest> m = Manifests();
  json live = Live(r.objects[0]);
  live["metadata"]["labels"].erase("app.kubernetes.io/managed-by");
  EXPECT_EQ(ObjectDrift(r.objects[0], &live, &m[0], "stage", false),
            "ConfigMap/settings: kiln's labels changed");
  live = Live(r.objects[0]);
  EXPECT_THAT(ObjectDrift(r.objects[0], &live, &m[0], "prod", false),
              HasSubstr("kiln's labels changed"));
  live["metadata"]["labels"]["app"] = "other";
  EXPECT_EQ(ObjectDrift(r.objects[0], &live, &m[0], "stage", false),
            "ConfigMap/settings: label app changed");
  json dep = Live(r.objects[1]);
  dep["metadata"].erase("annotations");
  EXPECT_EQ(ObjectDrift(r.objects[1], &dep, &m[1], "stage", false),
            "Deployment/hello: annotation team removed");
  // A label someone else added is not kiln's field.
  dep = Live(r.objects[1]);
  dep["metadata"]["labels"]["extra"] = "x";
  EXPECT_EQ(ObjectDrift(r.objects[1], &dep, &m[1], "stage", false), "");
}

TEST(ObjectDriftTest, AWaitedWorkloadMustStillBeRolledOut) {
  store::DeploymentRecord r = Record();
  json dep = Live(r.objects[1]);
  dep["status"]["readyReplicas"] = 1;
  EXPECT_THAT(ObjectDrift(r.objects[1], &dep, nullptr, "stage", true),
              HasSubstr("Deployment/hello: not rolled out (2 of 2 updated, 1 "
                        "ready"));
  // Without wait the rollout is not the deploy's business.
  EXPECT_EQ(ObjectDrift(r.objects[1], &dep, nullptr, "stage", false), "");
  dep = Live(r.objects[1]);
  dep["status"]["observedGeneration"] = 1;
  EXPECT_THAT(ObjectDrift(r.objects[1], &dep, nullptr, "stage", true),
              HasSubstr("not rolled out (waiting for the controller"));
}

}  // namespace
}  // namespace kiln::deploy
