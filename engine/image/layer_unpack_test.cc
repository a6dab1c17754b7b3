// Layers unpack with owners, modes, links and whiteouts in overlayfs form;
// hostile layers are refused with clear errors and leave nothing behind,
// inside or outside the layer cache.
#include "engine/image/layer_unpack.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/cas/beneath.h"
#include "engine/cas/digest.h"
#include "engine/cas/file_io.h"
#include "engine/image/testing/memory_registry.h"
#include "engine/oci/spec.h"
#include "gtest/gtest.h"

namespace kiln::image {
namespace {

using testing::Gzip;
using testing::TarBuilder;
using testing::ZeroBomb;
using testing::Zstd;

std::vector<std::string> List(const std::string& dir) {
  std::vector<std::string> names;
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return names;
  while (dirent* e = readdir(d)) {
    std::string n = e->d_name;
    if (n != "." && n != "..") names.push_back(n);
  }
  closedir(d);
  return names;
}

class LayerUnpackTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = absl::StrCat(getenv("TEST_TMPDIR"), "/lu-", cas::RandomSuffix());
    layers_ = root_ + "/layers";
    outside_ = root_ + "/outside";
    ASSERT_TRUE(cas::MakeDirs(layers_).ok());
    ASSERT_TRUE(cas::MakeDirs(outside_).ok());
  }
  void TearDown() override { ASSERT_TRUE(cas::RemoveTree(root_).ok()); }

  // Unpacks `blob` as layer "L" of layers_.
  absl::Status Unpack(const std::string& blob, const std::string& media_type,
                      const std::string& diff_id,
                      UnpackOptions options = UnpackOptions(),
                      std::string digest = "") {
    std::string path = root_ + "/blob";
    EXPECT_TRUE(cas::WriteFileAtomically(path, blob).ok());
    cas::UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
    absl::StatusOr<cas::UniqueFd> parent = cas::OpenTrustedDir(layers_);
    EXPECT_TRUE(parent.ok());
    LayerBlob b;
    b.media_type = media_type;
    b.digest = digest.empty() ? cas::Digest::Of(blob).ToString() : digest;
    b.size = static_cast<int64_t>(blob.size());
    b.diff_id = diff_id;
    return UnpackLayer(fd.get(), b, parent->get(), "L", layers_, options);
  }
  absl::Status UnpackTar(const std::string& tar,
                         UnpackOptions options = UnpackOptions()) {
    return Unpack(Gzip(tar), oci::kOciLayerGzip,
                  cas::Digest::Of(tar).ToString(), options);
  }

  std::string L(const std::string& rel) { return layers_ + "/L/" + rel; }

  std::string root_, layers_, outside_;
};

TEST_F(LayerUnpackTest, KeepsOwnersModesLinksAndTimesInEveryCompression) {
  std::string tar = TarBuilder()
                        .Dir("etc", 0755)
                        .File("etc/passwd", "root:x:0:0::/root:/bin/sh\n")
                        .Symlink("etc/localtime", "/usr/share/zoneinfo/UTC")
                        .Hardlink("etc/passwd-", "etc/passwd")
                        .File("home/u/notes", "mine", 0600, 1000, 1001)
                        .Dir("tmp", 01777)
                        .File("bin/su", "suid", 04755)
                        .File("bin/wall", "sgid", 02755, 0, 5)
                        .Fifo("run/initctl")
                        .Finish();
  for (std::string compression : {"gzip", "zstd", ""}) {
    SCOPED_TRACE(compression);
    std::string blob = compression == "gzip"   ? Gzip(tar)
                       : compression == "zstd" ? Zstd(tar)
                                               : tar;
    std::string media = compression == "gzip"   ? oci::kOciLayerGzip
                        : compression == "zstd" ? oci::kOciLayerZstd
                                                : oci::kOciLayerTar;
    ASSERT_TRUE(cas::RemoveTree(layers_ + "/L").ok());
    absl::Status st = Unpack(blob, media, cas::Digest::Of(tar).ToString());
    ASSERT_TRUE(st.ok()) << st;
    struct stat s;
    ASSERT_EQ(lstat(L("etc/passwd").c_str(), &s), 0);
    EXPECT_EQ(s.st_mode & 07777, 0644u);
    EXPECT_EQ(s.st_nlink, 2u);  // the hardlink
    EXPECT_EQ(s.st_mtime, 1700000000);
    ASSERT_EQ(lstat(L("home/u/notes").c_str(), &s), 0);
    EXPECT_EQ(s.st_uid, 1000u);
    EXPECT_EQ(s.st_gid, 1001u);
    EXPECT_EQ(s.st_mode & 07777, 0600u);
    ASSERT_EQ(lstat(L("tmp").c_str(), &s), 0);
    EXPECT_EQ(s.st_mode & 07777, 01777u);  // sticky kept
    // setuid/setgid stripped (the default policy).
    ASSERT_EQ(lstat(L("bin/su").c_str(), &s), 0);
    EXPECT_EQ(s.st_mode & 07777, 0755u);
    ASSERT_EQ(lstat(L("bin/wall").c_str(), &s), 0);
    EXPECT_EQ(s.st_mode & 07777, 0755u);
    EXPECT_EQ(s.st_gid, 5u);
    ASSERT_EQ(lstat(L("run/initctl").c_str(), &s), 0);
    EXPECT_TRUE(S_ISFIFO(s.st_mode));
    // An absolute symlink is kept verbatim (it resolves in the container).
    char target[256] = {};
    ASSERT_GT(readlink(L("etc/localtime").c_str(), target, sizeof(target)), 0);
    EXPECT_STREQ(target, "/usr/share/zoneinfo/UTC");
    ASSERT_EQ(lstat(L("").c_str(), &s), 0);
    EXPECT_EQ(s.st_mode & 07777, 0755u);
    EXPECT_EQ(List(layers_), std::vector<std::string>{"L"});
  }
}

TEST_F(LayerUnpackTest, WhiteoutsBecomeOverlayfsWhiteouts) {
  std::string tar = TarBuilder()
                        .File(".wh.gone", "")
                        .Dir("opaque")
                        .File("opaque/.wh..wh..opq", "")
                        .File("opaque/new", "n")
                        .File("deep/er/.wh.sub", "")
                        .Finish();
  absl::Status st = UnpackTar(tar);
  ASSERT_TRUE(st.ok()) << st;
  struct stat s;
  ASSERT_EQ(lstat(L("gone").c_str(), &s), 0);
  EXPECT_TRUE(S_ISCHR(s.st_mode));
  EXPECT_EQ(s.st_rdev, makedev(0, 0));
  ASSERT_EQ(lstat(L("deep/er/sub").c_str(), &s), 0);
  EXPECT_TRUE(S_ISCHR(s.st_mode));
  char value[8] = {};
  ASSERT_EQ(lgetxattr(L("opaque").c_str(), "user.overlay.opaque", value,
                      sizeof(value)),
            1);
  EXPECT_EQ(value[0], 'y');
  if (geteuid() == 0) {
    ASSERT_EQ(lgetxattr(L("opaque").c_str(), "trusted.overlay.opaque", value,
                        sizeof(value)),
              1);
  }
  // No OCI whiteout name is left.
  for (std::string dir : {L(""), L("opaque"), L("deep/er")}) {
    for (const std::string& n : List(dir)) {
      EXPECT_NE(n.rfind(".wh.", 0), 0u) << dir << "/" << n;
    }
  }
  ASSERT_EQ(lstat(L("opaque/new").c_str(), &s), 0);
}

struct Hostile {
  const char* name;
  std::string tar;
  const char* message;
  absl::StatusCode code = absl::StatusCode::kInvalidArgument;
};

TEST_F(LayerUnpackTest, HostileLayersAreRefusedAndLeaveNothing) {
  std::string out = outside_;
  std::vector<Hostile> cases = {
      {"dotdot", TarBuilder().File("../escape", "x").Finish(), "\"..\""},
      {"dotdot deep", TarBuilder().File("a/../../escape", "x").Finish(),
       "\"..\""},
      {"absolute", TarBuilder().File(out + "/abs", "x").Finish(),
       "absolute path"},
      {"absolute symlink, then through it",
       TarBuilder().Symlink("evil", out).File("evil/pwned", "x").Finish(),
       "goes through symlink \"evil\""},
      {"relative symlink out, then through it",
       TarBuilder()
           .Symlink("rel", "../../../../../../..")
           .File("rel/pwned", "x")
           .Finish(),
       "goes through symlink \"rel\""},
      {"symlink, then a directory through it",
       TarBuilder().Symlink("d", out).Dir("d/sub").Finish(),
       "goes through symlink"},
      {"character device", TarBuilder().Device("dev/null").Finish(),
       "character device"},
      {"block device", TarBuilder().Device("dev/sda", true).Finish(),
       "block device"},
      {"hardlink absolute", TarBuilder().Hardlink("h", "/etc/passwd").Finish(),
       "points outside the layer"},
      {"hardlink dotdot", TarBuilder().Hardlink("h", "../outside/x").Finish(),
       "points outside the layer"},
      {"hardlink to a lower layer's file",
       TarBuilder().Hardlink("h", "etc/shadow").Finish(),
       "not a file earlier in this layer"},
      {"hardlink to a directory",
       TarBuilder().Dir("d").Hardlink("h", "d").Finish(),
       "not a file earlier in this layer"},
      {"hardlink through a symlink",
       TarBuilder().Symlink("s", out).Hardlink("h", "s/x").Finish(),
       "not a file earlier in this layer"},
      {"aufs metadata", TarBuilder().File(".wh..wh.plnk", "").Finish(), "AUFS"},
      {"whiteout of its own entry",
       TarBuilder().File("a", "x").File(".wh.a", "").Finish(),
       "which the same layer creates"},
      {"entry below its own whiteout",
       TarBuilder().File(".wh.a", "").File("a/b", "x").Finish(),
       "goes through whiteout"},
      {"whiteout naming dotdot", TarBuilder().File(".wh...", "").Finish(),
       "names no entry"},
      {"duplicate file", TarBuilder().File("a", "x").File("a", "y").Finish(),
       "duplicate entry"},
  };
  for (const Hostile& c : cases) {
    SCOPED_TRACE(c.name);
    absl::Status st = UnpackTar(c.tar);
    ASSERT_FALSE(st.ok());
    EXPECT_EQ(st.code(), c.code) << st;
    EXPECT_NE(st.message().find(c.message), std::string::npos) << st;
    EXPECT_NE(st.message().find("layer sha256:"), std::string::npos) << st;
    EXPECT_TRUE(List(layers_).empty()) << "left behind: " << List(layers_)[0];
    EXPECT_TRUE(List(outside_).empty());
  }
}

TEST_F(LayerUnpackTest, SetuidRefusedWhenConfigured) {
  UnpackOptions options;
  options.limits.setuid = LayerLimits::Setuid::kRefuse;
  absl::Status st =
      UnpackTar(TarBuilder().File("bin/su", "x", 04755).Finish(), options);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("setuid"), std::string::npos) << st;
  EXPECT_TRUE(List(layers_).empty());
}

TEST_F(LayerUnpackTest, DigestMismatchesAreDataLoss) {
  std::string tar = TarBuilder().File("a", "content").Finish();
  std::string other = TarBuilder().File("a", "other").Finish();
  // The config's diff_id does not match the uncompressed stream.
  absl::Status st =
      Unpack(Gzip(tar), oci::kOciLayerGzip, cas::Digest::Of(other).ToString());
  EXPECT_EQ(st.code(), absl::StatusCode::kDataLoss) << st;
  EXPECT_NE(st.message().find("diff_id"), std::string::npos) << st;
  EXPECT_TRUE(List(layers_).empty());
  // The blob's bytes do not match the manifest's digest.
  st = Unpack(Gzip(tar), oci::kOciLayerGzip, cas::Digest::Of(tar).ToString(),
              UnpackOptions(), cas::Digest::Of("something else").ToString());
  EXPECT_EQ(st.code(), absl::StatusCode::kDataLoss) << st;
  EXPECT_NE(st.message().find("the manifest says"), std::string::npos) << st;
  EXPECT_TRUE(List(layers_).empty());
  // Not gzip although the media type says so.
  st = Unpack(tar, oci::kOciLayerGzip, cas::Digest::Of(tar).ToString());
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("not gzip"), std::string::npos) << st;
  EXPECT_TRUE(List(layers_).empty());
  // A layer media type kiln cannot read.
  st = Unpack(tar, "application/vnd.oci.image.layer.v1.tar+encrypted",
              cas::Digest::Of(tar).ToString());
  EXPECT_FALSE(st.ok());
  EXPECT_TRUE(List(layers_).empty());
}

TEST_F(LayerUnpackTest, TwoGiBZeroBombIsStoppedWhileStreaming) {
  for (std::string compression : {"gzip", "zstd"}) {
    SCOPED_TRACE(compression);
    std::string bomb = ZeroBomb(int64_t{2} << 30, compression);
    ASSERT_LT(bomb.size(), 8u << 20);  // megabytes that expand to 2 GiB
    absl::Status st = Unpack(
        bomb, compression == "gzip" ? oci::kOciLayerGzip : oci::kOciLayerZstd,
        cas::Digest::Of("not reached").ToString());
    EXPECT_EQ(st.code(), absl::StatusCode::kResourceExhausted) << st;
    EXPECT_TRUE(List(layers_).empty());
  }
}

TEST_F(LayerUnpackTest, ContentLimitRefusesABigLayer) {
  UnpackOptions options;
  options.limits.max_layer_bytes = 1000;
  absl::Status st = UnpackTar(
      TarBuilder().File("big", std::string(1001, 'x')).Finish(), options);
  EXPECT_EQ(st.code(), absl::StatusCode::kResourceExhausted) << st;
  EXPECT_TRUE(List(layers_).empty());
}

TEST_F(LayerUnpackTest, ALayerAlreadyThereIsKept) {
  std::string tar = TarBuilder().File("a", "first").Finish();
  ASSERT_TRUE(UnpackTar(tar).ok());
  ino_t before = 0;
  struct stat s;
  ASSERT_EQ(lstat(L("a").c_str(), &s), 0);
  before = s.st_ino;
  // A second unpacker of the same layer loses the rename: OK, nothing
  // replaced, nothing left behind.
  ASSERT_TRUE(UnpackTar(tar).ok());
  ASSERT_EQ(lstat(L("a").c_str(), &s), 0);
  EXPECT_EQ(s.st_ino, before);
  EXPECT_EQ(List(layers_), std::vector<std::string>{"L"});
}

}  // namespace
}  // namespace kiln::image
