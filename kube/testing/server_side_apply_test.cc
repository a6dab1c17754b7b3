#include "kube/testing/server_side_apply.h"

#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kiln::kube::testing {
namespace {

using nlohmann::json;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::UnorderedElementsAre;

json Deployment(int replicas, const std::string& image) {
  json d = {{"apiVersion", "apps/v1"},
            {"kind", "Deployment"},
            {"metadata", {{"name", "web"}, {"labels", {{"app", "web"}}}}},
            {"spec",
             {{"template",
               {{"spec",
                 {{"containers", {{{"name", "app"}, {"image", image}}}}}}}}}}};
  if (replicas > 0) d["spec"]["replicas"] = replicas;
  return d;
}

const json& ManagerEntry(const json& obj, const std::string& manager) {
  for (const json& e : obj["metadata"]["managedFields"]) {
    if (e["manager"] == manager) return e;
  }
  static const json none;
  return none;
}

TEST(ServerSideApplyTest, CreateOwnsEveryAppliedField) {
  ApplyResult r = ServerSideApply(json(), Deployment(2, "nginx:1"), "kiln",
                                  false, "apps/v1", absl::Now());
  ASSERT_EQ(r.code, 200) << r.message;
  const json& e = ManagerEntry(r.object, "kiln");
  EXPECT_EQ(e["operation"], "Apply");
  EXPECT_EQ(e["fieldsType"], "FieldsV1");
  EXPECT_THAT(FieldPaths(e["fieldsV1"]),
              UnorderedElementsAre(
                  ".metadata.labels.app", ".spec.replicas",
                  ".spec.template.spec.containers[name=\"app\"][.]",
                  ".spec.template.spec.containers[name=\"app\"].name",
                  ".spec.template.spec.containers[name=\"app\"].image"));
  EXPECT_TRUE(e["fieldsV1"]["f:spec"].contains("f:replicas"));
  EXPECT_EQ(r.object["spec"]["replicas"], 2);
}

TEST(ServerSideApplyTest, ConflictNamesTheOtherManagerUnlessForced) {
  json live = Deployment(3, "nginx:1");
  TrackUpdate(json(), &live, "kubectl-client-side-apply", "apps/v1",
              absl::Now());
  ApplyResult r = ServerSideApply(live, Deployment(1, "nginx:1"), "kiln", false,
                                  "apps/v1", absl::Now());
  ASSERT_EQ(r.code, 409);
  EXPECT_THAT(r.message,
              HasSubstr("Apply failed with 1 conflict: conflict with "
                        "\"kubectl-client-side-apply\" using apps/v1: "
                        ".spec.replicas"));
  // The same value is shared ownership, not a conflict.
  ApplyResult same = ServerSideApply(live, Deployment(3, "nginx:1"), "kiln",
                                     false, "apps/v1", absl::Now());
  EXPECT_EQ(same.code, 200) << same.message;

  ApplyResult forced = ServerSideApply(live, Deployment(1, "nginx:1"), "kiln",
                                       true, "apps/v1", absl::Now());
  ASSERT_EQ(forced.code, 200) << forced.message;
  EXPECT_EQ(forced.object["spec"]["replicas"], 1);
  const json& other = ManagerEntry(forced.object, "kubectl-client-side-apply");
  EXPECT_FALSE(other["fieldsV1"]["f:spec"].contains("f:replicas"));
}

TEST(ServerSideApplyTest, FieldsNoLongerAppliedAreRemovedUnlessShared) {
  ApplyResult first = ServerSideApply(json(), Deployment(2, "nginx:1"), "kiln",
                                      false, "apps/v1", absl::Now());
  ASSERT_EQ(first.code, 200);
  ApplyResult second = ServerSideApply(first.object, Deployment(0, "nginx:2"),
                                       "kiln", false, "apps/v1", absl::Now());
  ASSERT_EQ(second.code, 200) << second.message;
  EXPECT_FALSE(second.object["spec"].contains("replicas"));
  EXPECT_EQ(second.object["spec"]["template"]["spec"]["containers"][0]["image"],
            "nginx:2");

  // Owned by another applier too: kept.
  ApplyResult other = ServerSideApply(first.object, Deployment(2, "nginx:1"),
                                      "helm", false, "apps/v1", absl::Now());
  ASSERT_EQ(other.code, 200);
  ApplyResult third = ServerSideApply(other.object, Deployment(0, "nginx:1"),
                                      "kiln", false, "apps/v1", absl::Now());
  ASSERT_EQ(third.code, 200);
  EXPECT_EQ(third.object["spec"]["replicas"], 2);
}

TEST(ServerSideApplyTest, RemovedListItemGoesAway) {
  json two = Deployment(1, "a:1");
  two["spec"]["template"]["spec"]["containers"].push_back(
      {{"name", "sidecar"}, {"image", "b:1"}});
  ApplyResult first =
      ServerSideApply(json(), two, "kiln", false, "apps/v1", absl::Now());
  ASSERT_EQ(first.code, 200);
  ApplyResult second = ServerSideApply(first.object, Deployment(1, "a:1"),
                                       "kiln", false, "apps/v1", absl::Now());
  ASSERT_EQ(second.code, 200);
  ASSERT_EQ(second.object["spec"]["template"]["spec"]["containers"].size(), 1);
  EXPECT_EQ(second.object["spec"]["template"]["spec"]["containers"][0]["name"],
            "app");
}

TEST(ServerSideApplyTest, ReapplyingTheSameConfigChangesNothing) {
  ApplyResult first = ServerSideApply(json(), Deployment(2, "nginx:1"), "kiln",
                                      false, "apps/v1", absl::Now());
  ApplyResult again =
      ServerSideApply(first.object, Deployment(2, "nginx:1"), "kiln", false,
                      "apps/v1", absl::Now() + absl::Hours(1));
  EXPECT_EQ(again.object, first.object);
}

TEST(ServerSideApplyTest, RefusesManagedFieldsInTheBody) {
  json d = Deployment(1, "a:1");
  d["metadata"]["managedFields"] = json::array();
  EXPECT_EQ(
      ServerSideApply(json(), d, "kiln", false, "apps/v1", absl::Now()).code,
      400);
}

TEST(ServerSideApplyTest, ParsesYamlBodies) {
  auto j = ParseApplyBody(
      "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n"
      "data: {a: \"1\", b: x}\nx: 3\n");
  ASSERT_TRUE(j.ok()) << j.status();
  EXPECT_EQ((*j)["data"]["a"], "1");
  EXPECT_EQ((*j)["x"], 3);
  EXPECT_FALSE(ParseApplyBody("[1, 2").ok());
  auto js = ParseApplyBody(R"({"kind":"ConfigMap"})");
  ASSERT_TRUE(js.ok());
  EXPECT_THAT(FieldPaths(json{{"f:a", json::object()}}), ElementsAre(".a"));
}

}  // namespace
}  // namespace kiln::kube::testing
