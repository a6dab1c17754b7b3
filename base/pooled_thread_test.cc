#include "base/pooled_thread.h"

#include <pthread.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <fstream>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"

namespace kiln {
namespace {

pid_t Tid() { return static_cast<pid_t>(syscall(SYS_gettid)); }

// Waits (up to 10 s) until `n` threads of the pool are idle.
void AwaitIdle(int n) {
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (PooledThread::IdleForTesting() < n && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(1));
  }
  ASSERT_GE(PooledThread::IdleForTesting(), n);
}

// A thread's blocked signals, from /proc; none if the thread is gone (its
// status cannot be read).
std::optional<uint64_t> BlockedSignals(pid_t tid) {
  std::ifstream status(absl::StrCat("/proc/self/task/", tid, "/status"));
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("SigBlk:", 0) != 0) continue;
    uint64_t mask = 0;
    if (!absl::SimpleHexAtoi(line.substr(7), &mask)) return std::nullopt;
    return mask;
  }
  return std::nullopt;
}

bool Blocked(uint64_t mask, int sig) { return (mask >> (sig - 1)) & 1; }

TEST(PooledThreadTest, RunsTheFunctionAndJoinWaitsForIt) {
  int value = 0;  // written by the pooled thread, read after join
  PooledThread thread([&value] {
    absl::SleepFor(absl::Milliseconds(20));
    value = 42;
  });
  ASSERT_TRUE(thread.joinable());
  thread.join();
  EXPECT_FALSE(thread.joinable());
  EXPECT_EQ(value, 42);
  thread.join();  // a second join does nothing
}

// One job after another, each given time to park its thread: a later one
// runs on a thread an earlier one used (a new thread each time would give
// every job a new thread id).
TEST(PooledThreadTest, AFinishedThreadIsReused) {
  std::set<pid_t> seen;
  bool reused = false;
  for (int i = 0; i < 20 && !reused; ++i) {
    pid_t tid = 0;
    PooledThread([&tid] { tid = Tid(); }).join();
    ASSERT_NE(tid, 0);
    ASSERT_NE(tid, Tid());
    reused = !seen.insert(tid).second;
    absl::SleepFor(absl::Milliseconds(5));
  }
  EXPECT_TRUE(reused) << "20 jobs, 20 new threads";
}

TEST(PooledThreadTest, ManyAtOnceAndAtMostKMaxIdleKept) {
  std::atomic<int> ran{0};
  std::atomic<int> inside{0};
  std::atomic<int> most{0};
  {
    std::vector<PooledThread> threads;
    for (int i = 0; i < 3 * PooledThread::kMaxIdle; ++i) {
      threads.emplace_back([&] {
        int now = ++inside;
        int seen = most.load();
        while (now > seen && !most.compare_exchange_weak(seen, now)) {
        }
        absl::SleepFor(absl::Milliseconds(30));
        --inside;
        ++ran;
      });
    }
  }  // the destructors join
  EXPECT_EQ(ran.load(), 3 * PooledThread::kMaxIdle);
  EXPECT_GT(most.load(), 1) << "the jobs did not run at once";
  absl::SleepFor(absl::Milliseconds(50));
  EXPECT_LE(PooledThread::IdleForTesting(), PooledThread::kMaxIdle);
}

TEST(PooledThreadTest, MovedAndAssignedJoinTheRightJob) {
  std::atomic<int> done{0};
  PooledThread a([&done] {
    absl::SleepFor(absl::Milliseconds(20));
    ++done;
  });
  PooledThread b(std::move(a));
  EXPECT_FALSE(a.joinable());  // NOLINT(bugprone-use-after-move): moved from
  ASSERT_TRUE(b.joinable());
  PooledThread c([&done] { ++done; });
  c = std::move(b);  // joins c's own job first
  EXPECT_GE(done.load(), 1);
  c.join();
  EXPECT_EQ(done.load(), 2);
}

// Runs `n` jobs at once (each waits until all have started, so each has a
// thread of its own); each job's thread id and blocked signals to `tids`
// and `masks`.
void RunWave(int n, std::vector<pid_t>* tids, std::vector<uint64_t>* masks) {
  tids->assign(n, 0);
  masks->assign(n, 0);
  std::atomic<int> started{0};
  std::vector<PooledThread> threads;
  for (int i = 0; i < n; ++i) {
    threads.emplace_back([&, i] {
      (*tids)[i] = Tid();
      // The thread reads its own status: always there.
      (*masks)[i] = BlockedSignals((*tids)[i]).value_or(0);
      ++started;
      const absl::Time deadline = absl::Now() + absl::Seconds(10);
      while (started.load() < n && absl::Now() < deadline) {
        absl::SleepFor(absl::Milliseconds(1));
      }
    });
  }
}  // the destructors join

// A job runs with its constructor's signal mask, whatever the reused
// thread's last job had; an idle thread blocks every signal, so a signal
// sent to the process never lands on it.
TEST(PooledThreadTest, SignalMaskIsTheConstructorsAndIdleThreadsBlockAll) {
  const int n = PooledThread::kMaxIdle + 4;  // every idle thread, and more
  sigset_t usr1, old;
  sigemptyset(&usr1);
  sigaddset(&usr1, SIGUSR1);
  ASSERT_EQ(pthread_sigmask(SIG_BLOCK, &usr1, &old), 0);
  std::vector<pid_t> first;
  std::vector<uint64_t> masks;
  RunWave(n, &first, &masks);
  for (int i = 0; i < n; ++i) {
    EXPECT_TRUE(Blocked(masks[i], SIGUSR1)) << i;
    EXPECT_FALSE(Blocked(masks[i], SIGINT)) << i;
  }

  ASSERT_EQ(pthread_sigmask(SIG_UNBLOCK, &usr1, nullptr), 0);
  AwaitIdle(PooledThread::kMaxIdle);
  int idle_checked = 0;
  for (pid_t tid : first) {
    // A thread past kMaxIdle ends, maybe only now: gone by the time its
    // status is read.
    std::optional<uint64_t> read = BlockedSignals(tid);
    if (!read.has_value()) continue;
    const uint64_t idle = *read;
    EXPECT_TRUE(Blocked(idle, SIGINT)) << std::hex << idle;
    EXPECT_TRUE(Blocked(idle, SIGTERM)) << std::hex << idle;
    EXPECT_TRUE(Blocked(idle, SIGUSR1)) << std::hex << idle;
    ++idle_checked;
  }
  EXPECT_GT(idle_checked, 0);

  std::vector<pid_t> second;
  RunWave(n, &second, &masks);
  int reused = 0;
  for (int i = 0; i < n; ++i) {
    EXPECT_FALSE(Blocked(masks[i], SIGUSR1)) << "kept the last job's mask";
    EXPECT_FALSE(Blocked(masks[i], SIGINT));
    for (pid_t tid : first) reused += tid == second[i];
  }
  EXPECT_GT(reused, 0) << "no thread of the first wave was reused";
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
}

// A child forked while pooled threads wait has none of them: its
// PooledThreads start their own.
TEST(PooledThreadTest, WorksInAForkedChild) {
#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
  GTEST_SKIP() << "ThreadSanitizer cannot start threads after such a fork";
#endif
#endif
  PooledThread([] {}).join();
  AwaitIdle(1);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    int value = 0;
    PooledThread([&value] { value = 7; }).join();
    _exit(value == 7 ? 0 : 1);
  }
  int status = 0;
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  pid_t got = 0;
  while ((got = waitpid(pid, &status, WNOHANG)) == 0 &&
         absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  if (got == 0) {
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    FAIL() << "the child's PooledThread never ran";
  }
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

}  // namespace
}  // namespace kiln
