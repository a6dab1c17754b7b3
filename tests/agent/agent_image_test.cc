// The agent image: kiln's own containerize over the bundle, pushed to a
// real registry; reproducible (two stores, one digest).
#include "engine/agent/agent_image.h"

#include "absl/strings/match.h"
#include "engine/oci/registry/testing/registry_fixture.h"
#include "gtest/gtest.h"

namespace kiln {
namespace {

TEST(AgentImageTest, BuildsPushesAndIsReproducible) {
  auto registry = oci::registry::testing::RegistryServer::Start();
  ASSERT_TRUE(registry.ok()) << registry.status();
  const std::string host = (*registry)->address();
  auto first = agent::BuildAgentImage(host);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_TRUE(absl::StartsWith(*first, host + "/kiln-agent@sha256:")) << *first;
  EXPECT_EQ(first->size(),
            host.size() + std::string("/kiln-agent@sha256:").size() + 64);
  auto second = agent::BuildAgentImage(host);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(*first, *second);
}

}  // namespace
}  // namespace kiln
