#include "engine/keys/task_key.h"

#include <functional>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace kiln {
namespace {

v1::Task BaseTask() {
  v1::Task t;
  t.set_name("build");
  auto* run = t.mutable_run();
  run->set_role(v1::COMPILE);
  run->set_image("host");
  run->add_command("make");
  run->add_command("build");
  auto* e1 = run->add_env();
  e1->set_name("B");
  e1->set_value("2");
  auto* e2 = run->add_env();
  e2->set_name("A");
  e2->set_value("1");
  t.add_inputs()->set_artifact("source");
  auto* out = t.add_outputs();
  out->set_artifact("app");
  out->add_paths("out/hello");
  return t;
}

TaskKey Key(const v1::Task& t, const std::string& source = "sha256:aa",
            const std::string& platform = "linux/x86_64/v1") {
  TaskKeyInputs in;
  in.task = &t;
  in.input_digests = {{"source", source}};
  in.platform = platform;
  return ComputeTaskKey(in);
}

TEST(TaskKeyTest, StableAndVersioned) {
  v1::Task t = BaseTask();
  TaskKey a = Key(t);
  TaskKey b = Key(t);
  EXPECT_EQ(a.key, b.key);
  EXPECT_EQ(a.key.rfind("sha256:", 0), 0u);
  EXPECT_EQ(a.key.size(), 7u + 64u);
}

// Golden keys: a key that changes across releases silently invalidates (or,
// worse, aliases) every cached action. A deliberate change of the key format
// must bump its version and update these values.
TEST(TaskKeyTest, GoldenKeysAcrossReleases) {
  EXPECT_EQ(Key(BaseTask()).key,
            "sha256:"
            "a42c6cac76c049b6beb786a9003b21418e38dca07edcfda45240797e5115516e");
  v1::Task network = BaseTask();
  network.mutable_run()->set_network(true);
  EXPECT_EQ(Key(network, "sha256:bb", "linux/aarch64/v1").key,
            "sha256:"
            "8bfc371a517588603cbe8adca856d09f66f613615cd78a7553220aba23d6cdc6");
}

// Format v2: an unset field of the kind spec adds no component, so a field
// added to the proto later changes no existing task's key; setting it does.
TEST(TaskKeyTest, UnsetFieldsAddNothing) {
  std::vector<std::string> names;
  for (const KeyComponent& c : Key(BaseTask()).components) {
    names.push_back(c.name);
  }
  EXPECT_EQ(names, (std::vector<std::string>{"kind", "run.role", "run.image",
                                             "run.command", "run.env", "inputs",
                                             "outputs", "platform"}));
  v1::Task with_result = BaseTask();
  with_result.mutable_run()->add_results("version");
  EXPECT_NE(Key(with_result).key, Key(BaseTask()).key);
  v1::Task with_workdir = BaseTask();
  with_workdir.mutable_run()->set_workdir("src");
  EXPECT_NE(Key(with_workdir).key, Key(BaseTask()).key);
}

TEST(TaskKeyTest, EveryIdentityDimensionMisses) {
  const std::string base = Key(BaseTask()).key;
  std::vector<std::pair<std::string, std::function<void(v1::Task*)>>> cases = {
      {"argv element",
       [](v1::Task* t) { t->mutable_run()->set_command(1, "all"); }},
      {"argv split",
       [](v1::Task* t) {
         t->mutable_run()->set_command(0, "make build");
         t->mutable_run()->mutable_command()->RemoveLast();
       }},
      {"env value",
       [](v1::Task* t) { t->mutable_run()->mutable_env(0)->set_value("3"); }},
      {"env added",
       [](v1::Task* t) {
         auto* e = t->mutable_run()->add_env();
         e->set_name("C");
       }},
      {"image", [](v1::Task* t) { t->mutable_run()->set_image("debian:12"); }},
      {"workdir", [](v1::Task* t) { t->mutable_run()->set_workdir("src"); }},
      {"network", [](v1::Task* t) { t->mutable_run()->set_network(true); }},
      {"role", [](v1::Task* t) { t->mutable_run()->set_role(v1::TEST); }},
      {"output path",
       [](v1::Task* t) { t->mutable_outputs(0)->set_paths(0, "x"); }},
      {"input mount",
       [](v1::Task* t) { t->mutable_inputs(0)->set_path("src"); }},
  };
  for (auto& [what, mutate] : cases) {
    v1::Task t = BaseTask();
    mutate(&t);
    EXPECT_NE(Key(t).key, base) << what;
  }
  EXPECT_NE(Key(BaseTask(), "sha256:bb").key, base) << "input digest";
  EXPECT_NE(Key(BaseTask(), "sha256:aa", "linux/arm64/v1").key, base)
      << "platform";
}

TEST(TaskKeyTest, HintsNamesAndEnvOrderDoNotMatter) {
  const std::string base = Key(BaseTask()).key;
  v1::Task t = BaseTask();
  t.set_name("other-name");
  t.add_needs("x");
  t.mutable_hints()->set_retries(5);
  t.mutable_hints()->mutable_timeout()->set_seconds(30);
  t.mutable_hints()->mutable_resources()->set_memory_bytes(1 << 30);
  t.set_cache(true);
  t.mutable_when()->mutable_branch()->set_pattern("main");
  t.mutable_run()->mutable_env()->SwapElements(0, 1);
  EXPECT_EQ(Key(t).key, base);
}

TEST(TaskKeyTest, ExplainNamesTheChangedComponent) {
  v1::Task t = BaseTask();
  TaskKey before = Key(t);
  t.mutable_run()->set_command(1, "all");
  TaskKey after = Key(t, "sha256:bb");
  auto lines = ExplainKeyChange(before.components, after.components);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0], "run.command changed: [make, build] -> [make, all]");
  EXPECT_NE(lines[1].find("inputs changed"), std::string::npos);
  EXPECT_TRUE(ExplainKeyChange(before.components, before.components).empty());
}

TEST(TaskKeyTest, SecretsEnterOnlyAsHmac) {
  std::string token = HmacToken("store-key", "hunter2");
  EXPECT_EQ(token.rfind("hmac-sha256:", 0), 0u);
  EXPECT_EQ(token.find("hunter2"), std::string::npos);
  EXPECT_NE(HmacToken("other-key", "hunter2"), token);
  v1::Task t = BaseTask();
  t.mutable_run()->add_command(token);
  TaskKey k = Key(t);
  for (const auto& c : k.components) {
    EXPECT_EQ(c.summary.find("hunter2"), std::string::npos);
  }
}

}  // namespace
}  // namespace kiln
