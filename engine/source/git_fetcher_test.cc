#include "engine/source/git_fetcher.h"

#include <sys/stat.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/source/git_run_source.h"
#include "engine/source/secrets.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kiln::source {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// A repository made with the git command line (a client apart from
// libgit2) that the fetcher reads through file:// URLs.
class GitFetcherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = absl::StrCat(
        std::getenv("TEST_TMPDIR"), "/",
        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    repo_ = root_ + "/origin";
    Run("rm -rf '" + root_ + "' && mkdir -p '" + repo_ + "'");
    setenv("GIT_CONFIG_NOSYSTEM", "1", 1);
    setenv("HOME", root_.c_str(), 1);
    setenv("GIT_AUTHOR_NAME", "Ada", 1);
    setenv("GIT_AUTHOR_EMAIL", "ada@example.org", 1);
    setenv("GIT_COMMITTER_NAME", "Ada", 1);
    setenv("GIT_COMMITTER_EMAIL", "ada@example.org", 1);
    setenv("GIT_AUTHOR_DATE", "1700000000 +0000", 1);
    setenv("GIT_COMMITTER_DATE", "1700000000 +0000", 1);
    Git("init -q -b main");
    Write("pipeline.yaml", "name: p\n");
    Git("add . && git commit -q -m 'first'");
    first_ = Git("rev-parse HEAD");
    Git("checkout -q -b feature");
    Write("feature.txt", "f\n");
    Git("add . && git commit -q -m 'shipit: feature'");
    feature_ = Git("rev-parse HEAD");
    Git("checkout -q main && git tag v1 " + first_);
  }

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
  std::unique_ptr<GitFetcher> Fetcher(bool allow_local = true) {
    GitFetchOptions o;
    o.cache_dir = root_ + "/cache";
    o.allow_local = allow_local;
    auto f = GitFetcher::Create(o);
    EXPECT_TRUE(f.ok()) << f.status();
    return std::move(*f);
  }
  std::string NewDir() {
    std::string d = absl::StrCat(root_, "/out", dirs_++);
    mkdir(d.c_str(), 0755);
    return d;
  }

  std::string root_, repo_, first_, feature_;
  int dirs_ = 0;
};

TEST(GitUrlPolicy, OnlyRemoteSchemesUnlessLocalIsAllowed) {
  EXPECT_TRUE(CheckGitUrl("https://github.com/acme/kcow.git", false).ok());
  EXPECT_TRUE(CheckGitUrl("ssh://git@github.com/acme/kcow.git", false).ok());
  EXPECT_TRUE(CheckGitUrl("git@github.com:acme/kcow.git", false).ok());
  for (const char* bad :
       {"file:///etc", "/srv/repo", "ext::sh -c touch% /tmp/pwned", "ext::ssh",
        "fd::17", "http://github.com/acme/kcow", "git://github.com/acme/kcow",
        "https://user:pw@github.com/a/b", "relative/path", "", "https://",
        "-uhttps://x/y"}) {
    EXPECT_FALSE(CheckGitUrl(bad, false).ok()) << bad;
  }
  EXPECT_TRUE(CheckGitUrl("file:///srv/repo", true).ok());
  EXPECT_TRUE(CheckGitUrl("/srv/repo", true).ok());
  EXPECT_FALSE(CheckGitUrl("ext::sh", true).ok());
  EXPECT_THAT(CheckGitUrl("https://u:hunter22@h.test/a", false).message(),
              ::testing::Not(HasSubstr("hunter22")));
  EXPECT_FALSE(CheckGitRef("--upload-pack=evil").ok());
  EXPECT_FALSE(CheckGitRef("main\nx").ok());
}

TEST(GitCredentials, SecretsBecomeTheRightCredential) {
  GitCredential c = CredentialFor("bot:tok123", "", true, false);
  EXPECT_EQ(c.kind, GitCredential::kUserPassword);
  EXPECT_EQ(c.user, "bot");
  EXPECT_EQ(c.password, "tok123");
  c = CredentialFor("tok123", "oauth2", true, false);
  EXPECT_EQ(c.user, "oauth2");
  EXPECT_EQ(c.password, "tok123");
  c = CredentialFor("tok123", "", true, false);
  EXPECT_EQ(c.user, "git");
  const std::string key =
      "-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n-----END OPENSSH PRIVATE "
      "KEY-----";
  c = CredentialFor(key, "git", true, true);
  EXPECT_EQ(c.kind, GitCredential::kSshKey);
  EXPECT_EQ(c.ssh_key, key);
  EXPECT_EQ(CredentialFor(key, "git", true, false).kind, GitCredential::kNone);
  EXPECT_EQ(CredentialFor("tok", "git", false, true).kind,
            GitCredential::kNone);
}

TEST_F(GitFetcherTest, LocalUrlsNeedTheServerFlag) {
  auto f = Fetcher(false);
  auto got = f->Checkout({"file://" + repo_, "main", "", "", ""}, NewDir());
  EXPECT_EQ(got.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(got.status().message(), HasSubstr("--git-allow-local"));
}

TEST_F(GitFetcherTest, BranchTagShaAndHeadResolveAndExport) {
  auto f = Fetcher();
  std::string dir = NewDir();
  auto got = f->Checkout({"file://" + repo_, "feature", "", "", ""}, dir);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->commit.revision, feature_);
  EXPECT_EQ(got->branch, "feature");
  EXPECT_EQ(got->commit.message, "shipit: feature");
  EXPECT_EQ(got->commit.author, "Ada <ada@example.org>");
  EXPECT_EQ(got->commit.time, 1700000000);
  // Since the merge base with main: the feature's own commit.
  EXPECT_THAT(got->changelog, ElementsAre("shipit: feature"));
  struct stat st;
  EXPECT_EQ(stat((dir + "/feature.txt").c_str(), &st), 0);
  EXPECT_EQ(stat((dir + "/.git").c_str(), &st), -1);

  auto tag = f->Checkout({repo_, "v1", "", "", ""}, NewDir());
  ASSERT_TRUE(tag.ok()) << tag.status();
  EXPECT_EQ(tag->commit.revision, first_);
  EXPECT_EQ(tag->branch, "");

  auto sha = f->Checkout({"file://" + repo_, feature_, "", "", ""}, NewDir());
  ASSERT_TRUE(sha.ok()) << sha.status();
  EXPECT_EQ(sha->commit.revision, feature_);

  auto head = f->Checkout({"file://" + repo_, "", "", "", ""}, NewDir());
  ASSERT_TRUE(head.ok()) << head.status();
  EXPECT_EQ(head->commit.revision, first_);
  EXPECT_EQ(head->branch, "main");

  auto missing = f->Checkout({"file://" + repo_, "nope", "", "", ""}, NewDir());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
}

TEST_F(GitFetcherTest, PullRequestRefsAreFetchedOnDemand) {
  Git("update-ref refs/pull/7/head " + feature_ +
      " && git branch -D -q feature");
  auto f = Fetcher();
  auto got = f->Checkout(
      {"file://" + repo_, feature_, "", "refs/pull/7/head", ""}, NewDir());
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->commit.revision, feature_);
}

TEST_F(GitFetcherTest, ANewCommitIsSeenByTheNextFetch) {
  auto f = Fetcher();
  ASSERT_TRUE(f->Checkout({repo_, "main", "", "", ""}, NewDir()).ok());
  Write("b.txt", "b\n");
  Git("add . && git commit -q -m second");
  auto got = f->Checkout({repo_, "main", "", "", first_}, NewDir());
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->commit.message, "second");
  EXPECT_THAT(got->changelog, ElementsAre("second"));  // since `first`
}

TEST_F(GitFetcherTest, ConcurrentCheckoutsOfOneUrlAreSafe) {
  auto f = Fetcher();
  std::vector<std::thread> threads;
  std::vector<absl::Status> results(6);
  std::vector<std::string> dirs;
  for (int i = 0; i < 6; ++i) dirs.push_back(NewDir());
  for (int i = 0; i < 6; ++i) {
    threads.emplace_back([&, i] {
      auto got = f->Checkout(
          {"file://" + repo_, i % 2 ? "feature" : "main", "", "", ""}, dirs[i]);
      results[i] = got.status();
    });
  }
  for (auto& t : threads) t.join();
  for (int i = 0; i < 6; ++i) {
    EXPECT_TRUE(results[i].ok()) << results[i];
    struct stat st;
    EXPECT_EQ(stat((dirs[i] + "/pipeline.yaml").c_str(), &st), 0);
  }
}

TEST_F(GitFetcherTest, FetchBoundsAndCacheCount) {
  GitFetchOptions o;
  o.cache_dir = root_ + "/small";
  o.allow_local = true;
  o.max_clone_bytes = 1;  // any real clone is bigger
  auto f = GitFetcher::Create(o);
  ASSERT_TRUE(f.ok());
  auto got = (*f)->Checkout({repo_, "main", "", "", ""}, NewDir());
  EXPECT_EQ(got.status().code(), absl::StatusCode::kResourceExhausted);

  o.cache_dir = root_ + "/few";
  o.max_clone_bytes = int64_t{1} << 30;
  o.max_cached_clones = 1;
  auto few = GitFetcher::Create(o);
  ASSERT_TRUE(few.ok());
  Run("cp -r '" + repo_ + "' '" + root_ + "/second'");
  ASSERT_TRUE((*few)->Checkout({repo_, "main", "", "", ""}, NewDir()).ok());
  ASSERT_TRUE(
      (*few)->Checkout({root_ + "/second", "main", "", "", ""}, NewDir()).ok());
  struct stat st;
  EXPECT_EQ(
      stat((o.cache_dir + "/" + GitFetcher::CacheKey(repo_)).c_str(), &st), -1)
      << "the least recently used clone is evicted";
  EXPECT_EQ(
      stat(
          (o.cache_dir + "/" + GitFetcher::CacheKey(root_ + "/second")).c_str(),
          &st),
      0);
}

TEST_F(GitFetcherTest, CredentialsNeedAKnownSecretAndNeverLeak) {
  auto f = Fetcher();
  auto got = f->Checkout({repo_, "main", "missing-secret", "", ""}, NewDir());
  EXPECT_EQ(got.status().code(), absl::StatusCode::kFailedPrecondition);
  GitFetchOptions o;
  o.cache_dir = root_ + "/cache2";
  o.allow_local = true;
  auto secrets = std::make_shared<Secrets>();
  secrets->Set("tok", "hunter2-secret-value");
  o.secrets = secrets;
  auto g = GitFetcher::Create(o);
  ASSERT_TRUE(g.ok());
  auto unknown = (*g)->Checkout({repo_, "main", "other", "", ""}, NewDir());
  EXPECT_EQ(unknown.status().code(), absl::StatusCode::kNotFound);
  // A local repository asks for none: the secret is simply not used.
  auto ok = (*g)->Checkout({repo_, "main", "tok", "", ""}, NewDir());
  ASSERT_TRUE(ok.ok()) << ok.status();
  // An unreachable https remote fails Unavailable without the secret.
  auto down = (*g)->Checkout(
      {"https://127.0.0.1:1/acme/kcow.git", "main", "tok", "", ""}, NewDir());
  EXPECT_FALSE(down.ok());
  EXPECT_THAT(down.status().message(),
              ::testing::Not(HasSubstr("hunter2-secret-value")));
}

TEST_F(GitFetcherTest, PipelineIsReadWithoutFollowingLinks) {
  Run("ln -s /etc/passwd '" + repo_ + "/evil.yaml'");
  Git("add . && git commit -q -m link");
  auto f = Fetcher();
  auto got =
      CheckoutGitSource(f.get(), root_ + "/store", {repo_, "main", "", "", ""});
  ASSERT_TRUE(got.ok()) << got.status();
  auto text = ReadPipelineFromTree(got->dir, "pipeline.yaml", "x", 1 << 20);
  ASSERT_TRUE(text.ok()) << text.status();
  EXPECT_EQ(*text, "name: p\n");
  EXPECT_FALSE(ReadPipelineFromTree(got->dir, "evil.yaml", "x", 1 << 20).ok());
  EXPECT_FALSE(ReadPipelineFromTree(got->dir, "../x", "x", 1 << 20).ok());
  EXPECT_EQ(
      ReadPipelineFromTree(got->dir, "pipeline.yaml", "x", 3).status().code(),
      absl::StatusCode::kResourceExhausted);
}

TEST(Secrets, LoadRefusesOpenDirectoriesAndLinks) {
  std::string dir = absl::StrCat(std::getenv("TEST_TMPDIR"), "/secrets");
  mkdir(dir.c_str(), 0700);
  std::ofstream(dir + "/hook") << "abc\n";
  auto s = Secrets::Load(dir);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(*s->Get("hook"), "abc");
  EXPECT_THAT(s->Get("nope").status().message(), HasSubstr("'nope'"));
  symlink("/etc/passwd", (dir + "/link").c_str());
  EXPECT_FALSE(Secrets::Load(dir).ok());
  unlink((dir + "/link").c_str());
  chmod(dir.c_str(), 0750);
  EXPECT_EQ(Secrets::Load(dir).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace kiln::source
