#include "kube/names.h"

#include <set>
#include <string>

#include "gtest/gtest.h"

namespace kiln::kube {
namespace {

TEST(DnsLabelTest, ValidLabelsAreKept) {
  EXPECT_EQ(DnsLabel("kiln-r1-build-1"), "kiln-r1-build-1");
  EXPECT_EQ(DnsLabel("a"), "a");
  EXPECT_EQ(DnsLabel(std::string(63, 'a')), std::string(63, 'a'));
}

TEST(DnsLabelTest, ChangedOrLongNamesGetAHashedSuffix) {
  for (const std::string& in :
       {std::string("Kiln-Run"), std::string("kiln_r1/build:x"),
        std::string(64, 'a'), std::string("-lead"), std::string("trail-"),
        std::string("___"), std::string(""), std::string(200, 'Z'),
        std::string("kiln-\xc3\xa9t\xc3\xa9")}) {
    std::string label = DnsLabel(in);
    EXPECT_TRUE(IsDnsLabel(label)) << in << " -> " << label;
    EXPECT_LE(label.size(), 63u);
    EXPECT_EQ(DnsLabel(in), label) << "deterministic";
  }
  EXPECT_EQ(DnsLabel("kiln_r1").substr(0, 8), "kiln-r1-");
  EXPECT_EQ(DnsLabel("Kiln").substr(0, 5), "kiln-");
  // Distinct inputs that map to the same characters stay distinct.
  std::set<std::string> labels = {DnsLabel("a_b"), DnsLabel("a.b"),
                                  DnsLabel("A-b"), DnsLabel("a-b")};
  EXPECT_EQ(labels.size(), 4u);
  std::string long_a = std::string(70, 'x') + "1";
  std::string long_b = std::string(70, 'x') + "2";
  EXPECT_NE(DnsLabel(long_a), DnsLabel(long_b));
  EXPECT_EQ(DnsLabel(long_a).size(), 63u);
}

TEST(DnsLabelTest, IsDnsLabel) {
  EXPECT_TRUE(IsDnsLabel("a-1"));
  EXPECT_FALSE(IsDnsLabel(""));
  EXPECT_FALSE(IsDnsLabel("A"));
  EXPECT_FALSE(IsDnsLabel("-a"));
  EXPECT_FALSE(IsDnsLabel("a-"));
  EXPECT_FALSE(IsDnsLabel("a.b"));
  EXPECT_FALSE(IsDnsLabel(std::string(64, 'a')));
}

TEST(PathsTest, CoreV1Paths) {
  EXPECT_EQ(PodsPath("ns"), "/api/v1/namespaces/ns/pods");
  EXPECT_EQ(PodPath("ns", "p"), "/api/v1/namespaces/ns/pods/p");
  EXPECT_EQ(SecretsPath("ns"), "/api/v1/namespaces/ns/secrets");
  EXPECT_EQ(NamespacePath("ns"), "/api/v1/namespaces/ns");
  EXPECT_EQ(EventsPath("ns"), "/api/v1/namespaces/ns/events");
}

}  // namespace
}  // namespace kiln::kube
