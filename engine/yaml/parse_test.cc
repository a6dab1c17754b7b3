#include "engine/yaml/parse.h"

#include <string>

#include "gtest/gtest.h"

namespace kiln::yaml {
namespace {

TEST(ParseTest, MappingKeepsOrderAndPositions) {
  auto n = Parse("b: 1\na:\n  - x\n  - 'y'\n", "f.yaml");
  ASSERT_TRUE(n.ok()) << n.status();
  ASSERT_TRUE(n->IsMapping());
  ASSERT_EQ(n->entries().size(), 2u);
  EXPECT_EQ(n->entries()[0].first.value(), "b");
  EXPECT_EQ(n->entries()[1].first.value(), "a");
  const Node* a = n->Find("a");
  ASSERT_NE(a, nullptr);
  ASSERT_TRUE(a->IsSequence());
  EXPECT_EQ(a->items()[1].value(), "y");
  EXPECT_TRUE(a->items()[1].quoted());
  EXPECT_FALSE(a->items()[0].quoted());
  EXPECT_EQ(a->items()[1].mark().line, 4);
  EXPECT_EQ(a->items()[1].mark().column, 5);
}

TEST(ParseTest, NullsAndEmptyDocument) {
  auto n = Parse("a: ~\nb:\n", "f");
  ASSERT_TRUE(n.ok());
  EXPECT_TRUE(n->Find("a")->IsNull());
  EXPECT_TRUE(n->Find("b")->IsNull());
  auto empty = Parse("", "f");
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->IsNull());
}

TEST(ParseTest, DuplicateKeyRejectedWithPosition) {
  auto n = Parse("a: 1\nb: 2\na: 3\n", "p.yaml");
  ASSERT_FALSE(n.ok());
  EXPECT_EQ(n.status().message(),
            "p.yaml:3:1: duplicate key \"a\" (first at line 1)");
}

TEST(ParseTest, UnterminatedQuoteAtEndOfFileRejectedWithPosition) {
  // yaml-cpp alone takes both as complete scalars.
  auto d = Parse("a: 1\nb: \"abc\n", "p.yaml");
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().message(),
            "p.yaml:2:4: unterminated quoted string (no closing \" before the "
            "end of the file)");
  auto s = Parse("a: 1\nb: 'it''s\n", "p.yaml");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("p.yaml:2:4: "), std::string::npos)
      << s.status();
  // Closed ones, with escaped quotes inside, still parse.
  auto ok = Parse("a: \"x\\\"y\"\nb: 'it''s'\nc: |\n  \"\n", "p.yaml");
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->Find("a")->value(), "x\"y");
  EXPECT_EQ(ok->Find("b")->value(), "it's");
}

TEST(ParseTest, SecondDocumentRejected) {
  auto n = Parse("a: 1\n---\nb: 2\n", "p.yaml");
  ASSERT_FALSE(n.ok());
  EXPECT_NE(n.status().message().find("p.yaml:3:1: a second YAML document"),
            std::string::npos)
      << n.status();
}

TEST(ParseTest, TrailingJunkRejected) {
  auto n = Parse("a: 1\n]\n", "p.yaml");
  EXPECT_FALSE(n.ok());
  EXPECT_NE(n.status().message().find("p.yaml:2:"), std::string::npos)
      << n.status();
}

TEST(ParseTest, CommaJunkTerminates) {
  // yaml-cpp 0.7.0's LoadAll loops forever on this.
  EXPECT_FALSE(ParseAll("\n,\n", "j").ok());
  EXPECT_FALSE(Parse("\n,\n", "j").ok());
}

TEST(ParseTest, SelfReferencingAliasRejected) {
  auto n = Parse("a: &a [*a]\n", "p.yaml");
  ASSERT_FALSE(n.ok());
  EXPECT_NE(n.status().message().find("recursive"), std::string::npos);
}

TEST(ParseTest, AliasesExpandedWithinBudget) {
  auto n = Parse("a: &x {k: v}\nb: *x\n", "p");
  ASSERT_TRUE(n.ok()) << n.status();
  EXPECT_EQ(n->Find("b")->Find("k")->value(), "v");
  Limits no_alias;
  no_alias.allow_aliases = false;
  EXPECT_FALSE(Parse("a: &x 1\nb: *x\n", "p", no_alias).ok());
}

TEST(ParseTest, BillionLaughsBounded) {
  std::string doc = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n";
  for (int i = 1; i < 12; ++i) {
    doc += "a" + std::to_string(i) + ": &a" + std::to_string(i) + " [";
    for (int j = 0; j < 10; ++j) {
      doc += (j ? ", *a" : "*a") + std::to_string(i - 1);
    }
    doc += "]\n";
  }
  auto n = Parse(doc, "bomb.yaml");
  ASSERT_FALSE(n.ok());
  EXPECT_EQ(n.status().code(), absl::StatusCode::kResourceExhausted);
}

TEST(ParseTest, DeepNestingBounded) {
  std::string deep(100000, '[');
  auto n = Parse(deep, "deep.yaml");
  ASSERT_FALSE(n.ok());
  EXPECT_EQ(n.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(n.status().message().find("nesting deeper than 64"),
            std::string::npos);
}

TEST(ParseTest, LimitsOnSizeAndScalars) {
  Limits small;
  small.max_bytes = 10;
  EXPECT_EQ(Parse("a: 0123456789\n", "f", small).status().code(),
            absl::StatusCode::kResourceExhausted);
  Limits scalar;
  scalar.max_scalar_bytes = 4;
  EXPECT_EQ(Parse("a: 12345\n", "f", scalar).status().code(),
            absl::StatusCode::kResourceExhausted);
}

TEST(ParseTest, ParseAllDropsEmptyDocuments) {
  auto docs = ParseAll("a: 1\n---\n---\nb: 2\n", "m.yaml");
  ASSERT_TRUE(docs.ok()) << docs.status();
  ASSERT_EQ(docs->size(), 2u);
  EXPECT_EQ((*docs)[1].Find("b")->value(), "2");
}

TEST(ParseTest, ByteOrderMarkAccepted) {
  auto n = Parse(
      "\xEF\xBB\xBF"
      "a: 1\n",
      "f");
  ASSERT_TRUE(n.ok()) << n.status();
  EXPECT_EQ(n->Find("a")->value(), "1");
}

TEST(ParseTest, MalformedUtf8RejectedWithPosition) {
  auto n = Parse("a: 1\nc:\xfa<<: 2\n", "u.yaml");
  ASSERT_FALSE(n.ok());
  EXPECT_EQ(n.status().message(),
            "u.yaml:2:3: invalid character (byte 0xFA): YAML must be "
            "printable UTF-8");
  EXPECT_FALSE(Parse(std::string("a: x\0y\n", 7), "nul").ok());
  EXPECT_FALSE(Parse("a: \xed\xa0\x80\n", "s").ok());  // a surrogate
  EXPECT_FALSE(Parse("a: \xc0\xaf\n", "o").ok());      // overlong '/'
  EXPECT_TRUE(Parse("a: \xc3\xa9 \xe6\x97\xa5 \xf0\x9f\x9a\x80\n", "ok").ok());
}

TEST(ReadFileCappedTest, RefusesMissingAndNonRegular) {
  EXPECT_EQ(ReadFileCapped("/nonexistent/x", 10).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_FALSE(ReadFileCapped("/dev/null", 10).ok());
  EXPECT_FALSE(ReadFileCapped("/", 10).ok());
}

}  // namespace
}  // namespace kiln::yaml
