#include "engine/oci/spec.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kiln::oci {
namespace {

using ::testing::HasSubstr;

constexpr char kDigestA[] =
    "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
constexpr char kDigestB[] =
    "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

std::string DockerManifest() {
  return std::string(R"({"schemaVersion":2,"mediaType":")") + kDockerManifest +
         R"(","config":{"mediaType":")" + kDockerConfig +
         R"(","size":7,"digest":")" + kDigestA +
         R"("},"layers":[{"mediaType":")" + kDockerLayerGzip +
         R"(","size":12,"digest":")" + kDigestB + R"("}]})";
}

TEST(SpecTest, ParsesADockerManifestAndWritesItCanonically) {
  auto m = ParseManifest(DockerManifest(), kDockerManifest);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->media_type, kDockerManifest);
  EXPECT_EQ(m->config.digest, kDigestA);
  EXPECT_EQ(m->config.size, 7);
  ASSERT_EQ(m->layers.size(), 1u);
  EXPECT_EQ(m->layers[0].size, 12);
  EXPECT_EQ(*LayerCompression(m->layers[0].media_type), "gzip");
  std::string out = ToJson(*m);
  // Keys sorted, compact, and a round trip is stable.
  EXPECT_EQ(out.find("{\"config\""), 0u) << out;
  auto again = ParseManifest(out);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(ToJson(*again), out);
}

TEST(SpecTest, RefusesBadManifests) {
  EXPECT_THAT(ParseManifest("{").status().message(),
              HasSubstr("not valid JSON"));
  EXPECT_THAT(ParseManifest(R"({"schemaVersion":1})").status().message(),
              HasSubstr("schema 1"));
  std::string bad_digest = DockerManifest();
  bad_digest.replace(bad_digest.find(kDigestB), 10, "sha256:xyz");
  EXPECT_THAT(ParseManifest(bad_digest).status().message(),
              HasSubstr("malformed digest"));
  EXPECT_THAT(ParseManifest(DockerManifest(), kOciManifest).status().message(),
              HasSubstr("served as"));
  std::string wrong_type = R"({"schemaVersion":2,"config":"x"})";
  EXPECT_FALSE(ParseManifest(wrong_type).ok());
  std::string huge(kMaxManifestBytes + 1, ' ');
  EXPECT_THAT(ParseManifest(huge).status().message(),
              HasSubstr("over the limit"));
  std::string sha512 =
      R"({"schemaVersion":2,"config":{"digest":"sha512:ab","size":1}})";
  EXPECT_THAT(ParseManifest(sha512).status().message(), HasSubstr("sha512"));
}

TEST(SpecTest, SelectsThePlatformFromAnIndex) {
  std::string text =
      std::string(R"({"schemaVersion":2,"manifests":[)") + R"({"mediaType":")" +
      kOciManifest + R"(","digest":")" + kDigestA +
      R"(","size":1,"platform":{"os":"linux","architecture":"arm64","variant":"v8"}},)" +
      R"({"mediaType":")" + kOciManifest + R"(","digest":")" + kDigestB +
      R"(","size":2,"platform":{"os":"linux","architecture":"amd64"}}]})";
  auto index = ParseIndex(text);
  ASSERT_TRUE(index.ok()) << index.status();
  EXPECT_EQ(index->media_type, kOciIndex);
  EXPECT_EQ(SelectPlatform(*index, *Platform::Parse("linux/amd64"))->digest,
            kDigestB);
  EXPECT_EQ(SelectPlatform(*index, *Platform::Parse("linux/arm64"))->digest,
            kDigestA);
  auto none = SelectPlatform(*index, *Platform::Parse("linux/s390x"));
  EXPECT_THAT(none.status().message(),
              HasSubstr("offers: linux/amd64, linux/arm64/v8"));
  EXPECT_FALSE(Platform::Parse("linux").ok());
  EXPECT_FALSE(Platform::Parse("linux//v8").ok());
}

TEST(SpecTest, ImageConfigKeepsWhatItDoesNotModel) {
  std::string text =
      R"({"architecture":"amd64","os":"linux","created":"1970-01-01T00:00:00Z",
    "config":{"Env":["PATH=/bin"],"Cmd":["sh"],"WorkingDir":"/w","User":"1000:1000",
              "ExposedPorts":{"80/tcp":{}},"Healthcheck":{"Test":["CMD","true"]},"Labels":{"a":"b"}},
    "rootfs":{"type":"layers","diff_ids":[")" +
      std::string(kDigestA) + R"("]},
    "history":[{"created_by":"x","empty_layer":true}],"moby.extra":1})";
  auto c = ParseImageConfig(text);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->env, std::vector<std::string>{"PATH=/bin"});
  EXPECT_EQ(c->working_dir, "/w");
  EXPECT_EQ(c->user, "1000:1000");
  EXPECT_EQ(c->exposed_ports, std::vector<std::string>{"80/tcp"});
  EXPECT_EQ(c->diff_ids, std::vector<std::string>{kDigestA});
  ASSERT_EQ(c->history.size(), 1u);
  EXPECT_TRUE(c->history[0].empty_layer);
  std::string out = ToJson(*c);
  EXPECT_THAT(out, HasSubstr(R"("Healthcheck":{"Test":["CMD","true"]})"));
  EXPECT_THAT(out, HasSubstr(R"("moby.extra":1)"));
  auto again = ParseImageConfig(out);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(ToJson(*again), out);
  EXPECT_FALSE(
      ParseImageConfig(R"({"rootfs":{"type":"layers","diff_ids":["nope"]}})")
          .ok());
  EXPECT_FALSE(ParseImageConfig(R"({"config":{"Env":"notalist"}})").ok());
}

}  // namespace
}  // namespace kiln::oci
