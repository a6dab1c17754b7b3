#include "engine/store/run_lease.h"

#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "base/testing/files.h"
#include "gtest/gtest.h"

namespace kiln::store {
namespace {

namespace fs = std::filesystem;

std::string TempDir(const std::string& name) {
  return test_files::TempDir("run_lease_test_", name);
}

TEST(RunLeaseTest, OneOwnerAtATime) {
  std::string store = TempDir("one");
  auto first = RunLease::Acquire(store, "r1");
  ASSERT_TRUE(first.ok()) << first.status();
  auto leased = RunLease::IsLeased(store, "r1");
  ASSERT_TRUE(leased.ok()) << leased.status();
  EXPECT_TRUE(*leased);

  // A second description (as another engine or process would open) is
  // refused, naming the owner.
  auto second = RunLease::Acquire(store, "r1");
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(absl::StrContains(second.status().message(),
                                absl::StrCat("pid ", getpid())))
      << second.status();
  // Other runs are independent.
  EXPECT_TRUE(RunLease::Acquire(store, "r2").ok());

  // Released (not finished): free again, the file stays.
  first->reset();
  leased = RunLease::IsLeased(store, "r1");
  ASSERT_TRUE(leased.ok());
  EXPECT_FALSE(*leased);
  auto again = RunLease::Acquire(store, "r1");
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_TRUE(fs::exists(LeaseDir(store) + "/r1.lock"));
  // Finished: the file goes.
  (*again)->ReleaseFinished();
  EXPECT_FALSE(fs::exists(LeaseDir(store) + "/r1.lock"));
  leased = RunLease::IsLeased(store, "r1");
  ASSERT_TRUE(leased.ok());
  EXPECT_FALSE(*leased);

  struct stat st;
  ASSERT_EQ(stat(LeaseDir(store).c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
}

TEST(RunLeaseTest, AKilledOwnersLeaseIsFreeAtOnce) {
  std::string store = TempDir("killed");
  int ready[2];
  ASSERT_EQ(pipe(ready), 0);
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    close(ready[0]);
    auto lease = RunLease::Acquire(store, "r1");
    char c = lease.ok() ? 'y' : 'n';
    if (write(ready[1], &c, 1) != 1) _exit(2);
    while (true) pause();  // holds the lease until killed
  }
  close(ready[1]);
  char c = 0;
  ASSERT_EQ(read(ready[0], &c, 1), 1);  // the child holds the lease now
  close(ready[0]);
  ASSERT_EQ(c, 'y');

  auto leased = RunLease::IsLeased(store, "r1");
  ASSERT_TRUE(leased.ok());
  EXPECT_TRUE(*leased);
  auto refused = RunLease::Acquire(store, "r1");
  ASSERT_FALSE(refused.ok());
  EXPECT_TRUE(absl::StrContains(refused.status().message(),
                                absl::StrCat("pid ", child)))
      << refused.status();

  ASSERT_EQ(kill(child, SIGKILL), 0);
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  leased = RunLease::IsLeased(store, "r1");
  ASSERT_TRUE(leased.ok());
  EXPECT_FALSE(*leased) << "the kernel released the dead owner's lock";
  EXPECT_TRUE(RunLease::Acquire(store, "r1").ok());
}

TEST(RunLeaseTest, RefusesALockFileThatIsNotARegularFile) {
  std::string store = TempDir("planted");
  fs::create_directories(LeaseDir(store));
  fs::create_symlink("/etc/passwd", LeaseDir(store) + "/r1.lock");
  auto lease = RunLease::Acquire(store, "r1");
  EXPECT_FALSE(lease.ok());
}

}  // namespace
}  // namespace kiln::store
