#include "engine/git/git_source.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kiln::git {
namespace {

using ::testing::HasSubstr;

// Repositories made with the git command line (a client written apart from
// libgit2), in a fresh directory per test.
class GitSourceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = std::string(std::getenv("TEST_TMPDIR")) + "/" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name();
    repo_ = root_ + "/repo";
    ASSERT_EQ(Run("rm -rf '" + root_ + "' && mkdir -p '" + repo_ + "'"), "");
    setenv("GIT_CONFIG_NOSYSTEM", "1", 1);
    setenv("HOME", root_.c_str(), 1);
    setenv("GIT_AUTHOR_NAME", "Ada", 1);
    setenv("GIT_AUTHOR_EMAIL", "ada@example.org", 1);
    setenv("GIT_COMMITTER_NAME", "Ada", 1);
    setenv("GIT_COMMITTER_EMAIL", "ada@example.org", 1);
    setenv("GIT_AUTHOR_DATE", "1700000000 +0000", 1);
    setenv("GIT_COMMITTER_DATE", "1700000000 +0000", 1);
    Git("init -q -b main");
  }

  // Runs `cmd` in a shell; returns its stdout, trailing newline removed.
  std::string Run(const std::string& cmd) {
    FILE* p = popen(cmd.c_str(), "r");
    std::string out;
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
    EXPECT_EQ(pclose(p), 0) << cmd;
    while (!out.empty() && out.back() == '\n') out.pop_back();
    return out;
  }
  std::string Git(const std::string& args) {
    return Run("cd '" + repo_ + "' && git " + args);
  }
  void Write(const std::string& rel, const std::string& text) {
    std::ofstream(repo_ + "/" + rel) << text;
  }
  static std::string Read(const std::string& path) {
    std::ifstream in(path);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }

  std::string root_, repo_;
};

TEST_F(GitSourceTest, ADirectoryOutsideAnyRepositoryHasNoWorkTree) {
  auto head = DiscoverWorkTree(root_);
  ASSERT_TRUE(head.ok()) << head.status();
  EXPECT_FALSE(head->has_value());
}

// The discovery looks for a `.git` entry or a repository directory itself
// before it loads libgit2: a linked work tree (`.git` is a file), a path
// reached through a symlink and a bare repository must come out as
// libgit2 alone would see them.
TEST_F(GitSourceTest, LinkedWorkTreesSymlinkedPathsAndBareRepositories) {
  Write("a.txt", "a\n");
  Git("add a.txt && git commit -q -m one");
  Git("worktree add -q -b side '" + root_ + "/linked'");
  Run("mkdir -p '" + root_ + "/linked/deep/er' && ln -s '" + root_ +
      "/linked/deep' '" + root_ + "/via'");
  auto linked = DiscoverWorkTree(root_ + "/via/er");
  ASSERT_TRUE(linked.ok()) << linked.status();
  ASSERT_TRUE(linked->has_value());
  EXPECT_EQ((*linked)->root, root_ + "/linked");
  EXPECT_EQ((*linked)->branch, "side");
  EXPECT_EQ((*linked)->commit.revision, Git("rev-parse HEAD"));

  Run("git clone -q --bare '" + repo_ + "' '" + root_ + "/bare.git'");
  Run("mkdir -p '" + root_ + "/bare.git/refs/sub'");
  for (const std::string& at :
       {root_ + "/bare.git", root_ + "/bare.git/refs/sub"}) {
    auto bare = DiscoverWorkTree(at);
    ASSERT_TRUE(bare.ok()) << at << ": " << bare.status();
    EXPECT_FALSE(bare->has_value()) << at;
  }
}

TEST_F(GitSourceTest, HeadFillsTheTriggerAndUntrackedFilesMakeItDirty) {
  auto unborn = DiscoverWorkTree(repo_);
  EXPECT_THAT(unborn.status().message(), HasSubstr("no commits yet"));
  Write("a.txt", "a\n");
  Git("add a.txt && git commit -q -m 'first: add a\n\nbody line'");
  Run("mkdir -p '" + repo_ + "/sub/dir'");
  auto head = DiscoverWorkTree(repo_ + "/sub/dir");
  ASSERT_TRUE(head.ok()) << head.status();
  ASSERT_TRUE(head->has_value());
  const WorkTreeHead& h = **head;
  EXPECT_EQ(h.root, repo_);
  EXPECT_EQ(h.branch, "main");
  EXPECT_EQ(h.commit.revision, Git("rev-parse HEAD"));
  EXPECT_EQ(h.commit.revision.size(), 40u);
  EXPECT_EQ(h.commit.message, "first: add a\n\nbody line");
  EXPECT_EQ(h.commit.author, "Ada <ada@example.org>");
  EXPECT_EQ(h.commit.time, 1700000000);
  EXPECT_FALSE(h.dirty);

  Write("new.txt", "untracked\n");
  EXPECT_TRUE((*DiscoverWorkTree(repo_))->dirty);
  Run("rm '" + repo_ + "/new.txt'");
  Write("a.txt", "changed\n");
  EXPECT_TRUE((*DiscoverWorkTree(repo_))->dirty);
  Git("checkout -q a.txt");
  EXPECT_FALSE((*DiscoverWorkTree(repo_))->dirty);

  Git("checkout -q --detach");
  EXPECT_EQ((*DiscoverWorkTree(repo_))->branch, "");
}

// `dirty` speaks of the run's source, the directory given: changes beside it
// do not count, changes beneath it (staged, unstaged, untracked, in a
// subdirectory) do, and the directory's name is a path, not a pattern.
TEST_F(GitSourceTest, DirtyLooksOnlyBeneathTheGivenDirectory) {
  Run("mkdir -p '" + repo_ + "/ci/deep' '" + repo_ + "/other' '" + repo_ +
      "/c*'");
  Write("ci/pipeline.yaml", "p\n");
  Write("ci/deep/x.txt", "x\n");
  Write("other/y.txt", "y\n");
  Write("c*/z.txt", "z\n");
  Write(".gitignore", "*.log\n");
  Git("add -A && git commit -q -m one");
  const std::string ci = repo_ + "/ci";
  auto dirty = [](const std::string& at) {
    auto h = DiscoverWorkTree(at);
    EXPECT_TRUE(h.ok()) << h.status();
    return h.ok() && h->has_value() && (*h)->dirty;
  };
  EXPECT_FALSE(dirty(ci));

  Write("other/y.txt", "changed\n");
  Write("other/new.txt", "untracked\n");
  Write("ci2.txt", "a sibling whose name starts like the directory\n");
  Git("add other/y.txt");
  EXPECT_FALSE(dirty(ci)) << "changes outside ci/ are not its source";
  EXPECT_TRUE(dirty(repo_)) << "the top sees all of them";
  EXPECT_TRUE(dirty(repo_ + "/other"));
  // Through a symlink to the directory: the same answer.
  Run("ln -s '" + ci + "' '" + root_ + "/ci-link'");
  EXPECT_FALSE(dirty(root_ + "/ci-link"));

  Write("ci/deep/x.txt", "changed\n");
  EXPECT_TRUE(dirty(ci)) << "unstaged, in a subdirectory";
  EXPECT_TRUE(dirty(root_ + "/ci-link"));
  Git("add ci/deep/x.txt");
  EXPECT_TRUE(dirty(ci)) << "staged";
  Git("reset -q ci/deep/x.txt && git checkout -q ci/deep/x.txt");
  EXPECT_FALSE(dirty(ci));
  Write("ci/deep/new.txt", "untracked\n");
  EXPECT_TRUE(dirty(ci)) << "untracked";
  Run("rm '" + repo_ + "/ci/deep/new.txt'");
  Write("ci/build.log", "ignored\n");
  EXPECT_FALSE(dirty(ci)) << "ignored files do not count";

  // `c*` is a directory name: `ci/` (which `c*` would match as a pattern)
  // is dirty again, `c*/` is not.
  Write("ci/pipeline.yaml", "changed\n");
  EXPECT_TRUE(dirty(ci));
  EXPECT_FALSE(dirty(repo_ + "/c*"));
}

TEST_F(GitSourceTest, ExportWritesTheCommittedTreeExactly) {
  Run("mkdir -p '" + repo_ + "/src/deep'");
  Write("src/deep/run.sh", "#!/bin/sh\necho hi\n");
  Write("README", "v1\n");
  Run("chmod 755 '" + repo_ + "/src/deep/run.sh' && ln -s src/deep/run.sh '" +
      repo_ + "/link'");
  Git("add -A && git commit -q -m one && git tag v1");
  Write("README", "v2, not committed\n");
  Write("untracked", "x\n");

  std::string out = root_ + "/export";
  ASSERT_EQ(mkdir(out.c_str(), 0755), 0);
  mode_t old = umask(077);
  absl::Status s = ExportTree(repo_, "v1", out);
  umask(old);
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(Read(out + "/README"), "v1\n");
  EXPECT_EQ(Read(out + "/src/deep/run.sh"), "#!/bin/sh\necho hi\n");
  struct stat st;
  ASSERT_EQ(stat((out + "/src/deep/run.sh").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0755u);
  ASSERT_EQ(stat((out + "/README").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0644u);
  char target[64] = {};
  ASSERT_GT(readlink((out + "/link").c_str(), target, sizeof target - 1), 0);
  EXPECT_STREQ(target, "src/deep/run.sh");
  EXPECT_NE(access((out + "/untracked").c_str(), F_OK), 0);
  EXPECT_NE(access((out + "/.git").c_str(), F_OK), 0);

  auto c = ResolveCommit(repo_, "v1");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->revision, Git("rev-parse v1^{commit}"));
  EXPECT_EQ(c->branch, "");
  EXPECT_EQ(ResolveCommit(repo_, "main")->branch, "main");
  EXPECT_THAT(ResolveCommit(repo_, "no-such-rev").status().message(),
              HasSubstr("no-such-rev"));
}

// A tree object written byte by byte (git's own tools refuse such names) with
// an entry "..": exporting it must not write outside the directory.
TEST_F(GitSourceTest, HostileEntryNamesAreRefused) {
  Write("f", "payload\n");
  std::string blob = Git("hash-object -w f");
  for (const std::string name : {"..", ".git", ".GIT"}) {
    std::string tree_file = root_ + "/tree.bin";
    std::string raw = "100644 " + name + std::string(1, '\0');
    for (size_t i = 0; i < blob.size(); i += 2) {
      raw.push_back(
          static_cast<char>(std::stoi(blob.substr(i, 2), nullptr, 16)));
    }
    std::ofstream(tree_file, std::ios::binary) << raw;
    std::string tree =
        Git("hash-object -t tree -w --literally '" + tree_file + "'");
    std::string commit = Git("commit-tree " + tree + " -m hostile");
    std::string out =
        root_ + "/export-" + std::to_string(name.size()) + name[1];
    ASSERT_EQ(mkdir(out.c_str(), 0755), 0);
    absl::Status s = ExportTree(repo_, commit, out);
    EXPECT_THAT(s.message(), HasSubstr("not a safe file name")) << name;
  }
  EXPECT_NE(access((root_ + "/f").c_str(), F_OK), 0);
}

TEST_F(GitSourceTest, ExportLimitsHold) {
  Write("big", std::string(4096, 'x'));
  Run("mkdir -p '" + repo_ + "/a/b/c'");
  Write("a/b/c/f", "x");
  Git("add -A && git commit -q -m big");
  std::string out = root_ + "/e1";
  ASSERT_EQ(mkdir(out.c_str(), 0755), 0);
  ExportLimits small_bytes;
  small_bytes.max_bytes = 1000;
  EXPECT_EQ(ExportTree(repo_, "HEAD", out, small_bytes).code(),
            absl::StatusCode::kResourceExhausted);
  out = root_ + "/e2";
  ASSERT_EQ(mkdir(out.c_str(), 0755), 0);
  ExportLimits shallow;
  shallow.max_depth = 1;
  EXPECT_THAT(ExportTree(repo_, "HEAD", out, shallow).message(),
              HasSubstr("nested deeper"));
}

}  // namespace
}  // namespace kiln::git

namespace kiln::git {
namespace {

TEST_F(GitSourceTest, ChangelogSinceTheLastRunOrTheMergeBase) {
  Write("f", "0");
  Git("add f && git commit -q -m base");
  Git("checkout -q -b feature");
  for (const char* m : {"one", "two: shipit", "three"}) {
    Write("f", m);
    Git(std::string("commit -q -am '") + m + "'");
  }
  std::string two = Git("rev-parse HEAD~1");
  // A new branch: everything since the merge base with main.
  auto log = Changelog(repo_, "HEAD", "", {"main"});
  ASSERT_TRUE(log.ok()) << log.status();
  EXPECT_EQ(*log, (std::vector<std::string>{"three", "two: shipit", "one"}));
  // Since the last successful run's revision.
  log = Changelog(repo_, "HEAD", two, {"main"});
  ASSERT_TRUE(log.ok());
  EXPECT_EQ(*log, (std::vector<std::string>{"three"}));
  // A since that is not an ancestor (a rewritten history) falls back.
  EXPECT_EQ(Changelog(repo_, "HEAD", "no-such-rev", {"main"})->size(), 3u);
  // On the default branch with no earlier run: head alone.
  Git("checkout -q main");
  EXPECT_EQ(*Changelog(repo_, "HEAD", "", {"main"}),
            std::vector<std::string>{"base"});
  // Bounded.
  Git("checkout -q feature");
  EXPECT_EQ(Changelog(repo_, "HEAD", "", {"main"}, 2)->size(), 2u);
}

}  // namespace
}  // namespace kiln::git
