#include "base/pooled_thread.h"

#include <pthread.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <fstream>
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

// A thread's blocked signals, from /proc (0 if unreadable).
uint64_t BlockedSignals(pid_t tid) {
  std::ifstream status(absl::StrCat("/proc/self/task/", tid, "/status"));
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("SigBlk:", 0) != 0) continue;
    uint64_t mask = 0;
    absl::SimpleHexAtoi(line.substr(7), &mask);
    return mask;
  }
  return 0;
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

TEST(PooledThreadTest, AFinishedThreadIsReused) {
  pid_t first = 0, second = 0;
  PooledThread([&first] { first = Tid(); }).join();
  AwaitIdle(1);
  PooledThread([&second] { second = Tid(); }).join();
  EXPECT_NE(first, 0);
  EXPECT_NE(first, Tid());
  EXPECT_EQ(second, first) << "the idle thread was not reused";
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

// A job runs with its constructor's signal mask, whatever the reused
// thread's last job had; an idle thread blocks every signal, so a signal
// sent to the process never lands on it.
TEST(PooledThreadTest, SignalMaskIsTheConstructorsAndIdleThreadsBlockAll) {
  sigset_t usr1, old;
  sigemptyset(&usr1);
  sigaddset(&usr1, SIGUSR1);
  ASSERT_EQ(pthread_sigmask(SIG_BLOCK, &usr1, &old), 0);
  uint64_t in_job = 0;
  pid_t worker = 0;
  PooledThread([&] {
    worker = Tid();
    in_job = BlockedSignals(worker);
  }).join();
  EXPECT_TRUE(Blocked(in_job, SIGUSR1));
  EXPECT_FALSE(Blocked(in_job, SIGINT));

  ASSERT_EQ(pthread_sigmask(SIG_UNBLOCK, &usr1, nullptr), 0);
  AwaitIdle(1);
  uint64_t idle = BlockedSignals(worker);
  EXPECT_TRUE(Blocked(idle, SIGINT)) << std::hex << idle;
  EXPECT_TRUE(Blocked(idle, SIGTERM)) << std::hex << idle;
  EXPECT_TRUE(Blocked(idle, SIGUSR1)) << std::hex << idle;

  pid_t again = 0;
  PooledThread([&] {
    again = Tid();
    in_job = BlockedSignals(again);
  }).join();
  EXPECT_EQ(again, worker);
  EXPECT_FALSE(Blocked(in_job, SIGUSR1)) << "kept the last job's mask";
  EXPECT_FALSE(Blocked(in_job, SIGINT));
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
