#include "engine/oci/builder.h"

#include <libdeflate.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/cas/beneath.h"
#include "engine/cas/digest.h"
#include "engine/oci/layout.h"
#include "engine/oci/test_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace kiln::oci {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing::OpenDir;
using testing::ReadFile;
using testing::TempDir;
using testing::WriteFile;

struct Entry {
  std::string path;
  std::string content;  // "->target" for a symlink, "/" for a directory
  mode_t mode = 0644;
};

std::vector<Entry> SampleTree() {
  return {
      {"bin/app", "#!/bin/sh\necho app\n", 0755},
      {"etc/app.conf", "port=8080\n", 0600},
      {"etc/empty", "/"},
      {"lib/libx.so", std::string(300000, 'x') + "tail", 0644},
      {"lib/libx.so.1", "->libx.so"},
      {std::string(120, 'd') + "/" + std::string(90, 'f'), "long path", 0644},
      {"share/doc/README", "hello\n", 0444},
      {"z-last", "", 0644},
  };
}

// Creates `entries` below dir in the given order, with the given umask and
// each entry's mtime set to a pseudo-random time.
void MakeTree(const std::string& dir, std::vector<Entry> entries, bool reverse,
              mode_t mask, unsigned seed) {
  if (reverse) std::reverse(entries.begin(), entries.end());
  mode_t old = umask(mask);
  std::mt19937 rng(seed);
  for (const Entry& e : entries) {
    std::string path = absl::StrCat(dir, "/", e.path);
    std::filesystem::create_directories(
        std::filesystem::path(path).parent_path());
    if (e.content == "/") {
      std::filesystem::create_directories(path);
    } else if (e.content.rfind("->", 0) == 0) {
      ASSERT_EQ(symlink(e.content.substr(2).c_str(), path.c_str()), 0);
    } else {
      { std::ofstream(path, std::ios::binary) << e.content; }
      // Owner bits as given; group/other bits as the umask leaves them.
      ASSERT_EQ(chmod(path.c_str(), e.mode & ~mask & 0777), 0);
    }
    struct timespec times[2];
    times[0].tv_sec = times[1].tv_sec = 1000000 + rng() % 100000000;
    times[0].tv_nsec = times[1].tv_nsec = rng() % 1000000000;
    ASSERT_EQ(utimensat(AT_FDCWD, path.c_str(), times, AT_SYMLINK_NOFOLLOW), 0);
  }
  umask(old);
}

BuildRequest Request(int root_fd, Compression c, int workers) {
  BuildRequest req;
  BuildLayer layer;
  layer.source.root_fd = root_fd;
  layer.source.display = "tree";
  layer.source.to = "/opt/app";
  layer.created_by = "test layer";
  req.layers.push_back(layer);
  req.entrypoint = {"/opt/app/bin/app"};
  req.cmd = {"--serve"};
  req.env = {{"PATH", "/opt/app/bin:/bin"}, {"MODE", "prod"}};
  req.labels = {{"org.opencontainers.image.revision", "abc"}};
  req.exposed_ports = {"8080", "53/udp"};
  req.workdir = "/opt/app";
  req.user = "1000:1000";
  req.created_epoch = 1700000000;
  req.compression = c;
  req.workers = workers;
  return req;
}

absl::StatusOr<BuiltImage> Build(const BuildRequest& req,
                                 const std::string& parent,
                                 const std::string& name) {
  cas::UniqueFd dir(OpenDir(parent));
  return BuildImage(req, dir.get(), name);
}

std::string Blob(const std::string& layout, const std::string& digest) {
  return ReadFile(absl::StrCat(layout, "/blobs/sha256/", digest.substr(7)));
}

// Decompresses a multi-member gzip stream.
std::string Gunzip(const std::string& in) {
  libdeflate_decompressor* d = libdeflate_alloc_decompressor();
  std::string out, buf(8 << 20, '\0');
  size_t pos = 0;
  while (pos < in.size()) {
    size_t used = 0, produced = 0;
    if (libdeflate_gzip_decompress_ex(d, in.data() + pos, in.size() - pos,
                                      buf.data(), buf.size(), &used,
                                      &produced) != LIBDEFLATE_SUCCESS) {
      ADD_FAILURE() << "corrupt gzip member at " << pos;
      break;
    }
    out.append(buf.data(), produced);
    pos += used;
  }
  libdeflate_free_decompressor(d);
  return out;
}

// Same inputs -> the same manifest digest, whatever the umask, TZ, mtimes,
// creation order, workers, or the directory the layout is written to.
TEST(BuilderTest, ReproducibleAcrossUmaskTzMtimesOrderAndWorkers) {
  std::string base = TempDir("repro");
  MakeTree(base + "/a", SampleTree(), /*reverse=*/false, 022, 1);
  MakeTree(base + "/b", SampleTree(), /*reverse=*/true, 077, 2);
  cas::UniqueFd a(OpenDir(base + "/a")), b(OpenDir(base + "/b"));
  std::string tar_diff_id;
  for (Compression c :
       {Compression::kGzip, Compression::kZstd, Compression::kNone}) {
    SCOPED_TRACE(LayerMediaType(c));
    setenv("TZ", "UTC", 1);
    tzset();
    mode_t old = umask(022);
    absl::StatusOr<BuiltImage> first =
        Build(Request(a.get(), c, 1), base, absl::StrCat("out-a-", int(c)));
    ASSERT_TRUE(first.ok()) << first.status();
    setenv("TZ", "Pacific/Chatham", 1);
    tzset();
    umask(077);
    absl::StatusOr<BuiltImage> second =
        Build(Request(b.get(), c, 4), base, absl::StrCat("out-b-", int(c)));
    umask(old);
    unsetenv("TZ");
    tzset();
    ASSERT_TRUE(second.ok()) << second.status();
    EXPECT_EQ(first->manifest_digest, second->manifest_digest);
    // Every build saw the whole tree, though the same fds are used for
    // each compression (a walked fd must not yield an empty layer).
    // The uncompressed tar (diff_id) is the same whatever the compression.
    if (tar_diff_id.empty()) tar_diff_id = first->config.diff_ids.at(0);
    EXPECT_EQ(first->config.diff_ids.at(0), tar_diff_id);
    EXPECT_EQ(first->config.diff_ids, second->config.diff_ids);
    // The files of both layouts are byte-identical (and so is the artifact).
    EXPECT_EQ(ReadFile(absl::StrCat(base, "/out-a-", int(c), "/index.json")),
              ReadFile(absl::StrCat(base, "/out-b-", int(c), "/index.json")));
    struct stat st;
    ASSERT_EQ(stat(absl::StrCat(base, "/out-b-", int(c), "/blobs/sha256/",
                                first->manifest_digest.substr(7))
                       .c_str(),
                   &st),
              0);
    EXPECT_EQ(st.st_mode & 0777, 0644u);
  }
}

TEST(BuilderTest, ManifestConfigAndLayerFollowTheSpec) {
  std::string base = TempDir("spec");
  MakeTree(base + "/t", SampleTree(), false, 022, 3);
  cas::UniqueFd t(OpenDir(base + "/t"));
  BuildRequest req = Request(t.get(), Compression::kGzip, 2);
  req.layers[0].source.uid = 1000;
  req.layers[0].source.gid = 2000;
  absl::StatusOr<BuiltImage> img = Build(req, base, "out");
  ASSERT_TRUE(img.ok()) << img.status();
  std::string layout = base + "/out";
  EXPECT_EQ(ReadFile(layout + "/oci-layout"),
            "{\"imageLayoutVersion\":\"1.0.0\"}");
  nlohmann::json index =
      nlohmann::json::parse(ReadFile(layout + "/index.json"));
  ASSERT_EQ(index["manifests"].size(), 1u);
  EXPECT_EQ(index["manifests"][0]["digest"], img->manifest_digest);
  EXPECT_EQ(index["manifests"][0]["annotations"][kRefNameAnnotation], "latest");
  std::string manifest_bytes = Blob(layout, img->manifest_digest);
  EXPECT_EQ(cas::Digest::Of(manifest_bytes).ToString(), img->manifest_digest);
  nlohmann::json m = nlohmann::json::parse(manifest_bytes);
  EXPECT_EQ(m["mediaType"], kOciManifest);
  EXPECT_EQ(m["config"]["mediaType"], kOciConfig);
  ASSERT_EQ(m["layers"].size(), 1u);
  EXPECT_EQ(m["layers"][0]["mediaType"], kOciLayerGzip);
  nlohmann::json c = nlohmann::json::parse(Blob(layout, m["config"]["digest"]));
  EXPECT_EQ(c["created"], "2023-11-14T22:13:20Z");
  EXPECT_EQ(c["os"], "linux");
  EXPECT_EQ(c["architecture"], "amd64");
  EXPECT_EQ(c["config"]["Entrypoint"], nlohmann::json({"/opt/app/bin/app"}));
  EXPECT_EQ(c["config"]["Cmd"], nlohmann::json({"--serve"}));
  EXPECT_EQ(c["config"]["Env"],
            nlohmann::json({"PATH=/opt/app/bin:/bin", "MODE=prod"}));
  EXPECT_EQ(c["config"]["User"], "1000:1000");
  EXPECT_EQ(c["config"]["WorkingDir"], "/opt/app");
  EXPECT_TRUE(c["config"]["ExposedPorts"].contains("8080/tcp"));
  EXPECT_TRUE(c["config"]["ExposedPorts"].contains("53/udp"));
  ASSERT_EQ(c["history"].size(), 1u);
  EXPECT_EQ(c["history"][0]["created_by"], "test layer");
  // diff_id is the digest of the uncompressed tar; the blob is gzip.
  std::string blob = Blob(layout, m["layers"][0]["digest"]);
  EXPECT_EQ(static_cast<int64_t>(blob.size()), m["layers"][0]["size"]);
  std::string tar = Gunzip(blob);
  EXPECT_EQ(cas::Digest::Of(tar).ToString(), c["rootfs"]["diff_ids"][0]);
  // The tar as GNU tar lists it: parents root-owned, then the tree with the
  // layer's owner, fixed mtime, normalized modes, sorted.
  WriteFile(base + "/layer.tar", tar);
  std::string listing;
  ASSERT_EQ(testing::RunCommand(
                absl::StrCat("TZ=UTC tar --numeric-owner --full-time -tvf ",
                             base, "/layer.tar"),
                &listing),
            0)
      << listing;
  EXPECT_THAT(listing, HasSubstr("drwxr-xr-x 0/0               0 "
                                 "2023-11-14 22:13:20 opt/\n"));
  EXPECT_THAT(listing, HasSubstr("drwxr-xr-x 1000/2000         0 "
                                 "2023-11-14 22:13:20 opt/app/\n"));
  EXPECT_THAT(listing, HasSubstr("-rwxr-xr-x 1000/2000        19 "
                                 "2023-11-14 22:13:20 opt/app/bin/app\n"));
  EXPECT_THAT(listing, HasSubstr("-rw-r--r-- 1000/2000        10 "
                                 "2023-11-14 22:13:20 opt/app/etc/app.conf\n"));
  EXPECT_THAT(listing, HasSubstr("opt/app/lib/libx.so.1 -> libx.so\n"));
  EXPECT_THAT(listing, HasSubstr(std::string(90, 'f')));
  EXPECT_LT(listing.find("opt/app/bin/app"), listing.find("opt/app/z-last"));
}

TEST(BuilderTest, FileModeOverrideAndScratchWithoutLayers) {
  std::string base = TempDir("mode");
  MakeTree(base + "/t", SampleTree(), false, 022, 4);
  cas::UniqueFd t(OpenDir(base + "/t"));
  BuildRequest req = Request(t.get(), Compression::kNone, 1);
  req.layers[0].source.file_mode = 0750;
  absl::StatusOr<BuiltImage> img = Build(req, base, "out");
  ASSERT_TRUE(img.ok()) << img.status();
  WriteFile(base + "/layer.tar",
            Blob(base + "/out", img->manifest.layers[0].digest));
  std::string listing;
  ASSERT_EQ(testing::RunCommand(
                absl::StrCat("tar --numeric-owner -tvf ", base, "/layer.tar"),
                &listing),
            0);
  EXPECT_THAT(listing, HasSubstr("-rwxr-x--- 0/0"));
  EXPECT_THAT(listing, ::testing::Not(HasSubstr("-rw-r--r--")));

  BuildRequest empty;
  empty.cmd = {"true"};
  absl::StatusOr<BuiltImage> bare = Build(empty, base, "bare");
  ASSERT_TRUE(bare.ok()) << bare.status();
  EXPECT_TRUE(bare->manifest.layers.empty());
  ASSERT_EQ(bare->config.history.size(), 1u);
  EXPECT_TRUE(bare->config.history[0].empty_layer);
}

TEST(BuilderTest, BuildsOnABaseLayout) {
  std::string base = TempDir("onbase");
  WriteFile(base + "/b/bin/sh", "a shell", 0755);
  WriteFile(base + "/c/app", "the app", 0755);
  cas::UniqueFd b(OpenDir(base + "/b")), c(OpenDir(base + "/c"));
  BuildRequest breq;
  breq.layers.push_back({LayerSource{b.get(), "b", "/", -1, 0, 0}, "base"});
  breq.env = {{"PATH", "/bin"}, {"LANG", "C"}};
  breq.entrypoint = {"/bin/sh"};
  breq.cmd = {"-c", "true"};
  breq.labels = {{"base", "yes"}};
  absl::StatusOr<BuiltImage> base_img = Build(breq, base, "base");
  ASSERT_TRUE(base_img.ok()) << base_img.status();

  cas::UniqueFd layout_fd(OpenDir(base + "/base"));
  absl::StatusOr<std::unique_ptr<LayoutSource>> src =
      LayoutSource::Open(layout_fd.get(), "base");
  ASSERT_TRUE(src.ok()) << src.status();
  BuildRequest req;
  req.base = src->get();
  req.base_digest = base_img->manifest_digest;
  req.base_name = "oci-layout:base";
  req.layers.push_back({LayerSource{c.get(), "c", "/srv", -1, 0, 0}, "app"});
  req.env = {{"PATH", "/srv:/bin"}};
  req.entrypoint = {"/srv/app"};  // clears the base's cmd
  req.labels = {{"app", "yes"}};
  absl::StatusOr<BuiltImage> img = Build(req, base, "child");
  ASSERT_TRUE(img.ok()) << img.status();
  ASSERT_EQ(img->manifest.layers.size(), 2u);
  EXPECT_EQ(img->manifest.layers[0].digest,
            base_img->manifest.layers[0].digest);
  EXPECT_EQ(img->config.diff_ids[0], base_img->config.diff_ids[0]);
  EXPECT_THAT(img->config.env, ElementsAre("PATH=/srv:/bin", "LANG=C"));
  EXPECT_THAT(img->config.entrypoint, ElementsAre("/srv/app"));
  EXPECT_TRUE(img->config.cmd.empty());
  EXPECT_EQ(img->config.labels.size(), 2u);
  EXPECT_EQ(img->config.history.size(), 2u);
  EXPECT_EQ(
      img->manifest.annotations.at("org.opencontainers.image.base.digest"),
      base_img->manifest_digest);
  // The base's layer blob was copied into the child layout.
  EXPECT_EQ(Blob(base + "/child", img->manifest.layers[0].digest),
            Blob(base + "/base", img->manifest.layers[0].digest));

  // A base for another platform is refused, naming both.
  BuildRequest arm = req;
  arm.platform = Platform{"linux", "arm64", ""};
  absl::StatusOr<BuiltImage> refused = Build(arm, base, "arm");
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(refused.status().message(), HasSubstr("linux/amd64"));
  EXPECT_THAT(refused.status().message(), HasSubstr("linux/arm64"));
}

TEST(BuilderTest, RefusesDevicesAndBadPorts) {
  std::string base = TempDir("refuse");
  WriteFile(base + "/t/ok", "x");
  ASSERT_EQ(mkfifo((base + "/t/fifo").c_str(), 0644), 0);
  cas::UniqueFd t(OpenDir(base + "/t"));
  BuildRequest req;
  req.layers.push_back({LayerSource{t.get(), "t", "/", -1, 0, 0}, "t"});
  absl::StatusOr<BuiltImage> img = Build(req, base, "out");
  ASSERT_FALSE(img.ok());
  EXPECT_THAT(img.status().message(), HasSubstr("fifo"));

  BuildRequest ports;
  ports.exposed_ports = {"80/icmp"};
  EXPECT_EQ(Build(ports, base, "ports").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(NormalizePort("8080").value(), "8080/tcp");
  EXPECT_FALSE(NormalizePort("0").ok());
  EXPECT_FALSE(NormalizePort("70000").ok());
  EXPECT_FALSE(NormalizeImagePath("/a/../b").ok());
  EXPECT_FALSE(NormalizeImagePath("rel").ok());
  EXPECT_EQ(NormalizeImagePath("//a//b/").value(), "a/b");
}

}  // namespace
}  // namespace kiln::oci
