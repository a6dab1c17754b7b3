// The source map records positions cheaply and builds its lookup table on
// the first diagnostic: every position must be what an eager map gave.
#include <string>

#include "absl/strings/str_cat.h"
#include "engine/pipeline/diagnostic.h"
#include "engine/pipeline/loader.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kiln::pipeline {
namespace {

using ::testing::HasSubstr;

// `n` tasks, task i on lines 3 + 4*i .. 6 + 4*i; task `bad` needs a task
// that does not exist.
std::string BigPipeline(int n, int bad) {
  std::string yaml = "name: big\ntasks:\n";
  for (int i = 0; i < n; ++i) {
    absl::StrAppend(&yaml, "  - name: t", i, "\n");
    absl::StrAppend(&yaml, "    needs: [",
                    i == 0 ? "" : absl::StrCat("t", i - 1),
                    i == bad ? ", nope" : "", "]\n");
    absl::StrAppend(&yaml, "    run: {command: [echo, ", i, "]}\n");
    absl::StrAppend(&yaml, "    outputs: [{artifact: a", i,
                    ", paths: [out]}]\n");
  }
  return yaml;
}

TEST(SourceMapTest, AValidLoadBuildsNoLookupTable) {
  LoadedPipeline p = LoadPipelineText(BigPipeline(500, -1), "big.yaml");
  ASSERT_TRUE(p.ok()) << JoinDiagnostics(p.errors);
  EXPECT_GT(p.source_map->size(), 500u * 8);
  EXPECT_FALSE(p.source_map->indexed());
  int line = 0, column = 0;
  ASSERT_TRUE(
      p.source_map->Lookup("tasks[499].run.command[1]", &line, &column));
  EXPECT_TRUE(p.source_map->indexed());
  EXPECT_EQ(line, 3 + 4 * 499 + 2);
  EXPECT_EQ(column, 27);  // "    run: {command: [echo, 499]}"
}

// A diagnostic deep in a big file (validation, after the whole file was
// recorded) has the position of its field.
TEST(SourceMapTest, ADiagnosticDeepInABigFileHasItsLineAndColumn) {
  const int bad = 1789;
  LoadedPipeline p = LoadPipelineText(BigPipeline(2000, bad), "big.yaml");
  ASSERT_EQ(p.errors.size(), 1u) << JoinDiagnostics(p.errors);
  // "    needs: [t1788, nope]": the second item at column 20.
  EXPECT_EQ(p.errors[0].ToString(),
            absl::StrCat("big.yaml:", 3 + 4 * bad + 1,
                         ":20: task 't1789' needs unknown task 'nope'"));
  EXPECT_EQ(p.errors[0].path, "tasks[1789].needs[1]");
  EXPECT_EQ(p.validation, nullptr);
}

// A decoding error deep in the file (not from the map: from the node).
TEST(SourceMapTest, ADecodingErrorDeepInABigFileHasItsLineAndColumn) {
  std::string yaml = BigPipeline(1000, -1);
  yaml += "  - name: last\n    run: {command: [x], retries: many}\n";
  LoadedPipeline p = LoadPipelineText(yaml, "big.yaml");
  ASSERT_FALSE(p.ok());
  EXPECT_THAT(JoinDiagnostics(p.errors),
              HasSubstr(absl::StrCat("big.yaml:", 3 + 4 * 1000 + 1, ":")));
}

TEST(SourceMapTest, FirstRecordWinsAndAncestorsAnswer) {
  SourceMap map("f.yaml");
  map.Record("tasks[0]", 3, 5);
  map.Record("tasks[0].name", 3, 13);
  map.Record("tasks[0]", 9, 9);  // a second record of a path is ignored
  int line = 0, column = 0;
  ASSERT_TRUE(map.Lookup("tasks[0]", &line, &column));
  EXPECT_EQ(line, 3);
  EXPECT_EQ(column, 5);
  ASSERT_TRUE(map.Lookup("tasks[0].run.command[2]", &line, &column));
  EXPECT_EQ(line, 3);
  EXPECT_FALSE(map.Lookup("finally[0]", &line, &column));
  // Recording after a lookup (the paths' storage may move) still answers.
  for (int i = 1; i < 1000; ++i) {
    map.Record(absl::StrCat("tasks[", i, "]"), 10 + i, 5);
  }
  ASSERT_TRUE(map.Lookup("tasks[0].name", &line, &column));
  EXPECT_EQ(line, 3);
  EXPECT_EQ(column, 13);
  ASSERT_TRUE(map.Lookup("tasks[999].needs", &line, &column));
  EXPECT_EQ(line, 1009);
  Diagnostic d = MakeDiagnostic(&map, "tasks[7].needs[0]", "bad");
  EXPECT_EQ(d.ToString(), "f.yaml:17:5: bad");
}

}  // namespace
}  // namespace kiln::pipeline
