// The registry holds every built-in kind, each answering for its own oneof
// case and YAML key.
#include <string>
#include <vector>

#include "engine/kinds/kinds.h"
#include "engine/pipeline/loader.h"
#include "engine/pipeline/validate.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kiln::kinds {
namespace {

using ::testing::ElementsAre;

TEST(RegistryTest, ListsEveryKind) {
  std::vector<std::string> names;
  for (const Kind* k : All()) names.push_back(k->name());
  EXPECT_THAT(names, ElementsAre("run", "stash", "unstash", "containerize",
                                 "render", "deploy"));
  // Every case of the Task oneof has its kind.
  const google::protobuf::OneofDescriptor* oneof =
      v1::Task::descriptor()->FindOneofByName("kind");
  ASSERT_NE(oneof, nullptr);
  EXPECT_EQ(static_cast<size_t>(oneof->field_count()), All().size());
  for (int i = 0; i < oneof->field_count(); ++i) {
    const auto* field = oneof->field(i);
    const pipeline::KindSpec* kind = pipeline::FindKind(field->name());
    ASSERT_NE(kind, nullptr) << field->name();
    EXPECT_EQ(static_cast<int>(kind->kind_case()), field->number());
  }
}

TEST(RegistryTest, FindsTheKindOfATask) {
  v1::Task task;
  EXPECT_EQ(Find(task), nullptr);
  task.mutable_render();
  ASSERT_NE(Find(task), nullptr);
  EXPECT_EQ(Find(task), &Render());
  EXPECT_STREQ(pipeline::KindName(task), "render");
}

TEST(RegistryTest, FactsDescribeWhatAKindReadsAndMakes) {
  v1::Task task;
  task.set_name("r");
  task.mutable_render()->mutable_kustomization()->set_artifact("m");
  pipeline::KindFacts facts = Render().Facts(task);
  ASSERT_EQ(facts.consumed.size(), 1u);
  EXPECT_EQ(facts.consumed[0].artifact, "m");
  EXPECT_EQ(facts.produced, "r");
  EXPECT_THAT(facts.output_keys, ElementsAre("digest"));
  EXPECT_TRUE(facts.memoizable);
  v1::Task deploy;
  deploy.mutable_deploy()->set_manifests("r");
  EXPECT_FALSE(Deploy().Facts(deploy).memoizable);
}

}  // namespace
}  // namespace kiln::kinds
