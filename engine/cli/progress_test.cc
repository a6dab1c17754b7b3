#include "engine/cli/progress.h"

#include <stdio.h>

#include <algorithm>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "base/mutex.h"
#include "gtest/gtest.h"

namespace kiln::cli {
namespace {

// A FILE whose writes are counted and kept.
struct Sink {
  Mutex mu;
  std::string bytes ABSL_GUARDED_BY(mu);
  int writes ABSL_GUARDED_BY(mu) = 0;

  static ssize_t Write(void* cookie, const char* data, size_t size) {
    Sink* sink = static_cast<Sink*>(cookie);
    MutexLock lock(&sink->mu);
    ++sink->writes;
    sink->bytes.append(data, size);
    return static_cast<ssize_t>(size);
  }
  FILE* Open() {
    cookie_io_functions_t io = {nullptr, &Sink::Write, nullptr, nullptr};
    return fopencookie(this, "w", io);
  }
  size_t Lines() {
    MutexLock lock(&mu);
    return std::count(bytes.begin(), bytes.end(), '\n');
  }
  // Waits (bounded) until `n` lines were written.
  bool AwaitLines(size_t n) {
    absl::Time deadline = absl::Now() + absl::Seconds(10);
    while (Lines() < n) {
      if (absl::Now() > deadline) return false;
      absl::SleepFor(absl::Milliseconds(1));
    }
    return true;
  }
};

v1::RunEvent TaskEvent(int i, v1::TaskState state) {
  v1::RunEvent e;
  e.set_sequence(i);
  e.mutable_task_state()->set_task(absl::StrCat("t", i));
  e.mutable_task_state()->set_state(state);
  return e;
}

// JSON and plain lines alike: one write per batch, each batch seen while
// the run goes on, nothing lost at Finish, every line in order.
class ProgressWriterTest : public ::testing::TestWithParam<ProgressView::Mode> {
 protected:
  bool Json() const { return GetParam() == ProgressView::Mode::kJson; }
  // Whether `line` is task t<i>'s.
  bool IsTask(const std::string& line, int i) const {
    return Json() ? line.find(absl::StrCat("\"task\":\"t", i, "\"")) !=
                        std::string::npos
                  : line.rfind(absl::StrCat("t", i, ": "), 0) == 0;
  }
};

TEST_P(ProgressWriterTest, ABatchIsOneWriteAndIsSeenBeforeTheRunEnds) {
  Sink sink;
  FILE* out = sink.Open();
  ASSERT_NE(out, nullptr);
  // A small stdio buffer: one write per batch must not come from stdio
  // buffering alone.
  ASSERT_EQ(setvbuf(out, nullptr, _IOFBF, 256), 0);
  // Plain mode ends with the run's summary line.
  const size_t summary = Json() ? 0 : 1;
  {
    ProgressView view(GetParam(), out);
    // One batch of 200 events, as the engine delivers it.
    for (int i = 1; i <= 200; ++i) view.OnEvent(TaskEvent(i, v1::TASK_CACHED));
    // Seen while the run goes on (no Finish yet): flushed promptly.
    ASSERT_TRUE(sink.AwaitLines(200));
    {
      MutexLock lock(&sink.mu);
      // Not one write per line: one chunk per batch (stdio passes a large
      // write straight on). On a loaded machine the writer may take the
      // first lines before the rest arrive: a few chunks, never 200.
      EXPECT_LE(sink.writes, 20) << sink.writes;
    }
    // A second batch later: seen too, in order.
    absl::SleepFor(absl::Milliseconds(20));
    for (int i = 201; i <= 210; ++i) {
      view.OnEvent(TaskEvent(i, v1::TASK_SUCCEEDED));
    }
    ASSERT_TRUE(sink.AwaitLines(210));
    // The last events before Finish are written by it.
    view.OnEvent(TaskEvent(211, v1::TASK_FAILED));
    v1::Run run;
    view.Finish(run);
    EXPECT_EQ(sink.Lines(), 211u + summary);
    // After Finish (no writer left): written at once.
    view.OnEvent(TaskEvent(212, v1::TASK_FAILED));
    EXPECT_EQ(sink.Lines(), 212u + summary);
  }
  fclose(out);
  MutexLock lock(&sink.mu);
  std::vector<std::string> lines =
      absl::StrSplit(sink.bytes, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 212u + summary);
  for (int i = 1; i <= 211; ++i) {
    EXPECT_TRUE(IsTask(lines[i - 1], i)) << i << ": " << lines[i - 1];
  }
  if (summary != 0) {
    EXPECT_EQ(lines[211].rfind("run ", 0), 0u) << lines[211];
  }
  EXPECT_TRUE(IsTask(lines.back(), 212)) << lines.back();
  EXPECT_NE(lines[0].find(Json() ? "TASK_CACHED" : "cached"), std::string::npos)
      << lines[0];
}

INSTANTIATE_TEST_SUITE_P(JsonAndPlain, ProgressWriterTest,
                         ::testing::Values(ProgressView::Mode::kJson,
                                           ProgressView::Mode::kPlain));

}  // namespace
}  // namespace kiln::cli
