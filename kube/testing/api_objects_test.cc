#include "kube/testing/api_objects.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kiln {
namespace kube {
namespace testing {
namespace {

using nlohmann::json;

bool Sel(const std::string& sel, const json& labels) {
  auto s = LabelSelector::Parse(sel);
  EXPECT_TRUE(s.ok()) << sel << ": " << s.status();
  return s.ok() && s->Matches(labels);
}

TEST(LabelSelectorTest, Operators) {
  json l = {{"app", "web"}, {"tier", "front"}, {"kiln.dev/run", "r1"}};
  EXPECT_TRUE(Sel("", l));
  EXPECT_TRUE(Sel("app=web", l));
  EXPECT_TRUE(Sel("app==web", l));
  EXPECT_FALSE(Sel("app=db", l));
  EXPECT_TRUE(Sel("app!=db", l));
  EXPECT_TRUE(Sel("missing!=x", l));  // absent keys satisfy !=
  EXPECT_TRUE(Sel("app in (db, web)", l));
  EXPECT_FALSE(Sel("app notin (db,web)", l));
  EXPECT_TRUE(Sel("missing notin (x)", l));
  EXPECT_FALSE(Sel("missing in (x)", l));
  EXPECT_TRUE(Sel("tier", l));
  EXPECT_FALSE(Sel("!tier", l));
  EXPECT_TRUE(Sel("!missing", l));
  EXPECT_TRUE(Sel(" app = web , kiln.dev/run=r1,tier in (front)", l));
  EXPECT_FALSE(Sel("app=web,tier=back", l));
  EXPECT_FALSE(Sel("app=web", json()));
  EXPECT_TRUE(Sel("!app", json()));
  // An empty value is a value (as in the real grammar).
  EXPECT_TRUE(Sel("app=", {{"app", ""}}));
  EXPECT_FALSE(Sel("app=", l));
}

TEST(LabelSelectorTest, Errors) {
  for (const char* bad : {"=web", "app in web", "app in (a", "a)b", "app > 3",
                          "app=we b", "app=a,", "!app=x"}) {
    EXPECT_FALSE(LabelSelector::Parse(bad).ok()) << bad;
  }
}

TEST(FieldSelectorTest, SupportedFieldsOnly) {
  std::vector<std::string> fields = {"metadata.name", "status.phase",
                                     "spec.nodeName"};
  json pod = {{"metadata", {{"name", "a"}}},
              {"status", {{"phase", "Running"}}},
              {"spec", json::object()}};
  auto s = FieldSelector::Parse("metadata.name=a,status.phase!=Failed", fields);
  ASSERT_TRUE(s.ok());
  EXPECT_TRUE(s->Matches(pod));
  auto unbound = FieldSelector::Parse("spec.nodeName=", fields);
  ASSERT_TRUE(unbound.ok());
  EXPECT_TRUE(unbound->Matches(pod));  // a missing field is ""
  auto eqeq = FieldSelector::Parse("status.phase==Pending", fields);
  ASSERT_TRUE(eqeq.ok());
  EXPECT_FALSE(eqeq->Matches(pod));
  auto bad = FieldSelector::Parse("spec.foo=x", fields);
  EXPECT_FALSE(bad.ok());
  EXPECT_THAT(bad.status().message(), ::testing::HasSubstr("spec.foo"));
  EXPECT_FALSE(FieldSelector::Parse("nonsense", fields).ok());
}

TEST(PatchTest, MergePatch) {
  json o = {{"a", 1}, {"b", {{"c", 2}, {"d", 3}}}, {"l", {1, 2}}};
  auto r = ApplyMergePatch(o, {{"b", {{"c", nullptr}, {"e", 4}}}, {"l", {3}}});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, json({{"a", 1}, {"b", {{"d", 3}, {"e", 4}}}, {"l", {3}}}));
  EXPECT_FALSE(ApplyMergePatch(o, json::array()).ok());
}

TEST(PatchTest, JsonPatch) {
  json o = {{"a", {1, 2}}};
  auto r =
      ApplyJsonPatch(o, json::parse(R"([{"op":"add","path":"/a/-","value":3},
      {"op":"replace","path":"/a/0","value":0},{"op":"test","path":"/a/1","value":2}])"));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(*r, json({{"a", {0, 2, 3}}}));
  EXPECT_FALSE(
      ApplyJsonPatch(o, json::parse(R"([{"op":"remove","path":"/zz"}])")).ok());
  EXPECT_FALSE(ApplyJsonPatch(o, json::object()).ok());
}

TEST(PatchTest, StrategicMergeByKey) {
  json pod = json::parse(R"({
    "metadata": {"finalizers": ["a"], "labels": {"x": "1"}},
    "spec": {"containers": [
      {"name": "main", "image": "i:1", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]},
      {"name": "side", "image": "s:1"}],
     "tolerations": [{"key": "k1"}]}})");
  auto r = ApplyStrategicMergePatch(pod, json::parse(R"({
    "metadata": {"finalizers": ["b", "a"], "labels": {"x": null, "y": "2"}},
    "spec": {"containers": [
      {"name": "main", "env": [{"name": "B", "value": "3"}, {"name": "A", "$patch": "delete"}]},
      {"name": "new", "image": "n:1"}],
     "tolerations": [{"key": "k2"}]}})"));
  ASSERT_TRUE(r.ok()) << r.status();
  const json& c = (*r)["spec"]["containers"];
  ASSERT_EQ(c.size(), 3u);
  EXPECT_EQ(c[0]["image"], "i:1");  // merged, not replaced
  EXPECT_EQ(c[0]["env"], json::parse(R"([{"name":"B","value":"3"}])"));
  EXPECT_EQ(c[1]["name"], "side");
  EXPECT_EQ(c[2]["name"], "new");
  // Lists without a merge key are replaced; finalizers merge as a set.
  EXPECT_EQ((*r)["spec"]["tolerations"], json::parse(R"([{"key":"k2"}])"));
  EXPECT_EQ((*r)["metadata"]["finalizers"], json({"a", "b"}));
  EXPECT_EQ((*r)["metadata"]["labels"], json({{"y", "2"}}));
}

TEST(PatchTest, StrategicMergeDirectives) {
  json o = json::parse(R"({"spec": {
      "containers": [{"name": "a", "image": "1"}, {"name": "b", "image": "2"}],
      "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}},
      "args": ["x", "y", "z"], "keep": {"k": 1, "l": 2}}})");
  auto r = ApplyStrategicMergePatch(o, json::parse(R"({"spec": {
      "$setElementOrder/containers": [{"name": "b"}, {"name": "a"}],
      "containers": [{"name": "a", "image": "3"}],
      "strategy": {"$retainKeys": ["type"], "type": "Recreate"},
      "$deleteFromPrimitiveList/args": ["y"],
      "keep": {"$patch": "replace", "m": 3}}})"));
  ASSERT_TRUE(r.ok()) << r.status();
  const json& s = (*r)["spec"];
  EXPECT_EQ(s["containers"][0]["name"], "b");
  EXPECT_EQ(s["containers"][1]["image"], "3");
  EXPECT_EQ(s["strategy"], json({{"type", "Recreate"}}));
  EXPECT_EQ(s["args"], json({"x", "z"}));
  EXPECT_EQ(s["keep"], json({{"m", 3}}));
  auto replace = ApplyStrategicMergePatch(
      o,
      json::parse(
          R"({"spec":{"containers":[{"$patch":"replace"},{"name":"only","image":"o"}]}})"));
  ASSERT_TRUE(replace.ok());
  EXPECT_EQ((*replace)["spec"]["containers"],
            json::parse(R"([{"name":"only","image":"o"}])"));
  auto del = ApplyStrategicMergePatch(
      o, json::parse(R"({"spec":{"keep":{"$patch":"delete"}}})"));
  ASSERT_TRUE(del.ok());
  EXPECT_FALSE((*del)["spec"].contains("keep"));
  EXPECT_FALSE(
      ApplyStrategicMergePatch(
          o, json::parse(R"({"spec":{"containers":[{"image":"nokey"}]}})"))
          .ok());
  EXPECT_FALSE(
      ApplyStrategicMergePatch(o, json::parse(R"({"$patch":"bogus"})")).ok());
}

TEST(TimeTest, Formats) {
  absl::Time t = absl::FromUnixMillis(1700000000250);
  EXPECT_EQ(FormatTimeSeconds(t), "2023-11-14T22:13:20Z");
  EXPECT_EQ(FormatTimeNano(t), "2023-11-14T22:13:20.25Z");
  EXPECT_EQ(FormatTimeNano(absl::FromUnixSeconds(1700000000)),
            "2023-11-14T22:13:20Z");
  auto p = ParseTime("2023-11-14T22:13:20.25Z");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(*p, t);
  EXPECT_TRUE(ParseTime("2023-11-14T23:13:20+01:00").ok());
  EXPECT_FALSE(ParseTime("yesterday").ok());
}

}  // namespace
}  // namespace testing
}  // namespace kube
}  // namespace kiln
