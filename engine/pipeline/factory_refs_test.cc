// A preview environment's `factory: PATH#NAME`: its form (validate) and what
// it names (checked when loading from a file), with positioned errors.
#include "engine/pipeline/factory_refs.h"

#include <sys/stat.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "engine/pipeline/loader.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kiln::pipeline {
namespace {

using ::testing::HasSubstr;

constexpr char kFactory[] =
    "name: envs\n"
    "factories:\n"
    "  - name: shop\n"
    "    previews: {quota: {hard: {pods: '2'}}}\n"
    "  - name: cart\n";

class FactoryRefTest : public ::testing::Test {
 protected:
  void SetUp() override {
    static int n = 0;
    dir_ = absl::StrCat(std::getenv("TEST_TMPDIR"), "/p", n++);
    ASSERT_EQ(mkdir(dir_.c_str(), 0700), 0);
    ASSERT_EQ(mkdir((dir_ + "/infra").c_str(), 0700), 0);
    std::ofstream(dir_ + "/infra/f.yaml") << kFactory;
  }
  // Loads a pipeline whose preview (and, with `permanent`, its permanent
  // environment) has `factory: REF` on line 6, column 14.
  std::string Errors(const std::string& ref, bool permanent = false) {
    std::string file = dir_ + "/pipeline.yaml";
    std::ofstream(file) << absl::StrCat(
        "name: shop\n"
        "environments:\n"
        "  - name: ",
        permanent ? "prod" : "preview",
        "\n    kind: ", permanent ? "permanent" : "preview",
        "\n"
        "    namespace: shop-x\n"
        "    factory: ",
        ref,
        "\n"
        "tasks:\n"
        "  - {name: t, run: {command: [\"true\"]}}\n");
    LoadedPipeline p = LoadPipelineFile(file);
    return JoinDiagnostics(p.errors);
  }
  std::string dir_;
};

TEST_F(FactoryRefTest, ResolvesTopAndNestedFactories) {
  EXPECT_EQ(Errors("infra/f.yaml#shop"), "");
  EXPECT_THAT(Errors("infra/f.yaml#envs"),
              HasSubstr("pipeline.yaml:6:14: environment 'preview': factory "
                        "'envs' in 'infra/f.yaml' declares no previews"));
}

TEST_F(FactoryRefTest, PositionedErrors) {
  EXPECT_THAT(Errors("infra/f.yaml#shpo"),
              HasSubstr("pipeline.yaml:6:14: environment 'preview': no "
                        "factory 'shpo' in 'infra/f.yaml' (did you mean "
                        "'shop'?)"));
  EXPECT_THAT(Errors("infra/nope.yaml#shop"),
              HasSubstr("pipeline.yaml:6:14: environment 'preview': factory "
                        "file 'infra/nope.yaml' cannot be read"));
  EXPECT_THAT(Errors("infra/f.yaml"),
              HasSubstr("pipeline.yaml:6:14: environment 'preview': factory "
                        "'infra/f.yaml' is not PATH#NAME"));
  EXPECT_THAT(Errors("../f.yaml#shop"),
              HasSubstr("pipeline.yaml:6:14: environment 'preview': factory "
                        "'../f.yaml#shop': the path may not leave"));
  EXPECT_THAT(Errors("/etc/f.yaml#shop"),
              HasSubstr("the path must be relative to the pipeline file"));
  EXPECT_THAT(Errors("infra/f.yaml#shop", /*permanent=*/true),
              HasSubstr("pipeline.yaml:6:14: environment 'prod': 'factory' "
                        "is only for preview environments"));
}

TEST_F(FactoryRefTest, BrokenFactoryFileIsReportedNotFollowed) {
  std::ofstream(dir_ + "/infra/f.yaml") << "name: [unclosed\n";
  EXPECT_THAT(Errors("infra/f.yaml#shop"),
              HasSubstr("pipeline.yaml:6:14: environment 'preview': factory "
                        "file: infra/f.yaml:"));
}

TEST(ParseFactoryRefTest, Parts) {
  auto ref = ParseFactoryRef("a/b.yaml#shop");
  ASSERT_TRUE(ref.ok()) << ref.status();
  EXPECT_EQ(ref->path, "a/b.yaml");
  EXPECT_EQ(ref->name, "shop");
  EXPECT_FALSE(ParseFactoryRef("a.yaml#Shop_1").ok());
  EXPECT_FALSE(ParseFactoryRef("#shop").ok());
}

}  // namespace
}  // namespace kiln::pipeline
