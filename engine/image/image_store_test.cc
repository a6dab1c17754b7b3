// The image store: pins tags to digests, pulls each blob once (verified),
// unpacks each layer once per diff_id (also under concurrent prepares, in
// one process and across two), and fails clearly.
#include "engine/image/image_store.h"

#include <dirent.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "engine/cas/digest.h"
#include "engine/cas/file_io.h"
#include "engine/image/testing/memory_registry.h"
#include "engine/oci/spec.h"
#include "gtest/gtest.h"

namespace kiln::image {
namespace {

using testing::BuiltLayer;
using testing::MemoryRegistry;
using testing::TarBuilder;

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

std::string Slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

oci::Platform Amd64() { return *oci::Platform::Parse("linux/amd64"); }

class ImageStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = absl::StrCat(getenv("TEST_TMPDIR"), "/is-", cas::RandomSuffix());
    registry_ = std::make_shared<MemoryRegistry>();
    base_ = registry_->AddLayer(TarBuilder()
                                    .Dir("etc")
                                    .File("etc/os-release", "ID=test\n")
                                    .File("etc/old", "old")
                                    .Dir("bin")
                                    .File("bin/sh", "#!", 0755)
                                    .Finish());
    top_ = registry_->AddLayer(TarBuilder()
                                   .File("etc/.wh.old", "")
                                   .File("app/run", "app", 0755)
                                   .Finish(),
                               "zstd");
    oci::ImageConfig config;
    config.env = {"PATH=/bin", "APP=1"};
    config.working_dir = "/app";
    config.user = "1000:1000";
    app1_ = registry_->AddImage("reg.test/app", {base_, top_}, config, "1");
  }
  void TearDown() override { ASSERT_TRUE(cas::RemoveTree(root_).ok()); }

  std::unique_ptr<ImageStore> Store(bool with_sources = true) {
    ImageStoreOptions options;
    options.dir = root_ + "/images";
    if (with_sources) options.sources = registry_;
    options.platform = Amd64();
    auto store = ImageStore::Open(options);
    EXPECT_TRUE(store.ok()) << store.status();
    return std::move(*store);
  }

  std::string root_;
  std::shared_ptr<MemoryRegistry> registry_;
  BuiltLayer base_, top_;
  std::string app1_;
};

TEST_F(ImageStoreTest, PinsATagToItsManifestDigestAndKeepsADigest) {
  auto store = Store();
  absl::StatusOr<std::string> pinned = store->Pin("reg.test/app:1");
  ASSERT_TRUE(pinned.ok()) << pinned.status();
  EXPECT_EQ(*pinned, "reg.test/app@" + app1_);
  pinned = store->Pin("reg.test/app@" + app1_);
  ASSERT_TRUE(pinned.ok()) << pinned.status();
  EXPECT_EQ(*pinned, "reg.test/app@" + app1_);
  // A multi-platform tag pins to the platform's manifest.
  std::string arm =
      registry_->AddImage("reg.test/app", {base_}, oci::ImageConfig());
  registry_->AddIndex(
      "reg.test/app",
      {{*oci::Platform::Parse("linux/arm64"), arm}, {Amd64(), app1_}}, "multi");
  pinned = store->Pin("reg.test/app:multi");
  ASSERT_TRUE(pinned.ok()) << pinned.status();
  EXPECT_EQ(*pinned, "reg.test/app@" + app1_);
  pinned =
      store->Pin("reg.test/app:multi", *oci::Platform::Parse("linux/arm64"));
  ASSERT_TRUE(pinned.ok()) << pinned.status();
  EXPECT_EQ(*pinned, "reg.test/app@" + arm);
}

TEST_F(ImageStoreTest, PinFailuresNameTheReference) {
  auto store = Store();
  absl::StatusOr<std::string> pinned = store->Pin("reg.test/app:nope");
  ASSERT_FALSE(pinned.ok());
  EXPECT_EQ(pinned.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(pinned.status().message().find("image 'reg.test/app:nope'"),
            std::string::npos)
      << pinned.status();
  // Without registry access a tag cannot be pinned; a digest can.
  auto offline = Store(/*with_sources=*/false);
  pinned = offline->Pin("reg.test/app:1");
  ASSERT_FALSE(pinned.ok());
  EXPECT_EQ(pinned.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(pinned.status().message().find("no registry access"),
            std::string::npos)
      << pinned.status();
  pinned = offline->Pin("reg.test/app@" + app1_);
  ASSERT_TRUE(pinned.ok()) << pinned.status();
}

TEST_F(ImageStoreTest, PreparesLayersBottomFirstInOverlayFormWithTheConfig) {
  auto store = Store();
  std::string ref = "reg.test/app@" + app1_;
  absl::StatusOr<PreparedImage> image = store->Prepare(ref);
  ASSERT_TRUE(image.ok()) << image.status();
  EXPECT_EQ(image->reference, ref);
  ASSERT_EQ(image->layer_dirs.size(), 2u);
  EXPECT_EQ(image->layer_dirs[0], store->LayerDir(base_.diff_id));
  EXPECT_EQ(image->layer_dirs[1], store->LayerDir(top_.diff_id));
  EXPECT_EQ(Slurp(image->layer_dirs[0] + "/etc/os-release"), "ID=test\n");
  EXPECT_EQ(Slurp(image->layer_dirs[1] + "/app/run"), "app");
  struct stat st;
  ASSERT_EQ(lstat((image->layer_dirs[1] + "/etc/old").c_str(), &st), 0);
  EXPECT_TRUE(S_ISCHR(st.st_mode));  // the whiteout
  EXPECT_EQ(image->env, (std::vector<std::string>{"PATH=/bin", "APP=1"}));
  EXPECT_EQ(image->workdir, "/app");
  EXPECT_EQ(image->user, "1000:1000");
  // A tag is refused: images are pinned before the key.
  absl::StatusOr<PreparedImage> tagged = store->Prepare("reg.test/app:1");
  ASSERT_FALSE(tagged.ok());
  EXPECT_EQ(tagged.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(tagged.status().message().find("not pinned"), std::string::npos);
}

TEST_F(ImageStoreTest, EachBlobIsPulledOnceAndLayersAreShared) {
  auto store = Store();
  ASSERT_TRUE(store->Prepare("reg.test/app@" + app1_).ok());
  // A second image on the same base layer.
  BuiltLayer other = registry_->AddLayer(TarBuilder().File("o", "o").Finish());
  std::string app2 =
      registry_->AddImage("reg.test/app", {base_, other}, oci::ImageConfig());
  absl::StatusOr<PreparedImage> two = store->Prepare("reg.test/app@" + app2);
  ASSERT_TRUE(two.ok()) << two.status();
  EXPECT_EQ(registry_->Fetches(base_.descriptor.digest), 1);
  EXPECT_EQ(registry_->Fetches(other.descriptor.digest), 1);
  ASSERT_TRUE(store->Prepare("reg.test/app@" + app1_).ok());
  EXPECT_EQ(registry_->Fetches(base_.descriptor.digest), 1);
  EXPECT_EQ(registry_->Fetches(top_.descriptor.digest), 1);
  // Everything is in the store now: it prepares without a registry, and
  // only the unpacked layers are kept (no compressed blobs, no temps).
  auto offline = Store(/*with_sources=*/false);
  absl::StatusOr<PreparedImage> again =
      offline->Prepare("reg.test/app@" + app1_);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(List(root_ + "/images/layers").size(), 3u);
  EXPECT_TRUE(List(root_ + "/images/tmp").empty());
}

TEST_F(ImageStoreTest, AnIndexDigestIsNarrowedToThePlatform) {
  std::string arm =
      registry_->AddImage("reg.test/app", {base_}, oci::ImageConfig());
  std::string index = registry_->AddIndex(
      "reg.test/app",
      {{*oci::Platform::Parse("linux/arm64"), arm}, {Amd64(), app1_}});
  auto store = Store();
  absl::StatusOr<PreparedImage> image = store->Prepare("reg.test/app@" + index);
  ASSERT_TRUE(image.ok()) << image.status();
  EXPECT_EQ(image->layer_dirs.size(), 2u);
}

TEST_F(ImageStoreTest, WithoutRegistryAccessAMissingImageFailsClearly) {
  auto offline = Store(/*with_sources=*/false);
  absl::StatusOr<PreparedImage> image =
      offline->Prepare("reg.test/app@" + app1_);
  ASSERT_FALSE(image.ok());
  EXPECT_EQ(image.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(image.status().message().find("no registry access"),
            std::string::npos)
      << image.status();
}

TEST_F(ImageStoreTest, LyingRegistryIsCaught) {
  // A manifest whose bytes do not match its digest.
  {
    std::string fake = registry_->AddImage("reg.test/app", {base_},
                                           oci::ImageConfig(), "fake");
    // Serves another (valid) manifest under this digest.
    std::string other =
        registry_->AddImage("reg.test/app", {top_}, oci::ImageConfig());
    auto src = registry_->Open("reg.test/app@" + other);
    ASSERT_TRUE(src.ok());
    registry_->Corrupt(fake, (*src->source->GetManifest(other)).bytes);
    auto store = Store();
    absl::StatusOr<PreparedImage> image =
        store->Prepare("reg.test/app@" + fake);
    ASSERT_FALSE(image.ok());
    EXPECT_EQ(image.status().code(), absl::StatusCode::kDataLoss)
        << image.status();
    absl::StatusOr<std::string> pinned = store->Pin("reg.test/app:fake");
    ASSERT_FALSE(pinned.ok());
    EXPECT_EQ(pinned.status().code(), absl::StatusCode::kDataLoss)
        << pinned.status();
  }
  // A layer blob whose bytes do not match its digest (and the diff_id).
  {
    BuiltLayer bad = registry_->AddLayer(TarBuilder().File("x", "1").Finish());
    std::string img =
        registry_->AddImage("reg.test/bad", {bad}, oci::ImageConfig());
    registry_->Corrupt(bad.descriptor.digest,
                       testing::Gzip(TarBuilder().File("x", "2").Finish()));
    auto store = Store();
    absl::StatusOr<PreparedImage> image = store->Prepare("reg.test/bad@" + img);
    ASSERT_FALSE(image.ok());
    EXPECT_EQ(image.status().code(), absl::StatusCode::kDataLoss)
        << image.status();
    EXPECT_NE(image.status().message().find("image 'reg.test/bad@"),
              std::string::npos)
        << image.status();
    // Nothing unpacked, nothing half-done left.
    EXPECT_TRUE(List(root_ + "/images/layers").empty());
  }
  // A config whose bytes do not match its digest.
  {
    oci::ImageConfig c;
    c.user = "7";
    std::string img = registry_->AddImage("reg.test/cfg", {base_}, c);
    absl::StatusOr<oci::Manifest> m = oci::ParseManifest([&] {
      auto src = registry_->Open("reg.test/cfg@" + img);
      return (*src->source->GetManifest(img)).bytes;
    }());
    ASSERT_TRUE(m.ok());
    registry_->Corrupt(m->config.digest, "{\"config\":{\"User\":\"0\"}}");
    auto store = Store();
    absl::StatusOr<PreparedImage> image = store->Prepare("reg.test/cfg@" + img);
    ASSERT_FALSE(image.ok());
    EXPECT_EQ(image.status().code(), absl::StatusCode::kDataLoss)
        << image.status();
  }
}

TEST_F(ImageStoreTest, HostileLayerFailsThePrepareNamingImageAndLayer) {
  BuiltLayer evil = registry_->AddLayer(TarBuilder()
                                            .Symlink("x", "/")
                                            .File("x/etc/cron.d/own", "* * *")
                                            .Finish());
  std::string img =
      registry_->AddImage("reg.test/evil", {base_, evil}, oci::ImageConfig());
  auto store = Store();
  absl::StatusOr<PreparedImage> image = store->Prepare("reg.test/evil@" + img);
  ASSERT_FALSE(image.ok());
  EXPECT_EQ(image.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(image.status().message().find(evil.descriptor.digest),
            std::string::npos)
      << image.status();
  EXPECT_NE(image.status().message().find("goes through symlink"),
            std::string::npos)
      << image.status();
  // The good base layer stays cached; the hostile one left nothing.
  EXPECT_EQ(List(root_ + "/images/layers"),
            std::vector<std::string>{base_.diff_id.substr(7)});
}

TEST_F(ImageStoreTest, ConcurrentPreparesInOneProcessPullOnce) {
  auto store = Store();
  std::string ref = "reg.test/app@" + app1_;
  registry_->Hold(base_.descriptor.digest);
  constexpr int kThreads = 8;
  std::vector<absl::StatusOr<PreparedImage>> results(
      kThreads, absl::UnknownError("not run"));
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] { results[i] = store->Prepare(ref); });
  }
  registry_->AwaitBlocked();
  registry_->Release();
  for (std::thread& t : threads) t.join();
  for (const auto& r : results) {
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->layer_dirs, results[0]->layer_dirs);
  }
  EXPECT_EQ(registry_->Fetches(base_.descriptor.digest), 1);
  EXPECT_EQ(registry_->Fetches(top_.descriptor.digest), 1);
}

TEST_F(ImageStoreTest, TwoStoresOnOneDirectoryRaceSafely) {
  // Two processes sharing a store: the first unpacker's rename wins, the
  // other discards its copy and uses the winner's.
  auto first = Store();
  auto second = Store();
  std::string ref = "reg.test/app@" + app1_;
  registry_->Hold(base_.descriptor.digest);
  absl::StatusOr<PreparedImage> slow = absl::UnknownError("not run");
  std::thread t([&] { slow = first->Prepare(ref); });
  registry_->AwaitBlocked();
  absl::StatusOr<PreparedImage> fast = second->Prepare(ref);
  ASSERT_TRUE(fast.ok()) << fast.status();
  struct stat before;
  ASSERT_EQ(lstat((fast->layer_dirs[0] + "/etc/os-release").c_str(), &before),
            0);
  registry_->Release();
  t.join();
  ASSERT_TRUE(slow.ok()) << slow.status();
  EXPECT_EQ(slow->layer_dirs, fast->layer_dirs);
  EXPECT_EQ(registry_->Fetches(base_.descriptor.digest), 2);
  struct stat after;
  ASSERT_EQ(lstat((fast->layer_dirs[0] + "/etc/os-release").c_str(), &after),
            0);
  EXPECT_EQ(before.st_ino, after.st_ino);  // never replaced under a reader
  std::vector<std::string> want = {base_.diff_id.substr(7),
                                   top_.diff_id.substr(7)};
  std::sort(want.begin(), want.end());
  EXPECT_EQ(List(root_ + "/images/layers"), want);
}

}  // namespace
}  // namespace kiln::image
