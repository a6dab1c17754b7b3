#include "kube/pod_shape.h"

#include "gtest/gtest.h"

namespace kiln {
namespace {

TEST(PodShape, LabelKeys) {
  for (const char* ok : {"a", "team", "example.com/team", "a.b-c_d",
                         "kubernetes.io/arch", "A1"}) {
    EXPECT_TRUE(ValidateLabelKey(ok).ok()) << ok;
  }
  for (const char* bad :
       {"", "-a", "a-", "Example.com/x", "a/b/c", "/x", "x/", "a b", "x@y"}) {
    EXPECT_FALSE(ValidateLabelKey(bad).ok()) << bad;
  }
  EXPECT_FALSE(ValidateLabelKey(std::string(64, 'a')).ok());
  EXPECT_TRUE(ValidateLabelKey(std::string(63, 'a')).ok());
  EXPECT_FALSE(ValidateUserLabelKey("kiln.dev/run").ok());
  EXPECT_FALSE(ValidateUserLabelKey("app.kubernetes.io/managed-by").ok());
  EXPECT_TRUE(ValidateUserLabelKey("app.kubernetes.io/name").ok());
  EXPECT_EQ(ValidateLabelKey("a b").message(),
            "key 'a b' is invalid: the name must be 1-63 characters of "
            "[-_.A-Za-z0-9], alphanumeric at both ends");
}

TEST(PodShape, LabelValues) {
  EXPECT_TRUE(ValidateLabelValue("").ok());
  EXPECT_TRUE(ValidateLabelValue("v1.2_3").ok());
  EXPECT_FALSE(ValidateLabelValue("a/b").ok());
  EXPECT_FALSE(ValidateLabelValue(std::string(64, 'x')).ok());
}

TEST(PodShape, Names) {
  EXPECT_TRUE(ValidateDnsSubdomain("regcred").ok());
  EXPECT_TRUE(ValidateDnsSubdomain("a.b-c").ok());
  EXPECT_FALSE(ValidateDnsSubdomain("RegCred").ok());
  EXPECT_FALSE(ValidateDnsSubdomain("a..b").ok());
  EXPECT_FALSE(ValidateDnsSubdomain("").ok());
}

TEST(PodShape, Resources) {
  for (const char* ok : {"cpu", "memory", "ephemeral-storage", "hugepages-2Mi",
                         "nvidia.com/gpu"}) {
    EXPECT_TRUE(ValidateResourceName(ok).ok()) << ok;
  }
  for (const char* bad : {"gpu", "CPU", "hugepages-", "a b/c"}) {
    EXPECT_FALSE(ValidateResourceName(bad).ok()) << bad;
  }
  for (const char* ok : {"1", "500m", "1.5Gi", "0.5", ".5", "1e3", "2E-2", "+3",
                         "128974848", "129M", "1Ki"}) {
    EXPECT_TRUE(ValidateQuantity(ok).ok()) << ok;
  }
  for (const char* bad :
       {"", "-1", "1.5.5", "1g", "Gi", "1 Gi", "1e", "1KiB", "abc", "."}) {
    EXPECT_FALSE(ValidateQuantity(bad).ok()) << bad;
  }
}

TEST(PodShape, Tolerations) {
  v1::PodToleration t;
  t.set_key("dedicated");
  t.set_value("ci");
  t.set_effect("NoSchedule");
  EXPECT_TRUE(ValidateToleration(t).ok());
  t.set_effect("NoScheduel");
  EXPECT_EQ(ValidateToleration(t).message(),
            "effect 'NoScheduel' is invalid: must be NoSchedule, "
            "PreferNoSchedule or NoExecute");
  t.set_effect("NoSchedule");
  t.set_toleration_seconds(10);
  EXPECT_FALSE(ValidateToleration(t).ok());
  t.set_effect("NoExecute");
  EXPECT_TRUE(ValidateToleration(t).ok());
  t.set_operator_("Exists");
  EXPECT_FALSE(ValidateToleration(t).ok());  // Exists with a value
  t.clear_value();
  EXPECT_TRUE(ValidateToleration(t).ok());
  t.clear_key();
  EXPECT_TRUE(ValidateToleration(t).ok());  // tolerate everything
  t.set_operator_("Equal");
  EXPECT_FALSE(ValidateToleration(t).ok());  // Equal needs a key
  t.set_operator_("Is");
  EXPECT_FALSE(ValidateToleration(t).ok());
}

TEST(PodShape, Affinity) {
  EXPECT_TRUE(ValidateAffinityJson(R"({"nodeAffinity":{}})").ok());
  EXPECT_FALSE(ValidateAffinityJson("[]").ok());
  EXPECT_FALSE(ValidateAffinityJson("{").ok());
  EXPECT_FALSE(ValidateAffinityJson(R"({"nodeAffinity":1})").ok());
  EXPECT_EQ(ValidateAffinityJson(R"({"nodeAfinity":{}})").message(),
            "affinity: unknown field 'nodeAfinity' (known: nodeAffinity, "
            "podAffinity, podAntiAffinity)");
}

TEST(PodShape, WholeShapeNamesTheField) {
  v1::PodShape s;
  (*s.mutable_labels())["team"] = "a";
  (*s.mutable_requests())["cpu"] = "1";
  EXPECT_TRUE(ValidatePodShape(s).ok());
  (*s.mutable_limits())["memory"] = "lots";
  EXPECT_EQ(ValidatePodShape(s).message().substr(0, 8), "limits: ");
  s.clear_limits();
  s.add_tolerations()->set_effect("Never");
  EXPECT_EQ(ValidatePodShape(s).message().substr(0, 16), "tolerations[0]: ");
}

TEST(PodShape, MergeOverlaysTheTask) {
  v1::PodShape base;
  (*base.mutable_node_selector())["pool"] = "ci";
  (*base.mutable_labels())["team"] = "a";
  base.set_service_account("default-sa");
  base.add_image_pull_secrets("regcred");
  base.add_tolerations()->set_key("x");
  v1::PodShape task;
  (*task.mutable_labels())["team"] = "b";
  (*task.mutable_labels())["extra"] = "1";
  task.add_image_pull_secrets("regcred");
  task.add_image_pull_secrets("other");
  task.add_tolerations()->set_key("y");
  v1::PodShape m = MergePodShapes(base, task);
  EXPECT_EQ(m.node_selector().at("pool"), "ci");
  EXPECT_EQ(m.labels().at("team"), "b");
  EXPECT_EQ(m.labels().at("extra"), "1");
  EXPECT_EQ(m.service_account(), "default-sa");
  ASSERT_EQ(m.image_pull_secrets_size(), 2);
  EXPECT_EQ(m.image_pull_secrets(1), "other");
  ASSERT_EQ(m.tolerations_size(), 2);
}

}  // namespace
}  // namespace kiln
