#include "engine/exec/host_staging.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "engine/archive/tar_writer.h"
#include "engine/archive/zstd_stream.h"
#include "engine/cas/beneath.h"
#include "engine/cas/file_io.h"
#include "gtest/gtest.h"

namespace kiln {
namespace {

class HostStagingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    tmp_ = absl::StrCat(getenv("TEST_TMPDIR"), "/hs-", cas::RandomSuffix());
    ASSERT_TRUE(cas::MakeDirs(tmp_ + "/ws").ok());
    ASSERT_TRUE(cas::MakeDirs(tmp_ + "/host").ok());
    auto store = cas::ArtifactStore::Open(tmp_ + "/store");
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
    staging_ = std::make_unique<HostStaging>(store_.get());
    auto ws = cas::OpenTrustedDir(tmp_ + "/ws");
    ASSERT_TRUE(ws.ok());
    ws_ = std::move(*ws);
  }
  void TearDown() override { ASSERT_TRUE(cas::RemoveTree(tmp_).ok()); }

  static void Write(const std::string& path, const std::string& content) {
    ASSERT_TRUE(cas::MakeDirs(path.substr(0, path.rfind('/'))).ok());
    std::ofstream(path, std::ios::binary | std::ios::trunc) << content;
  }
  // Stashes the directory `dir` (made by `fill`) and returns its digest.
  std::string Artifact(const std::string& name) {
    auto r = store_->Stash(tmp_ + "/" + name);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? r->tree.ToString() : "";
  }
  std::vector<std::string> List(const std::string& dir) {
    std::vector<std::string> names;
    DIR* d = opendir(dir.c_str());
    if (d == nullptr) return names;
    while (dirent* e = readdir(d)) {
      std::string n = e->d_name;
      if (n != "." && n != "..") names.push_back(n);
    }
    closedir(d);
    std::sort(names.begin(), names.end());
    return names;
  }
  static bool IsLink(const std::string& path) {
    struct stat st;
    return lstat(path.c_str(), &st) == 0 && S_ISLNK(st.st_mode);
  }

  std::string tmp_;
  std::unique_ptr<cas::ArtifactStore> store_;
  std::unique_ptr<HostStaging> staging_;
  cas::UniqueFd ws_;
};

TEST_F(HostStagingTest, MaterializesAtThePathAndCapturesBack) {
  Write(tmp_ + "/a/lib/x.txt", "x");
  std::string a = Artifact("a");
  ASSERT_TRUE(staging_->Materialize(a, ws_.get(), "deps/a").ok());
  EXPECT_EQ(*cas::ReadSmallFile(tmp_ + "/ws/deps/a/lib/x.txt"), "x");
  EXPECT_EQ(List(tmp_ + "/ws"), std::vector<std::string>{"deps"})
      << "no temp directory is left";
  ASSERT_TRUE(staging_->Materialize(a, ws_.get(), "").ok());
  EXPECT_EQ(*cas::ReadSmallFile(tmp_ + "/ws/lib/x.txt"), "x");

  Write(tmp_ + "/ws/out/bin", "built");
  auto captured = staging_->Capture(ws_.get(), {"out/bin"});
  ASSERT_TRUE(captured.ok()) << captured.status();
  auto tree = cas::Digest::Parse(*captured);
  ASSERT_TRUE(tree.ok());
  ASSERT_TRUE(store_->Unstash(*tree, tmp_ + "/back").ok());
  EXPECT_EQ(*cas::ReadSmallFile(tmp_ + "/back/out/bin"), "built");
  EXPECT_EQ(List(tmp_ + "/back"), std::vector<std::string>{"out"})
      << "only the declared path and its parents";
}

TEST_F(HostStagingTest, TwoInputsProvidingOneEntryAreRefused) {
  Write(tmp_ + "/a/same", "a");
  Write(tmp_ + "/b/same", "b");
  ASSERT_TRUE(staging_->Materialize(Artifact("a"), ws_.get(), "").ok());
  absl::Status s = staging_->Materialize(Artifact("b"), ws_.get(), "");
  EXPECT_TRUE(absl::IsAlreadyExists(s)) << s;
  EXPECT_TRUE(absl::StrContains(s.message(), "two inputs both provide same"))
      << s;
  EXPECT_EQ(*cas::ReadSmallFile(tmp_ + "/ws/same"), "a") << "never replaced";
  EXPECT_EQ(List(tmp_ + "/ws"), std::vector<std::string>{"same"})
      << "the temp directory is removed on failure too";
}

TEST_F(HostStagingTest, AnInputsSymlinkOutIsNeverFollowed) {
  // Input `a` carries a link to a host directory; input `b` then targets a
  // path through it, and input `c` has an entry under the link's name.
  ASSERT_EQ(symlink((tmp_ + "/host").c_str(), (tmp_ + "/mk-a").c_str()), 0);
  ASSERT_TRUE(cas::MakeDirs(tmp_ + "/a").ok());
  ASSERT_EQ(rename((tmp_ + "/mk-a").c_str(), (tmp_ + "/a/lnk").c_str()), 0);
  Write(tmp_ + "/b/planted", "evil");
  Write(tmp_ + "/c/lnk/planted", "evil");
  ASSERT_TRUE(staging_->Materialize(Artifact("a"), ws_.get(), "").ok());
  EXPECT_TRUE(IsLink(tmp_ + "/ws/lnk")) << "stored and restored as a link";

  absl::Status through = staging_->Materialize(Artifact("b"), ws_.get(), "lnk");
  EXPECT_TRUE(absl::IsInvalidArgument(through)) << through;
  EXPECT_TRUE(absl::StrContains(through.message(), "path 'lnk'")) << through;
  absl::Status deeper =
      staging_->Materialize(Artifact("b"), ws_.get(), "lnk/sub");
  EXPECT_FALSE(deeper.ok());
  absl::Status merged = staging_->Materialize(Artifact("c"), ws_.get(), "");
  EXPECT_TRUE(absl::IsAlreadyExists(merged)) << merged;
  EXPECT_TRUE(List(tmp_ + "/host").empty()) << "nothing written to the host";
  EXPECT_EQ(List(tmp_ + "/ws"), std::vector<std::string>{"lnk"});
}

TEST_F(HostStagingTest, PathsLeavingTheWorkspaceAreRefused) {
  Write(tmp_ + "/a/f", "f");
  std::string a = Artifact("a");
  for (std::string bad : {"..", "../host", "x/../../host", "/abs"}) {
    absl::Status s = staging_->Materialize(a, ws_.get(), bad);
    EXPECT_TRUE(absl::IsInvalidArgument(s)) << bad << ": " << s;
    auto c = staging_->Capture(ws_.get(), {bad});
    EXPECT_TRUE(absl::IsInvalidArgument(c.status()))
        << bad << ": " << c.status();
  }
  EXPECT_TRUE(List(tmp_ + "/ws").empty());
  EXPECT_TRUE(List(tmp_ + "/host").empty());
  EXPECT_FALSE(staging_->Materialize("sha256:nope", ws_.get(), "").ok());
}

TEST_F(HostStagingTest, MissingOutputNamesThePath) {
  Write(tmp_ + "/ws/out/a", "a");
  auto c = staging_->Capture(ws_.get(), {"out/a", "out/b"});
  EXPECT_TRUE(absl::IsNotFound(c.status())) << c.status();
  EXPECT_EQ(c.status().message(), "path 'out/b' was not produced");
}

TEST_F(HostStagingTest, AnOutputSymlinkToAHostDirIsCapturedAsALink) {
  Write(tmp_ + "/host/secret", "secret");
  ASSERT_EQ(symlink((tmp_ + "/host").c_str(), (tmp_ + "/ws/out").c_str()), 0);
  auto c = staging_->Capture(ws_.get(), {"out"});
  ASSERT_TRUE(c.ok()) << c.status();
  auto tree = cas::Digest::Parse(*c);
  ASSERT_TRUE(tree.ok());
  ASSERT_TRUE(store_->Unstash(*tree, tmp_ + "/back").ok());
  EXPECT_TRUE(IsLink(tmp_ + "/back/out"));
  EXPECT_EQ(List(tmp_ + "/back"), std::vector<std::string>{"out"});

  // A path *through* the link is refused, not read from the host.
  auto through = staging_->Capture(ws_.get(), {"out/secret"});
  EXPECT_TRUE(absl::IsInvalidArgument(through.status())) << through.status();
  EXPECT_TRUE(absl::StrContains(through.status().message(), "out/secret"))
      << through.status();
}

// A remote store (the agent's side): stashes trees whose archive blobs are
// then "uploaded" into the engine's blob store.
class ArchiveAccessTest : public HostStagingTest {
 protected:
  void SetUp() override {
    HostStagingTest::SetUp();
    auto remote = cas::ArtifactStore::Open(tmp_ + "/remote");
    ASSERT_TRUE(remote.ok()) << remote.status();
    remote_ = std::move(*remote);
  }
  // Stashes tmp_/name in the remote store; returns {tree, archive} and
  // copies the archive blob into the engine's blob store.
  std::pair<std::string, std::string> Upload(const std::string& name) {
    auto r = remote_->Stash(tmp_ + "/" + name);
    EXPECT_TRUE(r.ok()) << r.status();
    if (!r.ok()) return {};
    auto bytes = remote_->blobs().Get(r->archive);
    EXPECT_TRUE(bytes.ok());
    auto put = store_->blobs().Put(*bytes);
    EXPECT_TRUE(put.ok());
    EXPECT_EQ(put->ToString(), r->archive.ToString());
    return {r->tree.ToString(), r->archive.ToString()};
  }
  std::string PutBlob(const std::string& bytes) {
    auto put = store_->blobs().Put(bytes);
    EXPECT_TRUE(put.ok());
    return put.ok() ? put->ToString() : "";
  }
  // The engine's store has no record of `tree`.
  void ExpectUnrecorded(const std::string& tree) {
    auto digest = cas::Digest::Parse(tree);
    ASSERT_TRUE(digest.ok());
    EXPECT_TRUE(absl::IsNotFound(store_->ArchiveOf(*digest).status()));
    EXPECT_TRUE(absl::IsNotFound(staging_->ArchiveOf(tree).status()));
    EXPECT_FALSE(staging_->Materialize(tree, ws_.get(), "x").ok());
  }
  std::unique_ptr<cas::ArtifactStore> remote_;
};

TEST_F(ArchiveAccessTest, AGoodClaimIsAdoptedAndUnstashes) {
  Write(tmp_ + "/a/bin/tool", "tool");
  Write(tmp_ + "/a/README", "read me");
  auto [tree, archive] = Upload("a");
  ExpectUnrecorded(tree);
  absl::Status adopted = staging_->AdoptArchive(tree, archive);
  ASSERT_TRUE(adopted.ok()) << adopted;
  auto of = staging_->ArchiveOf(tree);
  ASSERT_TRUE(of.ok()) << of.status();
  EXPECT_EQ(*of, archive);
  ASSERT_TRUE(staging_->Materialize(tree, ws_.get(), "in").ok());
  EXPECT_EQ(List(tmp_ + "/ws/in"), (std::vector<std::string>{"README", "bin"}));
  // Adopting again changes nothing.
  EXPECT_TRUE(staging_->AdoptArchive(tree, archive).ok());
  // No scratch directory is left beneath the store.
  for (const std::string& name : List(tmp_ + "/store/artifacts")) {
    EXPECT_FALSE(absl::StrContains(name, "verify")) << name;
  }
}

TEST_F(ArchiveAccessTest, ArchiveOfAnEngineArtifactIsItsStashedArchive) {
  Write(tmp_ + "/a/f", "f");
  auto stashed = store_->Stash(tmp_ + "/a");
  ASSERT_TRUE(stashed.ok());
  auto of = staging_->ArchiveOf(stashed->tree.ToString());
  ASSERT_TRUE(of.ok()) << of.status();
  EXPECT_EQ(*of, stashed->archive.ToString());
  EXPECT_TRUE(store_->blobs().Has(stashed->archive));
  EXPECT_TRUE(absl::IsNotFound(
      staging_->ArchiveOf(cas::Digest::Of("x").ToString()).status()));
  EXPECT_TRUE(
      absl::IsInvalidArgument(staging_->ArchiveOf("sha256:no").status()));
}

TEST_F(ArchiveAccessTest, AnotherTreesArchiveIsRefusedAndNotRecorded) {
  Write(tmp_ + "/a/f", "real");
  Write(tmp_ + "/b/f", "forged");
  auto [tree_a, archive_a] = Upload("a");
  auto [tree_b, archive_b] = Upload("b");
  absl::Status s = staging_->AdoptArchive(tree_a, archive_b);
  EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
  EXPECT_TRUE(absl::StrContains(s.message(), tree_a)) << s;
  ExpectUnrecorded(tree_a);
  // The honest claim still works afterwards.
  EXPECT_TRUE(staging_->AdoptArchive(tree_a, archive_a).ok());
  EXPECT_EQ(*staging_->ArchiveOf(tree_a), archive_a);
}

TEST_F(ArchiveAccessTest, ACorruptArchiveIsRefusedAndNotRecorded) {
  Write(tmp_ + "/a/f", "content");
  auto [tree, archive] = Upload("a");
  std::string garbage = PutBlob("this is not a zstd frame at all");
  absl::Status s = staging_->AdoptArchive(tree, garbage);
  EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
  ExpectUnrecorded(tree);
  // A truncated archive.
  std::string whole = *store_->blobs().Get(*cas::Digest::Parse(archive));
  std::string cut = PutBlob(whole.substr(0, whole.size() / 2));
  s = staging_->AdoptArchive(tree, cut);
  EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
  ExpectUnrecorded(tree);
}

TEST_F(ArchiveAccessTest, AHostileArchiveIsRefusedAndWritesNothingOutside) {
  // A symlink to a host directory, then a file written through it.
  std::string tar;
  archive::TarWriter writer([&tar](absl::string_view d) {
    tar.append(d.data(), d.size());
    return absl::OkStatus();
  });
  ASSERT_TRUE(writer.AddSymlink("l", tmp_ + "/host").ok());
  ASSERT_TRUE(writer.BeginFile("l/pwned", 5, false).ok());
  ASSERT_TRUE(writer.FileData("pwned").ok());
  ASSERT_TRUE(writer.EndFile().ok());
  ASSERT_TRUE(writer.Finish().ok());
  std::string zst;
  archive::ZstdCompressor zstd(
      [&zst](absl::string_view d) {
        zst.append(d.data(), d.size());
        return absl::OkStatus();
      },
      1);
  ASSERT_TRUE(zstd.Write(tar).ok());
  ASSERT_TRUE(zstd.Finish().ok());
  std::string hostile = PutBlob(zst);
  Write(tmp_ + "/a/l", "claimed");
  auto [tree, archive] = Upload("a");
  absl::Status s = staging_->AdoptArchive(tree, hostile);
  EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
  ExpectUnrecorded(tree);
  EXPECT_TRUE(List(tmp_ + "/host").empty());
}

TEST_F(ArchiveAccessTest, MissingBlobsAndBadDigests) {
  Write(tmp_ + "/a/f", "x");
  auto [tree, archive] = Upload("a");
  absl::Status s =
      staging_->AdoptArchive(tree, cas::Digest::Of("absent").ToString());
  EXPECT_TRUE(absl::IsNotFound(s)) << s;
  EXPECT_TRUE(absl::IsInvalidArgument(staging_->AdoptArchive("x", archive)));
  EXPECT_TRUE(absl::IsInvalidArgument(staging_->AdoptArchive(tree, "sha1:x")));
  ExpectUnrecorded(tree);
}

}  // namespace
}  // namespace kiln
