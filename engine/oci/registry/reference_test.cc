#include "engine/oci/registry/reference.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kiln::oci::registry {
namespace {

using ::testing::HasSubstr;

constexpr char kDigest[] =
    "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

TEST(ReferenceTest, DockerHubDefaults) {
  auto r = ParseReference("debian");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->registry, "docker.io");
  EXPECT_EQ(r->repository, "library/debian");
  EXPECT_EQ(r->tag, "");
  EXPECT_EQ(r->TagOrDigest(), "latest");
  EXPECT_EQ(r->Name(), "docker.io/library/debian");

  r = ParseReference("team/app:1.0");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->registry, "docker.io");
  EXPECT_EQ(r->repository, "team/app");
  EXPECT_EQ(r->tag, "1.0");

  r = ParseReference("index.docker.io/library/busybox:1");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->ToString(), "docker.io/library/busybox:1");
}

TEST(ReferenceTest, RegistryHostPortTagAndDigest) {
  auto r = ParseReference(std::string("127.0.0.1:5000/a/b-c__d.e:v1.2_x@") +
                          kDigest);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->registry, "127.0.0.1:5000");
  EXPECT_EQ(r->repository, "a/b-c__d.e");
  EXPECT_EQ(r->tag, "v1.2_x");
  EXPECT_EQ(r->digest, kDigest);
  EXPECT_EQ(r->TagOrDigest(), kDigest);
  EXPECT_EQ(r->ToString(),
            std::string("127.0.0.1:5000/a/b-c__d.e:v1.2_x@") + kDigest);

  r = ParseReference("localhost/app");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->registry, "localhost");
  EXPECT_EQ(r->repository, "app");

  r = ParseReference("[::1]:5000/app:2");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->registry, "[::1]:5000");
  EXPECT_EQ(RegistryHost(r->registry), "::1");

  // A port-less first component without '.' is a path, not a registry.
  r = ParseReference("myhost/app");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->registry, "docker.io");
  EXPECT_EQ(r->repository, "myhost/app");
}

TEST(ReferenceTest, RefusesMalformed) {
  struct Case {
    std::string text;
    std::string why;
  } cases[] = {
      {"", "empty"},
      {"App", "malformed repository component 'App'"},
      {"app:", "malformed tag"},
      {"app:-x", "malformed tag"},
      {"app:" + std::string(129, 'a'), "malformed tag"},
      {"app@sha256:abc", "malformed digest"},
      {"app@sha512:abc", "sha256"},
      {"host:99999/app", "malformed registry"},
      {"-host.io/app", "malformed registry"},
      {"a//b", "malformed repository component ''"},
      {"a/b/", "malformed repository component ''"},
      {"a..b", "malformed repository component"},
      {"a b", "whitespace"},
      {"reg.io/" + std::string(300, 'a'), "longer than 255"},
      {std::string(5000, 'a'), "too long"},
      {"a/../b", "malformed repository component '..'"},
  };
  for (const Case& c : cases) {
    auto r = ParseReference(c.text);
    ASSERT_FALSE(r.ok()) << c.text;
    EXPECT_TRUE(absl::IsInvalidArgument(r.status()));
    EXPECT_THAT(r.status().message(), HasSubstr(c.why)) << c.text;
  }
}

TEST(ReferenceTest, Loopback) {
  EXPECT_TRUE(IsLoopbackRegistry("127.0.0.1:5000"));
  EXPECT_TRUE(IsLoopbackRegistry("127.1.2.3"));
  EXPECT_TRUE(IsLoopbackRegistry("localhost:80"));
  EXPECT_TRUE(IsLoopbackRegistry("[::1]:5000"));
  EXPECT_FALSE(IsLoopbackRegistry("128.0.0.1:5000"));
  EXPECT_FALSE(IsLoopbackRegistry("registry.example"));
  EXPECT_FALSE(IsLoopbackRegistry("127.0.0.1.example:5000"));
  EXPECT_FALSE(IsLoopbackRegistry("docker.io"));
}

}  // namespace
}  // namespace kiln::oci::registry
