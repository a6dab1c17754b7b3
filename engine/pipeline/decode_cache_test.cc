// LoadOptions::decode_cache_dir: a rerun of an unchanged file is not decoded
// again, and nothing else about the load changes: the same pipeline, the
// same validation (run again), the same diagnostics at the same positions,
// the same limits; a damaged entry is decoded again.
#include <dirent.h>
#include <sys/stat.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/pipeline/loader.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kiln::pipeline {
namespace {

using ::testing::HasSubstr;

constexpr char kPipeline[] = R"(name: demo
tasks:
  - name: build
    run: {image: host, command: [make]}
  - name: test
    needs: [build]
    run:
      image: alpine:3.19
      command: [make, test]
)";

class DecodeCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = absl::StrCat(
        std::getenv("TEST_TMPDIR"), "/",
        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    ASSERT_EQ(
        system(("rm -rf '" + dir_ + "' && mkdir -p '" + dir_ + "'").c_str()),
        0);
    cache_ = dir_ + "/cache";
    path_ = Write("pipeline.yaml", kPipeline);
  }

  std::string Write(const std::string& name, const std::string& text) {
    std::string path = dir_ + "/" + name;
    std::ofstream(path, std::ios::trunc) << text;
    return path;
  }

  LoadOptions no_images_cached() const {
    LoadOptions o = Cached();
    o.images_supported = false;
    return o;
  }

  LoadOptions Cached() const {
    LoadOptions o = LoadOptions::LocalFile();
    o.decode_cache_dir = cache_;
    return o;
  }

  // The cache's entries (not a writer's temporary files).
  std::vector<std::string> Entries() const {
    std::vector<std::string> out;
    DIR* d = opendir(cache_.c_str());
    if (d == nullptr) return out;
    while (dirent* e = readdir(d)) {
      std::string name = e->d_name;
      if (name[0] != '.') out.push_back(cache_ + "/" + name);
    }
    closedir(d);
    return out;
  }

  static std::string Read(const std::string& path) {
    std::ifstream in(path);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }

  std::string dir_, cache_, path_;
  v1::Pipeline plain_other_;  // no pipeline a proof covers
};

// A load decoded the YAML iff it recorded source positions: a hit's map
// computes them only when a diagnostic asks. It says so (from_cache).
bool Decoded(const LoadedPipeline& p) {
  EXPECT_EQ(p.from_cache, p.source_map->size() == 0);
  return p.source_map->size() > 0;
}

TEST_F(DecodeCacheTest, ASecondLoadIsReadFromTheCacheWithTheSameResult) {
  LoadedPipeline first = LoadPipelineFile(path_, Cached());
  ASSERT_TRUE(first.ok()) << JoinDiagnostics(first.errors);
  EXPECT_TRUE(Decoded(first));
  ASSERT_EQ(Entries().size(), 1u) << "no entry (does the test binary have a "
                                     "GNU build id?)";

  LoadedPipeline second = LoadPipelineFile(path_, Cached());
  ASSERT_TRUE(second.ok()) << JoinDiagnostics(second.errors);
  EXPECT_FALSE(Decoded(second));
  EXPECT_EQ(second.pipeline.DebugString(), first.pipeline.DebugString());
  EXPECT_EQ(second.file, first.file);
  EXPECT_EQ(second.base_dir, first.base_dir);
  // Validated clean before, with the same capabilities: the hit carries
  // the proof without validating again.
  ASSERT_NE(second.validation, nullptr);
  EXPECT_TRUE(second.validation->Covers(second.pipeline));
  EXPECT_FALSE(second.validation->Covers(plain_other_));

  // Positions come from the bytes when a diagnostic needs them.
  Diagnostic a =
      MakeDiagnostic(first.source_map.get(), "tasks[1].run.image", "x");
  Diagnostic b =
      MakeDiagnostic(second.source_map.get(), "tasks[1].run.image", "x");
  EXPECT_EQ(b.ToString(), a.ToString());
  EXPECT_EQ(b.line, 8);

  // Without a directory nothing is cached.
  LoadedPipeline plain = LoadPipelineFile(path_, LoadOptions::LocalFile());
  EXPECT_TRUE(Decoded(plain));
  EXPECT_EQ(plain.pipeline.DebugString(), first.pipeline.DebugString());
  EXPECT_EQ(Entries().size(), 1u);
}

TEST_F(DecodeCacheTest, AChangedFileIsDecodedAgain) {
  ASSERT_TRUE(LoadPipelineFile(path_, Cached()).ok());
  Write("pipeline.yaml", absl::StrCat(kPipeline, R"(  - name: ship
    needs: [test]
    run: {image: host, command: [make, ship]}
)"));
  LoadedPipeline changed = LoadPipelineFile(path_, Cached());
  ASSERT_TRUE(changed.ok()) << JoinDiagnostics(changed.errors);
  EXPECT_TRUE(Decoded(changed));
  EXPECT_EQ(changed.pipeline.tasks_size(), 3);
  EXPECT_EQ(Entries().size(), 2u);
  // The same bytes under another name: another entry (names are part of
  // what the decoding records).
  std::string copy = Write("other.yaml", Read(path_));
  LoadedPipeline other = LoadPipelineFile(copy, Cached());
  EXPECT_TRUE(Decoded(other));
  EXPECT_EQ(other.pipeline.file(), "other.yaml");
  EXPECT_EQ(Entries().size(), 3u);
}

// Validation depends on more than the bytes (here: whether images are
// accepted); a hit validates again and reports exactly what a fresh load
// reports, positions included.
TEST_F(DecodeCacheTest, ValidationAndItsDiagnosticsAreTheSameOnAHit) {
  ASSERT_TRUE(LoadPipelineFile(path_, Cached()).ok());
  LoadOptions no_images = Cached();
  no_images.images_supported = false;
  LoadedPipeline hit = LoadPipelineFile(path_, no_images);
  EXPECT_FALSE(Decoded(hit));
  no_images.decode_cache_dir.clear();
  LoadedPipeline fresh = LoadPipelineFile(path_, no_images);
  ASSERT_FALSE(fresh.ok());
  EXPECT_EQ(JoinDiagnostics(hit.errors), JoinDiagnostics(fresh.errors));
  EXPECT_THAT(JoinDiagnostics(hit.errors), HasSubstr("pipeline.yaml:8:"));
  EXPECT_EQ(hit.validation, nullptr);

  // The entry says the validation with images accepted found nothing; a
  // hit under those capabilities again is covered, the other is not.
  LoadedPipeline images = LoadPipelineFile(path_, Cached());
  EXPECT_FALSE(Decoded(images));
  ASSERT_NE(images.validation, nullptr);
  EXPECT_TRUE(images.validation->Covers(images.pipeline));
  EXPECT_FALSE(LoadPipelineFile(path_, no_images_cached()).ok());
}

// A load that does not validate writes an entry that vouches for nothing:
// a later validating hit runs the validation.
TEST_F(DecodeCacheTest, AnEntryOfAnUnvalidatedLoadIsValidatedOnAHit) {
  std::string images = Write("images.yaml", kPipeline);
  LoadOptions unvalidated = no_images_cached();
  unvalidated.validate = false;
  LoadedPipeline first = LoadPipelineFile(images, unvalidated);
  ASSERT_TRUE(first.ok()) << JoinDiagnostics(first.errors);
  EXPECT_TRUE(Decoded(first));
  EXPECT_EQ(first.validation, nullptr);
  LoadedPipeline hit = LoadPipelineFile(images, no_images_cached());
  EXPECT_FALSE(Decoded(hit));
  EXPECT_FALSE(hit.ok()) << "the image task must be refused";
  EXPECT_THAT(JoinDiagnostics(hit.errors), HasSubstr("images.yaml:8:"));
  EXPECT_EQ(hit.validation, nullptr);
}

// The decoding limits are part of the key: an entry written under generous
// limits never lets a file past tighter ones.
TEST_F(DecodeCacheTest, LimitsAreNotBypassed) {
  ASSERT_TRUE(LoadPipelineFile(path_, Cached()).ok());
  LoadOptions tight = Cached();
  tight.max_nodes = 10;
  LoadedPipeline p = LoadPipelineFile(path_, tight);
  ASSERT_FALSE(p.ok());
  EXPECT_THAT(JoinDiagnostics(p.errors), HasSubstr("10"));
}

TEST_F(DecodeCacheTest, ADamagedEntryIsDecodedAgainAndRewritten) {
  LoadedPipeline good = LoadPipelineFile(path_, Cached());
  ASSERT_TRUE(good.ok());
  ASSERT_EQ(Entries().size(), 1u);
  const std::string entry = Entries()[0];
  const std::string bytes = Read(entry);
  ASSERT_GT(bytes.size(), 40u);
  std::string flipped_payload = bytes;
  flipped_payload[bytes.size() - 3] ^= 0x01;  // still parses as a message
  std::string flipped_sum = bytes;
  flipped_sum[0] ^= 0x80;
  for (const std::string& damaged :
       {std::string(), bytes.substr(0, 31), bytes.substr(0, bytes.size() - 5),
        flipped_payload, flipped_sum, std::string(4096, 'x')}) {
    std::ofstream(entry, std::ios::trunc | std::ios::binary) << damaged;
    LoadedPipeline p = LoadPipelineFile(path_, Cached());
    ASSERT_TRUE(p.ok()) << JoinDiagnostics(p.errors);
    EXPECT_TRUE(Decoded(p)) << "a damaged entry was used";
    EXPECT_EQ(p.pipeline.DebugString(), good.pipeline.DebugString());
    EXPECT_EQ(Read(entry), bytes) << "the entry is written again";
    EXPECT_FALSE(Decoded(LoadPipelineFile(path_, Cached())));
  }
}

TEST_F(DecodeCacheTest, KeepsTheNewestEntries) {
  for (int i = 0; i < 70; ++i) {
    std::string p = Write(absl::StrCat("p", i, ".yaml"), kPipeline);
    ASSERT_TRUE(LoadPipelineFile(p, Cached()).ok());
  }
  EXPECT_EQ(Entries().size(), 64u);
  // The newest is kept.
  EXPECT_FALSE(Decoded(LoadPipelineFile(dir_ + "/p69.yaml", Cached())));
}

// A file with errors is not cached (nor is an unreadable cache directory an
// error: the load only decodes).
TEST_F(DecodeCacheTest,
       ErrorsAreNotCachedAndACacheThatCannotBeWrittenIsNoError) {
  std::string bad = Write("bad.yaml", "name: demo\ntasks: 3\n");
  EXPECT_FALSE(LoadPipelineFile(bad, Cached()).ok());
  EXPECT_TRUE(Entries().empty());
  LoadOptions nowhere = Cached();
  nowhere.decode_cache_dir = dir_ + "/no/such/parent/cache";
  LoadedPipeline p = LoadPipelineFile(path_, nowhere);
  EXPECT_TRUE(p.ok()) << JoinDiagnostics(p.errors);
  EXPECT_TRUE(Decoded(p));
}

}  // namespace
}  // namespace kiln::pipeline
