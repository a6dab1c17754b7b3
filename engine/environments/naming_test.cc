#include "engine/environments/naming.h"

#include <string>

#include "gtest/gtest.h"

namespace kiln::environments {
namespace {

TEST(NamespaceNameTest, LowercasesAndReplacesInvalidRuns) {
  EXPECT_EQ(NamespaceName("kcow-Feature/JIRA-12_Fix"),
            "kcow-feature-jira-12-fix");
  EXPECT_EQ(NamespaceName("a__b..c//d"), "a-b-c-d");
  EXPECT_EQ(NamespaceName("already-fine"), "already-fine");
}

TEST(NamespaceNameTest, TrimsLeadingAndTrailingDashes) {
  EXPECT_EQ(NamespaceName("--x--"), "x");
  EXPECT_EQ(NamespaceName("/feature/"), "feature");
  EXPECT_EQ(NamespaceName("-_-a"), "a");
}

TEST(NamespaceNameTest, LeadingDigitsAreKept) {
  // RFC 1123 labels (namespaces) may start with a digit.
  EXPECT_EQ(NamespaceName("123-fix"), "123-fix");
  EXPECT_TRUE(IsNamespaceName(NamespaceName("1")));
}

TEST(NamespaceNameTest, UnicodeBecomesDashes) {
  // "café-ünïcode" in UTF-8: every non-ASCII byte is outside [a-z0-9].
  EXPECT_EQ(NamespaceName("caf\xc3\xa9-\xc3\xbcn\xc3\xaf"
                          "code"),
            "caf-n-code");
  std::string only_unicode = "\xe6\x97\xa5\xe6\x9c\xac";  // 日本
  std::string name = NamespaceName(only_unicode);
  EXPECT_TRUE(IsNamespaceName(name)) << name;
  EXPECT_EQ(name.rfind("env-", 0), 0u) << name;
  EXPECT_NE(name, NamespaceName("\xe4\xb8\xad"));  // another, another hash
}

TEST(NamespaceNameTest, EmptyGetsAStableName) {
  EXPECT_TRUE(IsNamespaceName(NamespaceName("")));
  EXPECT_EQ(NamespaceName("///"), NamespaceName("///"));
}

TEST(NamespaceNameTest, LongNamesAreCutWithAStableHash) {
  std::string base = "kcow-feature-" + std::string(80, 'a');
  std::string a = NamespaceName(base + "-one");
  std::string b = NamespaceName(base + "-two");
  EXPECT_EQ(a.size(), kMaxNamespaceLength) << a;
  EXPECT_TRUE(IsNamespaceName(a)) << a;
  EXPECT_TRUE(IsNamespaceName(b)) << b;
  EXPECT_NE(a, b);  // same 52-character prefix, different hash
  EXPECT_EQ(a.substr(0, 52), b.substr(0, 52));
  EXPECT_EQ(a, NamespaceName(base + "-one"));  // stable
  // A cut landing on a dash does not leave "--".
  std::string dashy = std::string(51, 'x') + "/" + std::string(40, 'y');
  std::string d = NamespaceName(dashy);
  EXPECT_TRUE(IsNamespaceName(d)) << d;
  EXPECT_EQ(d.find("--"), std::string::npos) << d;
  // Exactly 63 stays as is.
  std::string exact(63, 'z');
  EXPECT_EQ(NamespaceName(exact), exact);
  EXPECT_EQ(NamespaceName(exact + "z").size(), 63u);
}

TEST(NamespaceNameTest, IsNamespaceName) {
  EXPECT_TRUE(IsNamespaceName("prod"));
  EXPECT_TRUE(IsNamespaceName("0a-b"));
  EXPECT_FALSE(IsNamespaceName(""));
  EXPECT_FALSE(IsNamespaceName("Prod"));
  EXPECT_FALSE(IsNamespaceName("-a"));
  EXPECT_FALSE(IsNamespaceName("a-"));
  EXPECT_FALSE(IsNamespaceName("a_b"));
  EXPECT_FALSE(IsNamespaceName(std::string(64, 'a')));
}

}  // namespace
}  // namespace kiln::environments
