#include "engine/cas/tree_digest.h"

#include "gtest/gtest.h"

namespace kiln::cas {
namespace {

TreeEntry File(std::string path, std::string content, bool exec = false) {
  TreeEntry e;
  e.path = std::move(path);
  e.type = EntryType::kFile;
  e.executable = exec;
  e.digest = Digest::Of(content);
  return e;
}
TreeEntry Dir(std::string path) {
  TreeEntry e;
  e.path = std::move(path);
  e.type = EntryType::kDirectory;
  return e;
}
TreeEntry Link(std::string path, std::string target) {
  TreeEntry e;
  e.path = std::move(path);
  e.type = EntryType::kSymlink;
  e.link_target = std::move(target);
  return e;
}

TEST(TreeDigestTest, EmptyTreeIsTheHeaderOnly) {
  auto d = ComputeTreeDigest({});
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(*d, Digest::Of("kiln.tree.v1\n"));
  EXPECT_EQ(d->size(), 13);
}

TEST(TreeDigestTest, EncodingIsAsSpecified) {
  Digest sub =
      Digest::Of("kiln.tree.v1\nf 1:c " + Digest::Of("C").Hex() + " 1\n");
  std::string root =
      "kiln.tree.v1\n"
      "x 1:a " +
      Digest::Of("AA").Hex() +
      " 2\n"
      "d 1:b " +
      sub.Hex() +
      "\n"
      "l 1:z 9:../../etc\n";
  auto d = ComputeTreeDigest(
      {Link("z", "../../etc"), File("b/c", "C"), File("a", "AA", true)});
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(*d, Digest::Of(root));
}

TEST(TreeDigestTest, OrderAndImpliedParentsDoNotMatter) {
  auto a = ComputeTreeDigest({Dir("d"), File("d/x", "1"), File("y", "2")});
  auto b = ComputeTreeDigest({File("y", "2"), File("d/x", "1")});
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(*a, *b);
}

TEST(TreeDigestTest, EveryAttributeCounts) {
  auto base = *ComputeTreeDigest({File("f", "x"), Link("l", "t"), Dir("e")});
  EXPECT_NE(base, *ComputeTreeDigest(
                      {File("f", "y"), Link("l", "t"), Dir("e")}));  // content
  EXPECT_NE(base, *ComputeTreeDigest({File("f", "x", true), Link("l", "t"),
                                      Dir("e")}));  // exec bit
  EXPECT_NE(base, *ComputeTreeDigest({File("f", "x"), Link("l", "u"),
                                      Dir("e")}));  // link target
  EXPECT_NE(base, *ComputeTreeDigest({File("f", "x"), Link("l", "t")}));
  EXPECT_NE(base, *ComputeTreeDigest(
                      {File("g", "x"), Link("l", "t"), Dir("e")}));  // name
  // A file and a symlink with the same bytes differ.
  EXPECT_NE(*ComputeTreeDigest({File("a", "t")}),
            *ComputeTreeDigest({Link("a", "t")}));
}

TEST(TreeDigestTest, NamesCannotCollideAcrossTheEncoding) {
  // "a b" vs a name and a field: length prefixes keep them apart.
  EXPECT_NE(*ComputeTreeDigest({Link("a", "b 1:c")}),
            *ComputeTreeDigest({Link("a b", "1:c")}));
}

TEST(TreeDigestTest, RejectsMalformedTrees) {
  EXPECT_FALSE(ComputeTreeDigest({File("a", "1"), File("a", "2")}).ok());
  EXPECT_FALSE(ComputeTreeDigest({File("a", "1"), File("a/b", "2")}).ok());
  EXPECT_FALSE(ComputeTreeDigest({Link("a", "x"), File("a/b", "2")}).ok());
  EXPECT_FALSE(ComputeTreeDigest({File("a//b", "1")}).ok());
  EXPECT_FALSE(ComputeTreeDigest({File("../a", "1")}).ok());
  EXPECT_FALSE(ComputeTreeDigest({File("", "1")}).ok());
  EXPECT_FALSE(ComputeTreeDigest({Dir("d"), Dir("d")}).ok());
}

}  // namespace
}  // namespace kiln::cas
