#include "engine/cli/completion.h"

#include <set>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace kiln::cli {
namespace {

using Words = std::vector<std::string>;

// A --help text in the form Args::Help() prints.
constexpr char kRunHelp[] =
    "usage: kiln run FILE [--param k=v]...\n"
    "\n"
    "Runs a pipeline. --not-a-flag in prose is ignored.\n"
    "\n"
    "flags:\n"
    "  --event VALUE            push, pull_request, tag or manual\n"
    "  --json                   print one JSON event per line\n"
    "  --max-pipeline-bytes VALUE largest pipeline file read\n"
    "  --param VALUE            a pipeline parameter, k=v (repeatable)\n"
    "  --store VALUE            store directory\n"
    "  --help                   print this help\n";

constexpr char kLogsHelp[] =
    "usage: kiln logs RUN [TASK]\n\nflags:\n"
    "  --follow                 keep following\n"
    "  --store VALUE            store directory\n"
    "  --help                   print this help\n";

class CompletionTest : public ::testing::Test {
 protected:
  CompletionTest() {
    sources_.verbs = {"artifacts", "graph", "logs", "run", "runs", "serve"};
    sources_.flags = [](const std::string& verb) {
      if (verb == "run") return ParseHelpFlags(kRunHelp);
      if (verb == "logs" || verb == "artifacts") {
        return ParseHelpFlags(kLogsHelp);
      }
      return FlagSet();
    };
    sources_.pipeline = [this](const std::string& file) {
      loaded_.push_back(file);
      CompletionSources::PipelineNames names;
      if (file == "kiln.yaml") {
        names.params = {"registry", "region"};
        names.tasks = {"build", "test", "deploy"};
      } else if (file == "other.yaml") {
        names.params = {"flavour"};
        names.tasks = {"only"};
      }
      return names;
    };
    sources_.exists = [this](const std::string& file) {
      return files_.count(file) > 0;
    };
  }
  std::vector<std::string> At(const Words& words, size_t index) {
    return Complete(words, index, sources_);
  }

  CompletionSources sources_;
  std::set<std::string> files_ = {"kiln.yaml", "other.yaml"};
  std::vector<std::string> loaded_;
};

TEST(ParseHelpFlagsTest, ValueAndBooleanFlagsFromTheFlagsSection) {
  FlagSet flags = ParseHelpFlags(kRunHelp);
  EXPECT_EQ(flags, (FlagSet{{"event", true},
                            {"json", false},
                            {"max-pipeline-bytes", true},
                            {"param", true},
                            {"store", true},
                            {"help", false}}));
  EXPECT_TRUE(
      ParseHelpFlags("usage: kiln x\n  --json   not a section\n").empty());
}

TEST_F(CompletionTest, Verbs) {
  EXPECT_EQ(At({"kiln", "ru"}, 1), (Words{"run", "runs"}));
  EXPECT_EQ(At({"kiln", ""}, 1).size(), sources_.verbs.size());
  EXPECT_EQ(At({"kiln"}, 1).size(), sources_.verbs.size());
  EXPECT_EQ(At({"kiln", "-"}, 1), (Words{"--help"}));
  EXPECT_TRUE(At({"kiln", "zz"}, 1).empty());
}

TEST_F(CompletionTest, FlagsOfTheVerb) {
  EXPECT_EQ(At({"kiln", "run", "--"}, 2),
            (Words{"--event", "--help", "--json", "--max-pipeline-bytes",
                   "--param", "--store"}));
  EXPECT_EQ(At({"kiln", "run", "x.yaml", "--js"}, 3), (Words{"--json"}));
  EXPECT_EQ(At({"kiln", "logs", "--f"}, 2), (Words{"--follow"}));
  EXPECT_TRUE(At({"kiln", "nosuchverb", "--"}, 2).empty());
}

TEST_F(CompletionTest, FlagValues) {
  EXPECT_EQ(At({"kiln", "run", "--event", "p"}, 3),
            (Words{"pull_request", "pull_request_closed", "push"}));
  EXPECT_EQ(At({"kiln", "run", "--event", ""}, 3),
            (Words{"branch_deleted", "manual", "pull_request",
                   "pull_request_closed", "push", "tag"}));
  // --param offers the params of the FILE on the line...
  EXPECT_EQ(At({"kiln", "run", "other.yaml", "--param", ""}, 4),
            (Words{"flavour="}));
  // ...else those of the pipeline of the current directory.
  EXPECT_EQ(At({"kiln", "run", "--param", "re"}, 3),
            (Words{"region=", "registry="}));
  EXPECT_EQ(At({"kiln", "run", "missing.yaml", "--param", ""}, 4),
            (Words{"region=", "registry="}));
  // Any other value: nothing (the shell completes file names).
  EXPECT_TRUE(At({"kiln", "run", "--store", ""}, 3).empty());
  // A boolean flag takes no value: the next word is a positional.
  EXPECT_TRUE(At({"kiln", "run", "--json", ""}, 3).empty());
}

TEST_F(CompletionTest, TaskNamesOfLogsAndArtifacts) {
  EXPECT_EQ(At({"kiln", "logs", "r-1", ""}, 3),
            (Words{"build", "deploy", "test"}));
  EXPECT_EQ(At({"kiln", "artifacts", "r-1", "b"}, 3), (Words{"build"}));
  // Flags and their values are not positionals.
  EXPECT_EQ(At({"kiln", "logs", "--store", "/s", "r-1", "t"}, 5),
            (Words{"test"}));
  EXPECT_EQ(At({"kiln", "logs", "--follow", "r-1", "t"}, 4), (Words{"test"}));
  // RUN itself, and a third positional: nothing.
  EXPECT_TRUE(At({"kiln", "logs", ""}, 2).empty());
  EXPECT_TRUE(At({"kiln", "logs", "r-1", "build", ""}, 4).empty());
  // No pipeline in the current directory: nothing, and nothing loaded.
  files_.clear();
  loaded_.clear();
  EXPECT_TRUE(At({"kiln", "logs", "r-1", ""}, 3).empty());
  EXPECT_TRUE(loaded_.empty());
}

TEST_F(CompletionTest, OutOfRangeIndex) {
  EXPECT_TRUE(At({"kiln", "run"}, 0).empty());
  EXPECT_TRUE(At({"kiln", "run"}, 5).empty());
}

TEST(CompletionScriptTest, KnownShells) {
  EXPECT_NE(CompletionScript("bash").find("complete -o default"),
            std::string::npos);
  EXPECT_NE(CompletionScript("zsh").find("compdef _kiln kiln"),
            std::string::npos);
  EXPECT_EQ(CompletionScript("fish"), "");
}

}  // namespace
}  // namespace kiln::cli
