#include "engine/kinds/task_results.h"

#include "gtest/gtest.h"

namespace kiln::kinds {
namespace {

google::protobuf::RepeatedPtrField<std::string> Names(
    std::initializer_list<const char*> names) {
  google::protobuf::RepeatedPtrField<std::string> out;
  for (const char* n : names) *out.Add() = n;
  return out;
}

TEST(TaskResultsTest, DeclaredResultsWithOneTrailingNewlineRemoved) {
  google::protobuf::Map<std::string, std::string> written;
  written["version"] = "1.2.3\n";
  written["notes"] = "two\nlines\n\n";
  written["empty"] = "";
  auto r = CheckTaskResults(Names({"version", "notes", "empty"}), written);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->at("version"), "1.2.3");
  EXPECT_EQ(r->at("notes"), "two\nlines\n");
  EXPECT_EQ(r->at("empty"), "");
}

TEST(TaskResultsTest, AMissingResultFailsNamingIt) {
  google::protobuf::Map<std::string, std::string> written;
  written["version"] = "1";
  auto r = CheckTaskResults(Names({"version", "tag"}), written);
  ASSERT_TRUE(absl::IsInvalidArgument(r.status()));
  EXPECT_NE(r.status().message().find("declared result 'tag' was not written"),
            std::string::npos)
      << r.status();
}

TEST(TaskResultsTest, AnUndeclaredFileFails) {
  google::protobuf::Map<std::string, std::string> written;
  written["version"] = "1";
  written["stray"] = "x";
  auto r = CheckTaskResults(Names({"version"}), written);
  ASSERT_TRUE(absl::IsInvalidArgument(r.status()));
  EXPECT_NE(r.status().message().find("stray is not a declared result"),
            std::string::npos)
      << r.status();
}

TEST(TaskResultsTest, ValuesMustBeUtf8WithoutNul) {
  google::protobuf::Map<std::string, std::string> written;
  written["v"] = "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x94\xa5";
  EXPECT_TRUE(CheckTaskResults(Names({"v"}), written).ok());
  for (const std::string& bad :
       {std::string("\xff"), std::string("\xc3"), std::string("\xc0\xaf"),
        std::string("\xed\xa0\x80"), std::string("\xf4\x90\x80\x80"),
        std::string("a\0b", 3)}) {
    written["v"] = bad;
    EXPECT_TRUE(absl::IsInvalidArgument(
        CheckTaskResults(Names({"v"}), written).status()));
  }
}

TEST(TaskResultsTest, Utf8Boundaries) {
  EXPECT_TRUE(IsUtf8(""));
  EXPECT_TRUE(IsUtf8("\x7f"));
  EXPECT_TRUE(IsUtf8("\xc2\x80"));
  EXPECT_TRUE(IsUtf8("\xf4\x8f\xbf\xbf"));
  EXPECT_FALSE(IsUtf8("\x80"));
  EXPECT_FALSE(IsUtf8("\xe0\x80\x80"));  // overlong
  EXPECT_FALSE(IsUtf8("\xe2\x82"));      // truncated
}

}  // namespace
}  // namespace kiln::kinds
