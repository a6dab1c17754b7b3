#include "engine/cas/artifact_store.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "engine/cas/beneath.h"
#include "engine/cas/file_io.h"
#include "engine/cas/tree_walk.h"
#include "gtest/gtest.h"

namespace kiln::cas {
namespace {

int OpenTrustedDirForTest(const std::string& dir) {
  return open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

class ArtifactStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    tmp_ = absl::StrCat(getenv("TEST_TMPDIR"), "/as-", RandomSuffix());
    ASSERT_TRUE(MakeDirs(tmp_).ok());
    store_ = Open(tmp_ + "/store");
  }
  void TearDown() override { ASSERT_TRUE(RemoveTree(tmp_).ok()); }

  std::unique_ptr<ArtifactStore> Open(const std::string& dir) {
    auto s = ArtifactStore::Open(dir);
    EXPECT_TRUE(s.ok()) << s.status();
    return std::move(*s);
  }
  static void Write(const std::string& path, const std::string& content,
                    mode_t mode = 0644) {
    ASSERT_TRUE(MakeDirs(path.substr(0, path.rfind('/'))).ok());
    std::ofstream(path, std::ios::binary | std::ios::trunc) << content;
    ASSERT_EQ(chmod(path.c_str(), mode), 0);
  }
  // A tree with every supported kind of entry.
  void MakeTree(const std::string& dir) {
    Write(dir + "/README", "hello\n");
    Write(dir + "/bin/tool", "#!/bin/sh\necho hi\n", 0755);
    Write(dir + "/src/a/b/deep.txt", std::string(300000, 'd'));
    Write(dir + "/" + std::string(120, 'n') + "/" + std::string(150, 'm'),
          "long path");
    ASSERT_TRUE(MakeDirs(dir + "/empty").ok());
    ASSERT_EQ(symlink("README", (dir + "/link").c_str()), 0);
    ASSERT_EQ(symlink("/etc/passwd", (dir + "/outside").c_str()), 0);
    ASSERT_EQ(
        symlink(std::string(200, 'x').c_str(), (dir + "/longlink").c_str()), 0);
  }
  Digest StashOk(const std::string& dir, ArtifactStore* store = nullptr) {
    auto r = (store ? store : store_.get())->Stash(dir);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? r->tree : Digest();
  }

  std::string tmp_;
  std::unique_ptr<ArtifactStore> store_;
};

TEST_F(ArtifactStoreTest, RoundTripPreservesTheTree) {
  MakeTree(tmp_ + "/src");
  Digest tree = StashOk(tmp_ + "/src");
  ASSERT_TRUE(store_->Unstash(tree, tmp_ + "/out").ok());
  // The unstashed tree has the same digest, content, bits and links.
  EXPECT_EQ(StashOk(tmp_ + "/out"), tree);
  EXPECT_EQ(*ReadSmallFile(tmp_ + "/out/README"), "hello\n");
  struct stat st;
  ASSERT_EQ(stat((tmp_ + "/out/bin/tool").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0755u);
  ASSERT_EQ(stat((tmp_ + "/out/README").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0644u);
  char buf[64] = {};
  ASSERT_GT(readlink((tmp_ + "/out/outside").c_str(), buf, sizeof(buf)), 0);
  EXPECT_STREQ(buf, "/etc/passwd");
  ASSERT_EQ(stat((tmp_ + "/out/empty").c_str(), &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
}

TEST_F(ArtifactStoreTest, DigestIgnoresLocationUmaskTimezoneAndMtimes) {
  mode_t old = umask(022);
  MakeTree(tmp_ + "/one");
  umask(077);
  setenv("TZ", "Asia/Kolkata", 1);
  tzset();
  MakeTree(tmp_ + "/two");
  umask(old);
  unsetenv("TZ");
  struct timespec times[2] = {{12345, 0}, {12345, 0}};
  ASSERT_EQ(utimensat(AT_FDCWD, (tmp_ + "/two/README").c_str(), times,
                      AT_SYMLINK_NOFOLLOW),
            0);
  auto other_store = Open(tmp_ + "/store2");
  auto a = store_->Stash(tmp_ + "/one");
  auto b = other_store->Stash(tmp_ + "/two");
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->tree, b->tree);
  // The archive bytes are deterministic too.
  EXPECT_EQ(a->archive, b->archive);
}

TEST_F(ArtifactStoreTest, OneByteOrExecBitChangesTheDigest) {
  MakeTree(tmp_ + "/t");
  Digest base = StashOk(tmp_ + "/t");
  Write(tmp_ + "/t/src/a/b/deep.txt", std::string(299999, 'd') + "e");
  Digest changed = StashOk(tmp_ + "/t");
  EXPECT_NE(changed, base);
  Write(tmp_ + "/t/src/a/b/deep.txt", std::string(300000, 'd'));
  EXPECT_EQ(StashOk(tmp_ + "/t"), base);
  ASSERT_EQ(chmod((tmp_ + "/t/README").c_str(), 0744), 0);
  EXPECT_NE(StashOk(tmp_ + "/t"), base);
  // Group/other bits are not part of the identity.
  ASSERT_EQ(chmod((tmp_ + "/t/README").c_str(), 0600), 0);
  EXPECT_EQ(StashOk(tmp_ + "/t"), base);
}

TEST_F(ArtifactStoreTest, RestashHashesNothingAndWritesNothing) {
  MakeTree(tmp_ + "/t");
  // Let the files' timestamps age past the stat cache's racy window.
  usleep(20000);
  auto first = store_->Stash(tmp_ + "/t");
  ASSERT_TRUE(first.ok());
  EXPECT_FALSE(first->reused);
  EXPECT_GT(first->hashed_bytes, 0);
  auto blobs_before = store_->blobs().ListBlobs();
  auto again = store_->Stash(tmp_ + "/t");
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->reused);
  EXPECT_EQ(again->hashed_bytes, 0);
  EXPECT_EQ(again->tree, first->tree);
  EXPECT_EQ(again->archive, first->archive);
  EXPECT_EQ(store_->blobs().ListBlobs()->size(), blobs_before->size());
  // Touch one file: only it is read again.
  usleep(20000);
  Write(tmp_ + "/t/README", "hello again\n");
  usleep(20000);
  auto third = store_->Stash(tmp_ + "/t");
  ASSERT_TRUE(third.ok());
  EXPECT_FALSE(third->reused);
  EXPECT_NE(third->tree, first->tree);
  EXPECT_EQ(third->hashed_bytes, third->file_bytes);  // archive rewritten
  auto fourth = store_->Stash(tmp_ + "/t");
  ASSERT_TRUE(fourth.ok());
  EXPECT_TRUE(fourth->reused);
}

// A task-made tree deeper than the walk's bound is refused with a clear
// error naming it (before: one descriptor and stack frame per level, so a
// deep enough tree failed with EMFILE or overflowed the stack).
TEST_F(ArtifactStoreTest, TooDeepTreeIsRefusedClearly) {
  const std::string dir = tmp_ + "/deep";
  std::string path = dir;
  for (int i = 0; i < kMaxWalkDepth + 1; ++i) path += "/d";
  ASSERT_TRUE(MakeDirs(path).ok());
  auto fd = OpenTrustedDirForTest(dir);
  ASSERT_GE(fd, 0);
  auto walked = WalkTree(fd, dir);
  close(fd);
  ASSERT_FALSE(walked.ok());
  EXPECT_EQ(walked.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(walked.status().message().find("levels deep"), std::string::npos)
      << walked.status();
  // At the bound itself the walk succeeds.
  ASSERT_TRUE(RemoveTree(path).ok());
  fd = OpenTrustedDirForTest(dir);
  ASSERT_GE(fd, 0);
  walked = WalkTree(fd, dir);
  close(fd);
  ASSERT_TRUE(walked.ok()) << walked.status();
  EXPECT_EQ(walked->size(), static_cast<size_t>(kMaxWalkDepth));
}

TEST(ExcludeTest, GlobSemantics) {
  std::vector<std::string> p = {"*.tmp", "/build", "docs/*.bak", "cache/",
                                "\\*lit"};
  EXPECT_TRUE(IsExcluded(p, "a.tmp"));
  EXPECT_TRUE(IsExcluded(p, "x/y/a.tmp"));  // a name pattern, any depth
  EXPECT_TRUE(IsExcluded(p, "build"));      // anchored
  EXPECT_FALSE(IsExcluded(p, "src/build"));
  EXPECT_TRUE(IsExcluded(p, "docs/old.bak"));
  EXPECT_FALSE(IsExcluded(p, "docs/sub/old.bak"));  // '*' never crosses '/'
  EXPECT_FALSE(IsExcluded(p, "x/docs/old.bak"));
  EXPECT_TRUE(IsExcluded(p, "x/cache"));
  EXPECT_TRUE(IsExcluded(p, "*lit"));
  EXPECT_FALSE(IsExcluded(p, "alit"));
  EXPECT_FALSE(IsExcluded(p, "a.tmpx"));
}

TEST_F(ArtifactStoreTest, StashDirAtLeavesExcludedEntriesOut) {
  Write(tmp_ + "/t/keep.c", "k");
  Write(tmp_ + "/t/drop.tmp", "d");
  Write(tmp_ + "/t/build/out.o", "o");
  int fd = open((tmp_ + "/t").c_str(), O_RDONLY | O_DIRECTORY);
  ASSERT_GE(fd, 0);
  auto with = store_->StashDirAt(fd, "t", tmp_ + "/t", {"*.tmp", "/build"});
  close(fd);
  ASSERT_TRUE(with.ok()) << with.status();
  Write(tmp_ + "/only/keep.c", "k");
  EXPECT_EQ(with->tree, StashOk(tmp_ + "/only"));
}

TEST_F(ArtifactStoreTest, FifoAndSocketAreRefusedByName) {
  Write(tmp_ + "/t/ok", "x");
  ASSERT_EQ(mkfifo((tmp_ + "/t/pipe").c_str(), 0644), 0);
  auto r = store_->Stash(tmp_ + "/t");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("t/pipe is a FIFO"), std::string::npos)
      << r.status();
  unlink((tmp_ + "/t/pipe").c_str());

  // A socket path must fit sun_path (108 bytes), which Bazel's TEST_TMPDIR
  // does not: the socket's tree lives in a short directory under /tmp.
  char short_dir[] = "/tmp/kiln-as.XXXXXX";
  ASSERT_NE(mkdtemp(short_dir), nullptr);
  Write(std::string(short_dir) + "/ok", "x");
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_un addr = {};
  addr.sun_family = AF_UNIX;
  std::string sock = std::string(short_dir) + "/sock";
  ASSERT_LT(sock.size(), sizeof(addr.sun_path));
  strcpy(addr.sun_path, sock.c_str());
  int bound = bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  r = store_->Stash(short_dir);
  close(fd);
  EXPECT_TRUE(RemoveTree(short_dir).ok());
  ASSERT_EQ(bound, 0);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("sock is a socket"), std::string::npos)
      << r.status();
}

TEST_F(ArtifactStoreTest, DeviceFileIsRefusedByName) {
  Write(tmp_ + "/t/ok", "x");
  // Runs unsandboxed as root (BUILD: no-sandbox), where mknod works; a
  // failure here is a failure, not a skip.
  ASSERT_EQ(mknod((tmp_ + "/t/null").c_str(), S_IFCHR | 0666, makedev(1, 3)), 0)
      << strerror(errno);
  auto r = store_->Stash(tmp_ + "/t");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("t/null is a device file"),
            std::string::npos)
      << r.status();
}

TEST_F(ArtifactStoreTest, FileChangingDuringStashIsAnError) {
  Write(tmp_ + "/t/a_big", std::string(32 << 20, 'b'));
  Write(tmp_ + "/t/b_growing", "start");
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    int fd = open((tmp_ + "/t/b_growing").c_str(), O_WRONLY | O_APPEND);
    while (!stop) {
      if (write(fd, "more", 4) != 4) break;
      usleep(50);
    }
    close(fd);
  });
  auto r = store_->Stash(tmp_ + "/t");
  stop = true;
  writer.join();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition)
      << r.status();
  EXPECT_NE(r.status().message().find("b_growing changed while being stashed"),
            std::string::npos)
      << r.status();
  EXPECT_TRUE(store_->ListArtifacts()->empty());
}

TEST_F(ArtifactStoreTest, UnstashNeedsANewOrEmptyDirectory) {
  Write(tmp_ + "/t/f", "x");
  Digest tree = StashOk(tmp_ + "/t");
  ASSERT_TRUE(MakeDirs(tmp_ + "/empty").ok());
  EXPECT_TRUE(store_->Unstash(tree, tmp_ + "/empty").ok());
  EXPECT_EQ(*ReadSmallFile(tmp_ + "/empty/f"), "x");
  Write(tmp_ + "/full/keep", "mine");
  absl::Status st = store_->Unstash(tree, tmp_ + "/full");
  EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition) << st;
  EXPECT_EQ(*ReadSmallFile(tmp_ + "/full/keep"), "mine");
  EXPECT_EQ(store_->Unstash(Digest::Of("unknown"), tmp_ + "/x").code(),
            absl::StatusCode::kNotFound);
}

TEST_F(ArtifactStoreTest, CorruptArchiveIsNeverExtracted) {
  Write(tmp_ + "/t/f", std::string(100000, 'q'));
  auto r = store_->Stash(tmp_ + "/t");
  ASSERT_TRUE(r.ok());
  std::string path = store_->blobs().BlobPath(r->archive);
  std::string bytes = *ReadSmallFile(path);
  bytes[bytes.size() / 2] ^= 0x20;
  chmod(path.c_str(), 0644);
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
  absl::Status st = store_->Unstash(r->tree, tmp_ + "/out");
  EXPECT_EQ(st.code(), absl::StatusCode::kDataLoss) << st;
  struct stat sb;
  EXPECT_NE(lstat((tmp_ + "/out").c_str(), &sb), 0);  // nothing left
  EXPECT_FALSE(store_->blobs().Has(r->archive));      // quarantined
}

TEST_F(ArtifactStoreTest, ForgedIndexCannotPassAsAnotherTree) {
  Write(tmp_ + "/a/f", "the real thing");
  Write(tmp_ + "/b/f", "an impostor");
  // `a` is known only to another store: this store has no entry for it,
  // so the (forged) claim is recorded — and caught by Unstash.
  auto other = ArtifactStore::Open(tmp_ + "/other-store");
  ASSERT_TRUE(other.ok());
  auto a = (*other)->Stash(tmp_ + "/a");
  auto b = store_->Stash(tmp_ + "/b");
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_TRUE(store_->RegisterArchive(a->tree, b->archive).ok());
  absl::Status st = store_->Unstash(a->tree, tmp_ + "/out");
  EXPECT_EQ(st.code(), absl::StatusCode::kDataLoss) << st;
  struct stat sb;
  EXPECT_NE(lstat((tmp_ + "/out").c_str(), &sb), 0);
  EXPECT_TRUE(store_->blobs().Has(b->archive));  // the blob itself is fine
}

TEST_F(ArtifactStoreTest, StashPathsTakesOnlyTheSelection) {
  Write(tmp_ + "/ws/out/app", "binary", 0755);
  Write(tmp_ + "/ws/out/docs/x.md", "doc");
  Write(tmp_ + "/ws/src/main.c", "int main;");
  Write(tmp_ + "/ws/junk", "junk");
  auto r = store_->StashPaths(tmp_ + "/ws", {"out/app", "out/docs", "out/app"});
  ASSERT_TRUE(r.ok()) << r.status();
  Write(tmp_ + "/ref/out/app", "binary", 0755);
  Write(tmp_ + "/ref/out/docs/x.md", "doc");
  EXPECT_EQ(r->tree, StashOk(tmp_ + "/ref"));
  ASSERT_TRUE(store_->Unstash(r->tree, tmp_ + "/got").ok());
  EXPECT_EQ(*ReadSmallFile(tmp_ + "/got/out/docs/x.md"), "doc");
  struct stat sb;
  EXPECT_NE(lstat((tmp_ + "/got/junk").c_str(), &sb), 0);
  EXPECT_FALSE(store_->StashPaths(tmp_ + "/ws", {"../etc"}).ok());
  EXPECT_FALSE(store_->StashPaths(tmp_ + "/ws", {"/etc"}).ok());
  // A selection through a symlink is refused, not followed.
  ASSERT_EQ(symlink(tmp_.c_str(), (tmp_ + "/ws/up").c_str()), 0);
  EXPECT_FALSE(store_->StashPaths(tmp_ + "/ws", {"up/ws/junk"}).ok());
}

TEST_F(ArtifactStoreTest, ListArtifacts) {
  Write(tmp_ + "/t/f", "x");
  auto r = store_->Stash(tmp_ + "/t");
  ASSERT_TRUE(r.ok());
  auto all = store_->ListArtifacts();
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 1u);
  EXPECT_EQ((*all)[0].first, r->tree);
  EXPECT_EQ((*all)[0].second, r->archive);
  EXPECT_EQ(*store_->ArchiveOf(r->tree), r->archive);
}

std::vector<std::string> Names(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    out.push_back(e.path().filename().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

// A process killed while it verified a claim or wrote an index entry leaves
// a scratch tree in artifacts/ and a temp file in artifacts/tmp. The next
// Open (a server start) removes them, but never a live process's; an entry
// whose pid now belongs to another process (pid reuse: other start time)
// goes too, and an unnamed scratch tree of an older version once a day old.
TEST_F(ArtifactStoreTest, KilledWritersLeftoversSweptAtOpenLiveOnesKept) {
  const std::string artifacts = tmp_ + "/store/artifacts";
  int ready[2], hold[2];
  ASSERT_EQ(pipe(ready), 0);
  ASSERT_EQ(pipe(hold), 0);
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    close(ready[0]);
    close(hold[1]);
    // As VerifiedArchiveOf and WriteIndex name them, mid-way.
    std::string verify = artifacts + "/" + TempName("verify");
    bool ok = mkdir(verify.c_str(), 0700) == 0 &&
              mkdir((verify + "/" + TempName("unstash")).c_str(), 0700) == 0;
    int fd = open((artifacts + "/tmp/" + TempName("index")).c_str(),
                  O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    ok = ok && fd >= 0 && write(fd, "sha256:", 7) == 7;
    char c = ok ? 'y' : 'n';
    if (write(ready[1], &c, 1) != 1) _exit(1);
    while (read(hold[0], &c, 1) < 0 && errno == EINTR) {
    }  // until killed
    _exit(0);
  }
  close(ready[1]);
  close(hold[0]);
  char c = 0;
  ASSERT_EQ(read(ready[0], &c, 1), 1);
  close(ready[0]);
  ASSERT_EQ(c, 'y');
  // Another live process's pid (our parent's) with a start time that is
  // not its own: the creator is gone and the pid was reused.
  const pid_t other = getppid();
  const uint64_t other_start = ProcessStartTime(other);
  ASSERT_NE(other_start, 0u);
  const std::string reused = absl::StrCat(".kiln-verify-", other, "-",
                                          other_start + 1, "-0123456789abcdef");
  ASSERT_EQ(mkdir((artifacts + "/" + reused).c_str(), 0700), 0);
  // An older version's unnamed scratch trees: one a day old, one fresh.
  ASSERT_EQ(mkdir((artifacts + "/verify-OldOne").c_str(), 0700), 0);
  Write(artifacts + "/verify-OldOne/t/f", "x");
  struct timespec old_times[2] = {{time(nullptr) - 2 * 86400, 0},
                                  {time(nullptr) - 2 * 86400, 0}};
  ASSERT_EQ(
      utimensat(AT_FDCWD, (artifacts + "/verify-OldOne").c_str(), old_times, 0),
      0);
  ASSERT_EQ(mkdir((artifacts + "/verify-NewOne").c_str(), 0700), 0);

  const std::string child_tag = absl::StrCat("-", child, "-");
  std::vector<std::string> top = Names(artifacts);
  std::vector<std::string> tmp = Names(artifacts + "/tmp");
  ASSERT_EQ(tmp.size(), 1u);
  EXPECT_NE(tmp[0].find(absl::StrCat(".kiln-index", child_tag)),
            std::string::npos)
      << tmp[0];
  // The writer is alive: opening the store keeps its entries.
  Open(tmp_ + "/store");
  std::vector<std::string> live_top;
  for (const std::string& n : top) {
    if (n != reused && n != "verify-OldOne") live_top.push_back(n);
  }
  EXPECT_EQ(Names(artifacts), live_top);
  EXPECT_EQ(Names(artifacts + "/tmp"), tmp);
  // by-archive (the sweep's marker), tmp, verify-NewOne, the child's
  ASSERT_EQ(live_top.size(), 4u);
  // kill -9: the next open sweeps what it left.
  ASSERT_EQ(kill(child, SIGKILL), 0);
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  close(hold[1]);
  Open(tmp_ + "/store");
  EXPECT_EQ(Names(artifacts),
            (std::vector<std::string>{"by-archive", "tmp", "verify-NewOne"}));
  EXPECT_TRUE(Names(artifacts + "/tmp").empty());
}

// Index temp files of older versions ("<index>.tmp-<random>" beside the
// index, no owner in the name) go once an hour old; a young one stays (its
// writer may live) and the pass repeats at the next open until none is left,
// then a marker ends it. Nothing else in those directories is touched.
TEST_F(ArtifactStoreTest, OlderVersionsIndexTempsSweptOnceOld) {
  const std::string artifacts = tmp_ + "/store/artifacts";
  const std::string old_tmp = artifacts + "/ab/cdef.tmp-Xy12Zq";
  const std::string young_tmp = artifacts + "/by-archive/0123.tmp-Ab34Cd";
  const std::string index = artifacts + "/ab/cdef";
  const std::string marker =
      artifacts + "/by-archive/.legacy-index-temps-swept";
  Write(old_tmp, "sha256:partial");
  Write(young_tmp, "sha256:partial");
  Write(index, "kept");
  ASSERT_EQ(symlink("/etc/passwd", (artifacts + "/ab/link.tmp-1").c_str()), 0);
  auto age = [](const std::string& path) {
    struct timespec t[2] = {{time(nullptr) - 7200, 0},
                            {time(nullptr) - 7200, 0}};
    return utimensat(AT_FDCWD, path.c_str(), t, AT_SYMLINK_NOFOLLOW) == 0;
  };
  ASSERT_TRUE(age(old_tmp));
  ASSERT_TRUE(age(index));
  unlink(marker.c_str());  // the fixture's open already made it
  Open(tmp_ + "/store");
  struct stat st;
  EXPECT_NE(lstat(old_tmp.c_str(), &st), 0);
  EXPECT_EQ(lstat(young_tmp.c_str(), &st), 0);
  EXPECT_EQ(lstat(index.c_str(), &st), 0);
  EXPECT_EQ(lstat((artifacts + "/ab/link.tmp-1").c_str(), &st), 0);
  EXPECT_NE(lstat(marker.c_str(), &st), 0) << "a young temp is left";
  ASSERT_TRUE(age(young_tmp));
  Open(tmp_ + "/store");
  EXPECT_NE(lstat(young_tmp.c_str(), &st), 0);
  EXPECT_EQ(lstat(marker.c_str(), &st), 0);
  EXPECT_EQ(lstat("/etc/passwd", &st), 0);
}

// The by-archive record is written without fsync: after a power loss it
// may be empty or cut short. Such a record is not believed: the artifact
// is verified by extraction (and the record written again), and a record
// naming another tree drops the entry.
TEST_F(ArtifactStoreTest, ADamagedByArchiveRecordOnlyCostsAVerification) {
  Write(tmp_ + "/a/f", "content");
  auto a = store_->Stash(tmp_ + "/a");
  ASSERT_TRUE(a.ok()) << a.status();
  const std::string record =
      tmp_ + "/store/artifacts/by-archive/" + a->archive.Hex();
  const std::string whole = a->tree.ToString() + "\n";
  auto read = [&] {
    auto text = ReadSmallFile(record);
    return text.ok() ? *text : "(" + text.status().ToString() + ")";
  };
  ASSERT_EQ(read(), whole);
  for (const std::string& damaged :
       {std::string(), whole.substr(0, 20), whole.substr(0, whole.size() - 2),
        std::string("\0\0\0\0", 4)}) {
    Write(record, damaged);
    auto verified = store_->VerifiedArchiveOf(a->tree);
    ASSERT_TRUE(verified.ok()) << verified.status();
    EXPECT_EQ(*verified, a->archive);
    EXPECT_EQ(read(), whole) << "the record is written again";
  }
  Write(tmp_ + "/b/f", "other");
  auto b = store_->Stash(tmp_ + "/b");
  ASSERT_TRUE(b.ok()) << b.status();
  Write(record, b->tree.ToString() + "\n");
  EXPECT_FALSE(store_->VerifiedArchiveOf(a->tree).ok());
}

// The store's own temps are named as the sweep expects and never linger.
TEST_F(ArtifactStoreTest, VerificationAndIndexLeaveNoTemps) {
  Write(tmp_ + "/a/f", "claimed");
  auto a = store_->Stash(tmp_ + "/a");
  ASSERT_TRUE(a.ok()) << a.status();
  // Drop the record so the claim is verified by extracting once.
  ASSERT_EQ(
      unlink(
          (tmp_ + "/store/artifacts/by-archive/" + a->archive.Hex()).c_str()),
      0);
  auto verified = store_->VerifiedArchiveOf(a->tree);
  ASSERT_TRUE(verified.ok()) << verified.status();
  EXPECT_EQ(*verified, a->archive);
  std::vector<std::string> top = Names(tmp_ + "/store/artifacts");
  for (const std::string& n : top) {
    EXPECT_TRUE(n == "tmp" || n == "by-archive" || n.size() == 2) << n;
  }
  EXPECT_TRUE(Names(tmp_ + "/store/artifacts/tmp").empty());
}

}  // namespace
TEST(ArtifactStoreClaimTest, AClaimNeverReplacesAUsableEntry) {
  std::string base = absl::StrCat(std::getenv("TEST_TMPDIR"), "/claim");
  std::filesystem::remove_all(base);
  std::filesystem::create_directories(base + "/a");
  std::filesystem::create_directories(base + "/b");
  std::ofstream(base + "/a/f") << "real";
  std::ofstream(base + "/b/f") << "other";
  auto store = ArtifactStore::Open(base + "/store");
  ASSERT_TRUE(store.ok());
  auto a = (*store)->Stash(base + "/a");
  auto b = (*store)->Stash(base + "/b");
  ASSERT_TRUE(a.ok() && b.ok());
  // A client claims that b's archive holds a's tree: ignored.
  ASSERT_TRUE((*store)->RegisterArchive(a->tree, b->archive).ok());
  auto archive = (*store)->ArchiveOf(a->tree);
  ASSERT_TRUE(archive.ok());
  EXPECT_EQ(*archive, a->archive);
  EXPECT_TRUE((*store)->Unstash(a->tree, base + "/out").ok());
  // ForgetArchive only drops an entry naming the given archive.
  ASSERT_TRUE((*store)->ForgetArchive(a->tree, b->archive).ok());
  EXPECT_TRUE((*store)->ArchiveOf(a->tree).ok());
}

}  // namespace kiln::cas

namespace kiln::cas {
namespace {

// The many-at-once presence check of a whole-run replay: the same verdict
// as HasIndexedArchive, each shard's entries skipped only while its stamp
// is unchanged, and a record that is not a digest never reaches a path.
TEST_F(ArtifactStoreTest, HasIndexedArchivesChecksEntriesOfChangedShards) {
  Write(tmp_ + "/t/file", "contents\n");
  auto stashed = store_->Stash(tmp_ + "/t");
  ASSERT_TRUE(stashed.ok()) << stashed.status();
  const std::string tree = stashed->tree.ToString();
  const std::string archive = stashed->archive.ToString();
  const int64_t size = stashed->archive.size();
  using Recorded = ArtifactStore::RecordedArchive;
  std::vector<Recorded> good = {{tree, archive, size}};
  EXPECT_TRUE(store_->HasIndexedArchives(good));
  EXPECT_FALSE(store_->HasIndexedArchives(
      std::vector<Recorded>{{tree, archive, size + 1}}));
  const std::string other = "sha256:" + std::string(64, 'f');
  EXPECT_FALSE(
      store_->HasIndexedArchives(std::vector<Recorded>{{tree, other, size}}));
  for (const char* bad : {"sha256:../../../../etc/passwd", "md5:00", ""}) {
    EXPECT_FALSE(store_->HasIndexedArchives(
        std::vector<Recorded>{{bad, archive, size}}));
    EXPECT_FALSE(
        store_->HasIndexedArchives(std::vector<Recorded>{{tree, bad, size}}));
  }
  std::vector<std::string> shards = store_->ShardsOf(good);
  ASSERT_EQ(shards.size(), 2u);
  // Just written: too fresh to stamp.
  EXPECT_TRUE(store_->ShardStamps(shards, absl::Seconds(2)).empty());
  auto stamps = store_->ShardStamps(shards, absl::ZeroDuration());
  ASSERT_EQ(stamps.size(), 2u);
  auto unchanged = store_->UnchangedShards(stamps);
  EXPECT_EQ(unchanged.size(), 2u);
  EXPECT_TRUE(store_->HasIndexedArchives(good, unchanged));
  // The blob goes: its shard changes, so it is looked at again. (Later
  // than a tick of the coarse clock file times come from; ShardStamps'
  // settle time is what guards against a change within one.)
  absl::SleepFor(absl::Milliseconds(50));
  ASSERT_EQ(unlink(store_->blobs().BlobPath(stashed->archive).c_str()), 0);
  auto now_unchanged = store_->UnchangedShards(stamps);
  EXPECT_EQ(now_unchanged.size(), 1u);
  EXPECT_FALSE(store_->HasIndexedArchives(good, now_unchanged));
  EXPECT_FALSE(store_->HasIndexedArchives(good));
}

}  // namespace
}  // namespace kiln::cas
