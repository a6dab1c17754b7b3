// LayoutSource reads hostile layouts: every refusal is a clear error and
// nothing outside the layout is read.
#include "engine/oci/layout.h"

#include <sys/stat.h>
#include <unistd.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "engine/cas/beneath.h"
#include "engine/cas/digest.h"
#include "engine/oci/builder.h"
#include "engine/oci/test_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kiln::oci {
namespace {

using ::testing::HasSubstr;
using testing::OpenDir;
using testing::ReadFile;
using testing::TempDir;
using testing::WriteFile;

class LayoutTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = TempDir(
        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    WriteFile(dir_ + "/tree/bin/app", "application bytes", 0755);
    cas::UniqueFd tree(OpenDir(dir_ + "/tree"));
    BuildRequest req;
    req.layers.push_back(
        {LayerSource{tree.get(), "tree", "/", -1, 0, 0}, "layer"});
    req.cmd = {"/bin/app"};
    cas::UniqueFd parent(OpenDir(dir_));
    absl::StatusOr<BuiltImage> img = BuildImage(req, parent.get(), "layout");
    ASSERT_TRUE(img.ok()) << img.status();
    image_ = *img;
    layout_ = dir_ + "/layout";
  }

  absl::StatusOr<std::unique_ptr<LayoutSource>> Open() {
    cas::UniqueFd fd(OpenDir(layout_));
    return LayoutSource::Open(fd.get(), "test");
  }
  std::string BlobPath(const std::string& digest) {
    return absl::StrCat(layout_, "/blobs/sha256/", digest.substr(7));
  }
  // FetchBlob into a scratch file; returns its status.
  absl::Status Fetch(LayoutSource& src, const Descriptor& d) {
    std::string out = dir_ + "/fetched";
    unlink(out.c_str());
    int fd = open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    cas::UniqueFd f(fd);
    return src.FetchBlob(d, fd);
  }

  std::string dir_, layout_;
  BuiltImage image_;
};

TEST_F(LayoutTest, ReadsWhatTheBuilderWrote) {
  auto src = Open();
  ASSERT_TRUE(src.ok()) << src.status();
  absl::StatusOr<FetchedManifest> by_tag = (*src)->GetManifest("latest");
  ASSERT_TRUE(by_tag.ok()) << by_tag.status();
  EXPECT_EQ(by_tag->digest, image_.manifest_digest);
  EXPECT_EQ(by_tag->media_type, kOciManifest);
  absl::StatusOr<FetchedManifest> by_digest =
      (*src)->GetManifest(image_.manifest_digest);
  ASSERT_TRUE(by_digest.ok()) << by_digest.status();
  EXPECT_EQ(by_digest->bytes, by_tag->bytes);
  absl::StatusOr<FetchedManifest> index = (*src)->GetManifest("");
  ASSERT_TRUE(index.ok());
  EXPECT_EQ(index->media_type, kOciIndex);
  EXPECT_TRUE(Fetch(**src, image_.manifest.layers[0]).ok());
  EXPECT_EQ(ReadFile(dir_ + "/fetched"),
            ReadFile(BlobPath(image_.manifest.layers[0].digest)));
  absl::StatusOr<FetchedManifest> missing = (*src)->GetManifest("v2");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(missing.status().message(), HasSubstr("tags: latest"));
}

TEST_F(LayoutTest, BlobWhoseBytesDoNotMatchItsDigestIsDataLoss) {
  const Descriptor& layer = image_.manifest.layers[0];
  std::string path = BlobPath(layer.digest);
  std::string bytes = ReadFile(path);
  bytes[bytes.size() / 2] ^= 1;  // same size, other content
  WriteFile(path, bytes);
  auto src = Open();
  ASSERT_TRUE(src.ok());
  absl::Status s = Fetch(**src, layer);
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(s.message(), HasSubstr("does not match its digest"));
  EXPECT_THAT(s.message(), HasSubstr(layer.digest));
  // A manifest whose bytes do not match is refused the same way.
  std::string mpath = BlobPath(image_.manifest_digest);
  WriteFile(mpath, ReadFile(mpath) + " ");
  absl::StatusOr<FetchedManifest> m = (*src)->GetManifest("latest");
  EXPECT_EQ(m.status().code(), absl::StatusCode::kDataLoss);
}

TEST_F(LayoutTest, SizeThatDiffersFromTheDescriptorIsDataLoss) {
  Descriptor layer = image_.manifest.layers[0];
  layer.size += 1;
  auto src = Open();
  ASSERT_TRUE(src.ok());
  absl::Status s = Fetch(**src, layer);
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(s.message(), HasSubstr("descriptor says"));
}

TEST_F(LayoutTest, SymlinkedBlobIsRefusedNotFollowed) {
  const Descriptor& layer = image_.manifest.layers[0];
  std::string path = BlobPath(layer.digest);
  // The same bytes outside the layout, reached through a symlink.
  WriteFile(dir_ + "/outside", ReadFile(path));
  ASSERT_EQ(unlink(path.c_str()), 0);
  ASSERT_EQ(symlink((dir_ + "/outside").c_str(), path.c_str()), 0);
  auto src = Open();
  ASSERT_TRUE(src.ok());
  absl::Status s = Fetch(**src, layer);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("symlink"));
  EXPECT_EQ(ReadFile(dir_ + "/fetched"), "");  // nothing was read
}

TEST_F(LayoutTest, SymlinkedDirectoriesAndIndexAreRefused) {
  // blobs/ -> a copy elsewhere.
  std::string copy = dir_ + "/copy";
  std::string out;
  ASSERT_EQ(testing::RunCommand(
                absl::StrCat("cp -a ", layout_, "/blobs ", copy), &out),
            0)
      << out;
  ASSERT_EQ(
      testing::RunCommand(absl::StrCat("rm -rf ", layout_, "/blobs"), &out), 0);
  ASSERT_EQ(symlink(copy.c_str(), (layout_ + "/blobs").c_str()), 0);
  auto src = Open();
  ASSERT_TRUE(src.ok());
  absl::StatusOr<FetchedManifest> m = (*src)->GetManifest("latest");
  EXPECT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(m.status().message(), HasSubstr("symlink"));

  // index.json -> /etc/passwd.
  ASSERT_EQ(unlink((layout_ + "/index.json").c_str()), 0);
  ASSERT_EQ(symlink("/etc/passwd", (layout_ + "/index.json").c_str()), 0);
  m = (*src)->GetManifest("latest");
  EXPECT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(m.status().message(), HasSubstr("index.json"));
}

TEST_F(LayoutTest, HugeIndexIsRefusedBeforeItIsRead) {
  std::string index = ReadFile(layout_ + "/index.json");
  // Valid JSON, padded past the limit.
  index.insert(
      index.size() - 1,
      absl::StrCat(",\"x\":\"", std::string(kMaxManifestBytes, 'a'), "\""));
  WriteFile(layout_ + "/index.json", index);
  auto src = Open();
  ASSERT_TRUE(src.ok());
  absl::StatusOr<FetchedManifest> m = (*src)->GetManifest("latest");
  EXPECT_EQ(m.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(m.status().message(), HasSubstr("over the limit"));
}

TEST_F(LayoutTest, FifoBlobAndBadDigestsAreRefusedWithoutBlocking) {
  const Descriptor& layer = image_.manifest.layers[0];
  std::string path = BlobPath(layer.digest);
  ASSERT_EQ(unlink(path.c_str()), 0);
  ASSERT_EQ(mkfifo(path.c_str(), 0644), 0);
  auto src = Open();
  ASSERT_TRUE(src.ok());
  absl::Status s = Fetch(**src, layer);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("not a regular file"));

  Descriptor escape = layer;
  escape.digest = "sha256:../../../../etc/passwd";
  EXPECT_EQ(Fetch(**src, escape).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ((*src)->GetManifest("sha256:../index.json").status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(LayoutTest, MissingOrWrongLayoutVersionIsRefused) {
  WriteFile(layout_ + "/oci-layout", "{\"imageLayoutVersion\":\"2.0.0\"}");
  EXPECT_EQ(Open().status().code(), absl::StatusCode::kInvalidArgument);
  ASSERT_EQ(unlink((layout_ + "/oci-layout").c_str()), 0);
  EXPECT_EQ(Open().status().code(), absl::StatusCode::kNotFound);
}

// A base layout with a damaged layer fails the build that uses it.
TEST_F(LayoutTest, BuildOnADamagedBaseFails) {
  std::string path = BlobPath(image_.manifest.layers[0].digest);
  std::string bytes = ReadFile(path);
  bytes[0] ^= 1;
  WriteFile(path, bytes);
  auto src = Open();
  ASSERT_TRUE(src.ok());
  BuildRequest req;
  req.base = src->get();
  req.base_digest = image_.manifest_digest;
  cas::UniqueFd parent(OpenDir(dir_));
  absl::StatusOr<BuiltImage> img = BuildImage(req, parent.get(), "child");
  EXPECT_EQ(img.status().code(), absl::StatusCode::kDataLoss);
}

}  // namespace
}  // namespace kiln::oci
