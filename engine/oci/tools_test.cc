// Real consumers accept kiln's images: `umoci unpack --rootless` unpacks
// the layout (files, modes and config match) and `skopeo inspect` reads it.
#include <sys/stat.h>
#include <unistd.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "engine/cas/beneath.h"
#include "engine/oci/builder.h"
#include "engine/oci/layout.h"
#include "engine/oci/test_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace kiln::oci {
namespace {

using ::testing::HasSubstr;
using testing::OpenDir;
using testing::ReadFile;
using testing::RunCommand;
using testing::TempDir;
using testing::WriteFile;

class ToolsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = TempDir(
        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    // A busybox base (Debian's static busybox) and an app layer on top.
    std::string out;
    ASSERT_EQ(RunCommand(absl::StrCat("mkdir -p ", dir_, "/bb/bin && cp ",
                                      "/bin/busybox ", dir_, "/bb/bin/busybox"),
                         &out),
              0)
        << out;
    ASSERT_EQ(symlink("busybox", (dir_ + "/bb/bin/sh").c_str()), 0);
    WriteFile(dir_ + "/app/hello", "#!/bin/sh\necho hello\n", 0700);
    WriteFile(dir_ + "/app/data/config.txt", "key=value\n", 0600);
  }

  BuiltImage BuildTwoLayers(Compression c) {
    cas::UniqueFd bb(OpenDir(dir_ + "/bb")), app(OpenDir(dir_ + "/app"));
    BuildRequest req;
    req.layers.push_back({LayerSource{bb.get(), "bb", "/", -1, 0, 0}, "bb"});
    req.layers.push_back(
        {LayerSource{app.get(), "app", "/srv/app", -1, 1000, 1000}, "app"});
    req.entrypoint = {"/srv/app/hello"};
    req.cmd = {"--loud"};
    req.env = {{"PATH", "/bin"}, {"GREETING", "hi"}};
    req.workdir = "/srv/app";
    req.user = "1000";
    req.labels = {{"org.example.rev", "r1"}};
    req.exposed_ports = {"8080"};
    req.created_epoch = 86400;
    req.compression = c;
    cas::UniqueFd parent(OpenDir(dir_));
    absl::StatusOr<BuiltImage> img =
        BuildImage(req, parent.get(), absl::StrCat("layout", int(c)));
    EXPECT_TRUE(img.ok()) << img.status();
    return img.ok() ? *img : BuiltImage{};
  }

  std::string dir_;
};

TEST_F(ToolsTest, UmociUnpacksFilesModesAndConfig) {
  for (Compression c : {Compression::kGzip, Compression::kNone}) {
    SCOPED_TRACE(LayerMediaType(c));
    BuiltImage img = BuildTwoLayers(c);
    ASSERT_FALSE(img.manifest_digest.empty());
    std::string bundle = absl::StrCat(dir_, "/bundle", int(c));
    std::string out;
    ASSERT_EQ(RunCommand(absl::StrCat("umoci unpack --rootless --image ", dir_,
                                      "/layout", int(c), ":latest ", bundle),
                         &out),
              0)
        << out;
    std::string rootfs = bundle + "/rootfs";
    EXPECT_EQ(ReadFile(rootfs + "/bin/busybox"), ReadFile("/bin/busybox"));
    EXPECT_EQ(ReadFile(rootfs + "/srv/app/hello"), "#!/bin/sh\necho hello\n");
    EXPECT_EQ(ReadFile(rootfs + "/srv/app/data/config.txt"), "key=value\n");
    struct stat st;
    ASSERT_EQ(lstat((rootfs + "/srv/app/hello").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0755u);
    ASSERT_EQ(lstat((rootfs + "/srv/app/data/config.txt").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0644u);
    ASSERT_EQ(lstat((rootfs + "/bin/sh").c_str(), &st), 0);
    EXPECT_TRUE(S_ISLNK(st.st_mode));
    ASSERT_EQ(lstat((rootfs + "/srv/app").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0755u);
    EXPECT_EQ(st.st_mtime, 86400);
    // The runtime config umoci derived from the image config.
    nlohmann::json config = nlohmann::json::parse(
        ReadFile(bundle + "/config.json"), nullptr, false);
    ASSERT_TRUE(config.is_object());
    EXPECT_EQ(config["process"]["args"],
              nlohmann::json({"/srv/app/hello", "--loud"}));
    EXPECT_EQ(config["process"]["cwd"], "/srv/app");
    EXPECT_EQ(config["process"]["user"]["uid"], 1000);
    std::string env = config["process"]["env"].dump();
    EXPECT_THAT(env, HasSubstr("GREETING=hi"));
    EXPECT_EQ(config["annotations"]["org.example.rev"], "r1");
    // The busybox the image carries runs (a static binary).
    ASSERT_EQ(
        RunCommand(absl::StrCat(rootfs, "/bin/busybox echo from-image"), &out),
        0);
    EXPECT_EQ(out, "from-image\n");
  }
}

TEST_F(ToolsTest, SkopeoInspectsTheLayout) {
  BuiltImage img = BuildTwoLayers(Compression::kGzip);
  ASSERT_FALSE(img.manifest_digest.empty());
  std::string out;
  ASSERT_EQ(
      RunCommand(absl::StrCat("skopeo inspect oci:", dir_, "/layout0:latest"),
                 &out),
      0)
      << out;
  nlohmann::json j = nlohmann::json::parse(out, nullptr, false);
  ASSERT_TRUE(j.is_object()) << out;
  EXPECT_EQ(j["Digest"], img.manifest_digest);
  EXPECT_EQ(j["Os"], "linux");
  EXPECT_EQ(j["Architecture"], "amd64");
  EXPECT_EQ(j["Layers"].size(), 2u);
  EXPECT_EQ(j["Labels"]["org.example.rev"], "r1");
  EXPECT_THAT(j["Env"].dump(), HasSubstr("GREETING=hi"));
  // The raw manifest skopeo reads is byte-for-byte kiln's.
  ASSERT_EQ(RunCommand(absl::StrCat("skopeo inspect --raw oci:", dir_,
                                    "/layout0:latest"),
                       &out),
            0)
      << out;
  EXPECT_EQ(out, ReadFile(absl::StrCat(dir_, "/layout0/blobs/sha256/",
                                       img.manifest_digest.substr(7))));
  // skopeo copies it (verifying every blob) into a fresh layout.
  ASSERT_EQ(RunCommand(absl::StrCat("skopeo copy oci:", dir_,
                                    "/layout0:latest oci:", dir_, "/copy:x"),
                       &out),
            0)
      << out;
}

}  // namespace
}  // namespace kiln::oci
