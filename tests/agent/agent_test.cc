// The pod agent (engine/agent) as a subprocess against a real kiln gRPC
// blob endpoint (StartAgentBlobServer over a FakeEngine's store), with temp
// directories in place of the pod's mounts.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "engine/cas/artifact_store.h"
#include "engine/service/agent_blob_server.h"
#include "engine/service/testing/fake_engine.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

extern char** environ;

namespace kiln {
namespace {

using nlohmann::json;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

void MakeDirs(const std::string& path) {
  std::error_code ec;
  std::filesystem::create_directories(path, ec);
  ASSERT_FALSE(ec) << path << ": " << ec.message();
}

void WriteFile(const std::string& path, const std::string& content) {
  MakeDirs(path.substr(0, path.rfind('/')));
  std::ofstream(path, std::ios::binary | std::ios::trunc) << content;
}

// Never follows a symlink (std::filesystem::remove_all removes links).
void RemoveTree(const std::string& path) {
  std::error_code ec;
  std::filesystem::remove_all(path, ec);
  ASSERT_FALSE(ec) << path << ": " << ec.message();
}

bool IsLink(const std::string& path) {
  struct stat st;
  return lstat(path.c_str(), &st) == 0 && S_ISLNK(st.st_mode);
}

struct AgentRun {
  int exit_code = -1;  // 128+signal if the agent itself died of one
  std::string out, err;
  absl::Duration took;
};

class AgentTest : public ::testing::Test {
 protected:
  void SetUp() override {
    static int counter = 0;
    dir_ = absl::StrCat(std::getenv("TEST_TMPDIR"), "/a", counter++);
    MakeDirs(dir_ + "/kiln/agent/bin");
    MakeDirs(dir_ + "/kiln-out");
    MakeDirs(dir_ + "/ws");
    WriteFile(dir_ + "/kiln/agent/bin/kiln-agent", "the bundle's binary");
    chmod((dir_ + "/kiln/agent/bin/kiln-agent").c_str(), 0755);
    service::testing::FakeEngineOptions options;
    options.store_dir = dir_ + "/store";
    auto engine = service::testing::FakeEngine::Create(options);
    ASSERT_TRUE(engine.ok()) << engine.status();
    engine_ = std::move(*engine);
    auto artifacts = cas::ArtifactStore::Open(dir_ + "/store");
    ASSERT_TRUE(artifacts.ok()) << artifacts.status();
    artifacts_ = std::move(*artifacts);
    auto blobs = service::StartAgentBlobServer(engine_.get(), {});
    ASSERT_TRUE(blobs.ok()) << blobs.status();
    blobs_ = std::move(*blobs);
    agent_ =
        absl::StrCat(std::getenv("TEST_SRCDIR"), "/",
                     std::getenv("TEST_WORKSPACE"), "/engine/agent/kiln-agent");
  }
  void TearDown() override {
    blobs_->Stop();
    engine_->Shutdown(absl::Seconds(1));
  }

  // Stashes dir_/name in the engine's store: {tree, archive}.
  std::pair<std::string, std::string> Stash(const std::string& name) {
    auto r = artifacts_->Stash(dir_ + "/" + name);
    EXPECT_TRUE(r.ok()) << r.status();
    if (!r.ok()) return {};
    return {r->tree.ToString(), r->archive.ToString()};
  }

  std::vector<std::string> Env(const json& spec) {
    std::vector<std::string> env = {
        "PATH=/usr/bin:/bin",
        "TASK_VAR=from-the-task",
        "KILN_AGENT_SPEC=" + spec.dump(),
        "KILN_AGENT_SERVER=" + blobs_->address(),
        "KILN_AGENT_TOKEN=" + blobs_->token(),
        "KILN_AGENT_KILN_DIR=" + dir_ + "/kiln",
        "KILN_AGENT_OUT_DIR=" + dir_ + "/kiln-out",
        "KILN_AGENT_WORKSPACE=" + dir_ + "/ws",
    };
    return env;
  }

  // Starts the agent; returns its pid (stdout/stderr to files).
  pid_t Start(const std::vector<std::string>& args,
              const std::vector<std::string>& env) {
    std::vector<std::string> argv = {agent_};
    argv.insert(argv.end(), args.begin(), args.end());
    std::vector<char*> a, e;
    for (const std::string& s : argv) a.push_back(const_cast<char*>(s.c_str()));
    a.push_back(nullptr);
    for (const std::string& s : env) e.push_back(const_cast<char*>(s.c_str()));
    e.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    std::string out = dir_ + "/agent.out", err = dir_ + "/agent.err";
    posix_spawn_file_actions_addopen(&fa, 1, out.c_str(),
                                     O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&fa, 2, err.c_str(),
                                     O_WRONLY | O_CREAT | O_TRUNC, 0644);
    pid_t pid = -1;
    int rc =
        posix_spawn(&pid, agent_.c_str(), &fa, nullptr, a.data(), e.data());
    posix_spawn_file_actions_destroy(&fa);
    EXPECT_EQ(rc, 0) << agent_;
    started_ = absl::Now();
    return pid;
  }

  // Waits (bounded: the agent is killed after 60 s).
  AgentRun Wait(pid_t pid) {
    AgentRun run;
    int status = 0;
    absl::Time limit = absl::Now() + absl::Seconds(60);
    while (waitpid(pid, &status, WNOHANG) == 0) {
      if (absl::Now() > limit) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        ADD_FAILURE() << "the agent hung";
        break;
      }
      absl::SleepFor(absl::Milliseconds(10));
    }
    run.took = absl::Now() - started_;
    run.exit_code =
        WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    run.out = ReadFile(dir_ + "/agent.out");
    run.err = ReadFile(dir_ + "/agent.err");
    return run;
  }

  AgentRun Agent(const std::vector<std::string>& args, const json& spec) {
    return Wait(Start(args, Env(spec)));
  }
  AgentRun RunTask(const std::string& script, json spec,
                   std::vector<std::string> flags = {}) {
    flags.insert(flags.end(), {"run", "--", "/bin/sh", "-c", script});
    return Agent(flags, spec);
  }

  json Result(const std::string& file = "/kiln/result.json") {
    std::string text = ReadFile(dir_ + file);
    EXPECT_LE(text.size(), 4096u);
    json j = json::parse(text, nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << text;
    return j;
  }

  static json Spec() {
    return json{
        {"v", 1},       {"inputs", json::array()}, {"outputs", json::array()},
        {"report", ""}, {"workdir", ""},           {"timeout_ms", 0}};
  }

  std::string dir_, agent_;
  absl::Time started_;
  std::unique_ptr<service::testing::FakeEngine> engine_;
  std::unique_ptr<cas::ArtifactStore> artifacts_;
  std::unique_ptr<service::AgentBlobServer> blobs_;
};

TEST_F(AgentTest, Version) {
  AgentRun run = Agent({"--version"}, Spec());
  EXPECT_EQ(run.exit_code, 0);
  EXPECT_TRUE(absl::StartsWith(run.out, "kiln-agent ")) << run.out;
}

TEST_F(AgentTest, FetchVerifiesAndExtractsInputs) {
  WriteFile(dir_ + "/a/lib/liba.txt", "library a");
  WriteFile(dir_ + "/b/src/main.c", "int main() {}");
  auto [tree_a, archive_a] = Stash("a");
  auto [tree_b, archive_b] = Stash("b");
  json spec = Spec();
  spec["inputs"] = {
      {{"artifact", "a"},
       {"tree", tree_a},
       {"archive", archive_a},
       {"path", "deps/a"}},
      {{"artifact", "b"},
       {"tree", tree_b},
       {"archive", archive_b},
       {"path", ""}},
  };
  AgentRun run = Agent({"fetch"}, spec);
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(ReadFile(dir_ + "/ws/deps/a/lib/liba.txt"), "library a");
  EXPECT_EQ(ReadFile(dir_ + "/ws/src/main.c"), "int main() {}");
  // The bundle is copied for the task container.
  EXPECT_EQ(ReadFile(dir_ + "/kiln-out/agent/bin/kiln-agent"),
            "the bundle's binary");
  struct stat st;
  ASSERT_EQ(stat((dir_ + "/kiln-out/agent/bin/kiln-agent").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0755u);
  json fetched = Result("/kiln-out/fetch.json");
  EXPECT_EQ(fetched["status"], "EXITED");
  EXPECT_EQ(fetched["v"], 1);
}

TEST_F(AgentTest, AForgedOrCorruptInputIsRefused) {
  WriteFile(dir_ + "/a/f", "real");
  WriteFile(dir_ + "/b/f", "forged");
  auto [tree_a, archive_a] = Stash("a");
  auto [tree_b, archive_b] = Stash("b");
  auto garbage = artifacts_->blobs().Put("not an archive at all");
  ASSERT_TRUE(garbage.ok());
  struct Case {
    const char* label;
    std::string archive;
  } cases[] = {
      {"another tree's archive", archive_b},
      {"not an archive", garbage->ToString()},
      {"absent", cas::Digest::Of("absent").ToString()},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.label);
    json spec = Spec();
    spec["inputs"] = {{{"artifact", "a"},
                       {"tree", tree_a},
                       {"archive", c.archive},
                       {"path", "in"}}};
    AgentRun run = Agent({"fetch"}, spec);
    EXPECT_EQ(run.exit_code, 125) << run.err;
    json fetched = Result("/kiln-out/fetch.json");
    EXPECT_EQ(fetched["status"], "INPUTS_FAILED") << fetched.dump();
    EXPECT_TRUE(
        absl::StrContains(fetched["message"].get<std::string>(), "input 'a'"))
        << fetched.dump();
    // Nothing of it is left in the workspace.
    struct stat st;
    EXPECT_NE(lstat((dir_ + "/ws/in/f").c_str(), &st), 0);
    RemoveTree(dir_ + "/kiln-out/agent");
  }
}

TEST_F(AgentTest, OutputsEqualTheEnginesOwnStash) {
  json spec = Spec();
  spec["outputs"] = {{{"artifact", "bin"}, {"paths", {"out"}}},
                     {{"artifact", "doc"}, {"paths", {"README", "docs/x"}}}};
  spec["report"] = "report.xml";
  AgentRun run = RunTask(
      "mkdir -p out/sub docs && echo tool > out/tool && chmod +x out/tool && "
      "echo deep > out/sub/deep && ln -s /etc out/hostlink && "
      "echo r > README && echo x > docs/x && echo y > docs/y && "
      "echo '<r/>' > report.xml && echo done",
      spec);
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(run.out, "done\n");  // stdout passes through unchanged
  json result = Result();
  EXPECT_EQ(result["status"], "EXITED") << result.dump();
  struct Want {
    const char* artifact;
    std::vector<std::string> paths;
  } wants[] = {{"bin", {"out"}}, {"doc", {"README", "docs/x"}}};
  for (const Want& w : wants) {
    SCOPED_TRACE(w.artifact);
    auto stash = artifacts_->StashPaths(dir_ + "/ws", w.paths);
    ASSERT_TRUE(stash.ok()) << stash.status();
    EXPECT_EQ(result["outputs"][w.artifact]["tree"], stash->tree.ToString());
    EXPECT_EQ(result["outputs"][w.artifact]["archive"],
              stash->archive.ToString());
    // Uploaded: the engine's store has the blob the agent reported.
    auto archive = cas::Digest::Parse(
        result["outputs"][w.artifact]["archive"].get<std::string>());
    ASSERT_TRUE(archive.ok());
    EXPECT_TRUE(engine_->FindMissingBlobs({*archive}).empty());
  }
  auto report = artifacts_->StashPaths(dir_ + "/ws", {"report.xml"});
  ASSERT_TRUE(report.ok());
  EXPECT_EQ(result["report"]["tree"], report->tree.ToString());
  // The symlink pointing out of the workspace is a link in the artifact.
  auto tree =
      cas::Digest::Parse(result["outputs"]["bin"]["tree"].get<std::string>());
  ASSERT_TRUE(artifacts_->Unstash(*tree, dir_ + "/back").ok());
  EXPECT_TRUE(IsLink(dir_ + "/back/out/hostlink"));
  EXPECT_EQ(ReadFile(dir_ + "/back/out/sub/deep"), "deep\n");
}

TEST_F(AgentTest, ASymlinkOutputIsNeverFollowed) {
  WriteFile(dir_ + "/host/secret", "secret");
  json spec = Spec();
  spec["outputs"] = {{{"artifact", "o"}, {"paths", {"out"}}}};
  AgentRun run = RunTask(absl::StrCat("ln -s ", dir_, "/host out"), spec);
  ASSERT_EQ(run.exit_code, 0) << run.err;
  json result = Result();
  auto tree =
      cas::Digest::Parse(result["outputs"]["o"]["tree"].get<std::string>());
  ASSERT_TRUE(tree.ok()) << result.dump();
  // The engine adopts the upload (verifying it), as the pod executor does.
  auto archive =
      cas::Digest::Parse(result["outputs"]["o"]["archive"].get<std::string>());
  ASSERT_TRUE(archive.ok());
  absl::Status adopted = artifacts_->AdoptArchive(*tree, *archive);
  ASSERT_TRUE(adopted.ok()) << adopted;
  ASSERT_TRUE(artifacts_->Unstash(*tree, dir_ + "/back").ok());
  EXPECT_TRUE(IsLink(dir_ + "/back/out"));
  EXPECT_EQ(ReadFile(dir_ + "/host/secret"), "secret");
  // A path through the link is refused, not read from the host.
  spec["outputs"] = {{{"artifact", "o"}, {"paths", {"out/secret"}}}};
  RemoveTree(dir_ + "/ws/out");
  run = RunTask(absl::StrCat("ln -s ", dir_, "/host out"), spec);
  EXPECT_EQ(run.exit_code, 125);
  EXPECT_EQ(Result()["status"], "OUTPUTS_FAILED");
}

TEST_F(AgentTest, AMissingOutputIsOutputsFailed) {
  json spec = Spec();
  spec["outputs"] = {{{"artifact", "o"}, {"paths", {"made", "never"}}}};
  AgentRun run = RunTask("echo > made", spec);
  EXPECT_EQ(run.exit_code, 125);
  json result = Result();
  EXPECT_EQ(result["status"], "OUTPUTS_FAILED");
  EXPECT_EQ(result["message"], "output 'o': path 'never' was not produced");
  EXPECT_TRUE(result["outputs"].empty());
}

TEST_F(AgentTest, ExitCodesAndSignals) {
  json spec = Spec();
  spec["outputs"] = {{{"artifact", "o"}, {"paths", {"f"}}}};
  AgentRun run = RunTask("echo > f; echo oops >&2; exit 3", spec);
  EXPECT_EQ(run.exit_code, 3);
  EXPECT_EQ(run.err, "oops\n");  // stderr passes through unchanged
  json result = Result();
  EXPECT_EQ(result["status"], "EXITED");
  EXPECT_EQ(result["exit_code"], 3);
  EXPECT_TRUE(result["outputs"].empty());  // only after exit 0

  run = RunTask("kill -USR1 $$", Spec());
  EXPECT_EQ(run.exit_code, 128 + SIGUSR1);
  result = Result();
  EXPECT_EQ(result["status"], "SIGNALED");
  EXPECT_EQ(result["signal"], SIGUSR1);

  run = Agent({"run", "--", "/no/such/command"}, Spec());
  EXPECT_EQ(run.exit_code, 127);
  EXPECT_TRUE(absl::StrContains(Result()["message"].get<std::string>(),
                                "/no/such/command"));
}

TEST_F(AgentTest, TimeoutTermsThenKills) {
  json spec = Spec();
  spec["timeout_ms"] = 300;
  AgentRun run = RunTask("exec sleep 30", spec);
  EXPECT_EQ(run.exit_code, 128 + SIGTERM);
  EXPECT_LT(run.took, absl::Seconds(10));
  json result = Result();
  EXPECT_EQ(result["status"], "TIMED_OUT");
  // A task ignoring SIGTERM is killed after the grace.
  run = RunTask("trap '' TERM; while :; do sleep 0.05; done", spec,
                {"--kill-grace-ms", "300"});
  EXPECT_EQ(run.exit_code, 128 + SIGKILL);
  EXPECT_LT(run.took, absl::Seconds(10));
  EXPECT_EQ(Result()["status"], "TIMED_OUT");
}

TEST_F(AgentTest, SigtermIsForwardedToTheTask) {
  pid_t pid = Start({"run", "--", "/bin/sh", "-c",
                     "trap 'echo got-term; exit 7' TERM; echo > ready; "
                     "while :; do sleep 0.05; done"},
                    Env(Spec()));
  absl::Time limit = absl::Now() + absl::Seconds(20);
  struct stat st;
  while (stat((dir_ + "/ws/ready").c_str(), &st) != 0 && absl::Now() < limit) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  ASSERT_EQ(kill(pid, SIGTERM), 0);
  AgentRun run = Wait(pid);
  EXPECT_EQ(run.exit_code, 7) << run.err;
  EXPECT_EQ(run.out, "got-term\n");
  EXPECT_EQ(Result()["status"], "EXITED");
}

TEST_F(AgentTest, TheTokenIsNotInTheTasksEnvironment) {
  AgentRun run = RunTask("env > env.txt", Spec());
  ASSERT_EQ(run.exit_code, 0) << run.err;
  std::string env = ReadFile(dir_ + "/ws/env.txt");
  EXPECT_TRUE(absl::StrContains(env, "TASK_VAR=from-the-task")) << env;
  EXPECT_FALSE(absl::StrContains(env, "KILN_AGENT")) << env;
  EXPECT_FALSE(absl::StrContains(env, blobs_->token())) << env;
}

TEST_F(AgentTest, AWrongTokenFailsTheUpload) {
  json spec = Spec();
  spec["outputs"] = {{{"artifact", "o"}, {"paths", {"f"}}}};
  std::vector<std::string> env = Env(spec);
  for (std::string& e : env) {
    if (absl::StartsWith(e, "KILN_AGENT_TOKEN=")) {
      e = "KILN_AGENT_TOKEN=not-the-agent-token-0123";
    }
  }
  AgentRun run = Wait(Start({"run", "--", "/bin/sh", "-c", "echo > f"}, env));
  EXPECT_EQ(run.exit_code, 125);
  json result = Result();
  EXPECT_EQ(result["status"], "OUTPUTS_FAILED");
  EXPECT_TRUE(
      absl::StrContains(result["message"].get<std::string>(), "unknown token"))
      << result.dump();
}

TEST_F(AgentTest, ABadSpecIsSetupFailed) {
  json spec = Spec();
  spec["v"] = 2;
  AgentRun run = RunTask("true", spec);
  EXPECT_EQ(run.exit_code, 125);
  EXPECT_EQ(Result()["status"], "SETUP_FAILED");
  spec = Spec();
  spec["inputs"] = {{{"artifact", "a"},
                     {"tree", "sha256:zz"},
                     {"archive", "x"},
                     {"path", ""}}};
  run = Agent({"fetch"}, spec);
  EXPECT_EQ(run.exit_code, 125);
  EXPECT_EQ(Result("/kiln-out/fetch.json")["status"], "SETUP_FAILED");
}

}  // namespace
}  // namespace kiln
