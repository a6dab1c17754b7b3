#include "api/builder.h"

#include <string>

#include "absl/strings/match.h"
#include "api/version.h"
#include "gtest/gtest.h"

namespace kiln {
namespace {

TEST(BuilderTest, BuildsTheProtoAFileWouldLoadTo) {
  PipelineBuilder p("demo");
  p.Param("who", "world")
      .RequiredParam("region")
      .KeepGoing()
      .Timeout(absl::Minutes(90));
  p.Run("greet", {"/bin/sh", "-c", "echo hi"})
      .Env("WHO", "${params.who}")
      .Image("host")
      .Workdir("src")
      .Retries(2)
      .Timeout(absl::Milliseconds(1500))
      .Output("greeting", {"out/greeting"});
  p.Stash("keep", "kept", "out").Needs("greet").Input("greeting");
  p.Unstash("put", "kept", "restored").Needs("keep").WhenBranch("main");
  p.Finally("summary", {"echo", "done"}).Cache(false);
  absl::StatusOr<v1::Pipeline> built = p.Build();
  ASSERT_TRUE(built.ok()) << built.status();
  const v1::Pipeline& pl = *built;
  EXPECT_EQ(pl.name(), "demo");
  ASSERT_EQ(pl.params_size(), 2);
  EXPECT_EQ(pl.params(0).default_(), "world");
  EXPECT_FALSE(pl.params(1).has_default_());
  EXPECT_EQ(pl.options().on_failure(), v1::CONTINUE);
  EXPECT_EQ(pl.options().timeout().seconds(), 5400);
  ASSERT_EQ(pl.tasks_size(), 3);
  const v1::Task& greet = pl.tasks(0);
  EXPECT_EQ(greet.run().command_size(), 3);
  EXPECT_EQ(greet.run().env(0).value(), "${params.who}");
  EXPECT_EQ(greet.run().image(), "host");
  EXPECT_EQ(greet.hints().retries(), 2u);
  EXPECT_EQ(greet.hints().timeout().seconds(), 1);
  EXPECT_EQ(greet.hints().timeout().nanos(), 500000000);
  EXPECT_EQ(pl.tasks(1).stash().from(), "out");
  EXPECT_EQ(pl.tasks(1).inputs(0).artifact(), "greeting");
  EXPECT_EQ(pl.tasks(2).when().branch().kind(), v1::StringMatch::GLOB);
  EXPECT_EQ(pl.tasks(2).when().branch().pattern(), "main");
  ASSERT_EQ(pl.finally_size(), 1);
  EXPECT_FALSE(pl.finally(0).cache());
}

TEST(BuilderTest, EveryProblemInOneError) {
  PipelineBuilder p("bad");
  p.Run("a", {"true"}).Retries(101).Timeout(-absl::Seconds(1));
  p.Run("b", {"true"}).Needs("nope").Input("missing");
  p.Run("a", {"true"});  // a second task named a
  absl::StatusOr<v1::Pipeline> built = p.Build();
  ASSERT_FALSE(built.ok());
  EXPECT_EQ(built.status().code(), absl::StatusCode::kInvalidArgument);
  const std::string message(built.status().message());
  for (const char* expected :
       {"retries 101 is outside 0..100", "timeout -1s is not positive",
        "tasks[1].needs[0]", "nope", "missing", "'a'"}) {
    EXPECT_TRUE(absl::StrContains(message, expected))
        << expected << " not in: " << message;
  }
}

TEST(BuilderTest, ATaskWithoutAKindIsRefused) {
  PipelineBuilder p("kindless");
  p.mutable_proto()->add_tasks()->set_name("empty");
  EXPECT_FALSE(p.Build().ok());
}

TEST(VersionTest, LibraryAndHeaderAgree) {
  EXPECT_STREQ(Version(), KILN_VERSION_STRING);
  EXPECT_EQ(KILN_VERSION,
            KILN_MAKE_VERSION(KILN_VERSION_MAJOR, KILN_VERSION_MINOR,
                              KILN_VERSION_PATCH));
  EXPECT_GE(KILN_VERSION, KILN_MAKE_VERSION(0, 6, 0));
}

}  // namespace
}  // namespace kiln
