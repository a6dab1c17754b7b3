// Image mode of LocalSandboxExecutor (docs/image-sandbox.md) with images
// whose layers are built from the host's static busybox: whiteouts and
// opaque directories, writes that must never reach the shared layers, the
// image's env, working directory and user, images that cannot be prepared,
// and hostile image content (symlinks pointing at the host).
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "executors/local_sandbox/local_sandbox_executor.h"
#include "executors/testing/busybox_image.h"
#include "executors/testing/recording_sink.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kiln {
namespace {

using ::kiln::conformance::BusyboxImageAccess;
using ::kiln::conformance::MakeOpaqueDir;
using ::kiln::conformance::MakeWhiteout;
using ::kiln::conformance::RecordingSink;
using ::kiln::conformance::TestReference;
using ::kiln::conformance::TreeSnapshot;
using ::kiln::conformance::WriteLayerFile;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream content;
  content << in.rdbuf();
  return content.str();
}

class LocalSandboxImageTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* tmp = getenv("TEST_TMPDIR");
    root_ = absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/image-test-XXXXXX");
    ASSERT_NE(mkdtemp(root_.data()), nullptr);
    for (const char* dir : {"layers", "ws", "work"}) {
      ASSERT_EQ(mkdir(absl::StrCat(root_, "/", dir).c_str(), 0755), 0);
    }
    workspace_ = root_ + "/ws";
    images_ = std::make_unique<BusyboxImageAccess>(root_ + "/layers");
    absl::StatusOr<std::string> base = images_->BusyboxLayer("base");
    ASSERT_TRUE(base.ok()) << base.status();
    base_ = *base;
    LocalSandboxOptions options;
    options.work_root = root_ + "/work";
    options.hidden_paths = DefaultHiddenPaths("");
    options.cgroups = LocalSandboxOptions::Cgroups::kOff;
    options.images = images_.get();
    absl::StatusOr<std::unique_ptr<LocalSandboxExecutor>> executor =
        LocalSandboxExecutor::Create(options);
    ASSERT_TRUE(executor.ok()) << executor.status();
    executor_ = std::move(*executor);
  }

  void TearDown() override {
    executor_.reset();
    std::error_code ignored;
    std::filesystem::remove_all(root_, ignored);
  }

  // Registers an image of the base layer plus `layers` and returns its
  // reference.
  std::string AddImage(const std::string& name,
                       std::vector<std::string> layers = {},
                       std::vector<std::string> env = {},
                       std::string workdir = "", std::string user = "") {
    PreparedImage image;
    image.layer_dirs.push_back(base_);
    for (std::string& layer : layers) image.layer_dirs.push_back(layer);
    image.env = std::move(env);
    image.workdir = std::move(workdir);
    image.user = std::move(user);
    std::string reference = TestReference(name);
    images_->Add(reference, std::move(image));
    return reference;
  }

  std::string NewLayer(const std::string& name) {
    absl::StatusOr<std::string> layer = images_->NewLayer(name);
    EXPECT_TRUE(layer.ok()) << layer.status();
    return layer.ok() ? *layer : "";
  }

  v1::ExecRequest Request(const std::string& image, const std::string& script) {
    v1::ExecRequest request;
    request.set_run_id("run");
    request.set_task("task");
    request.set_attempt(1);
    request.set_image(image);
    request.add_argv("/bin/sh");
    request.add_argv("-c");
    request.add_argv(script);
    request.set_workspace(workspace_);
    request.mutable_limits()->mutable_timeout()->set_seconds(60);
    return request;
  }

  v1::ExecResult Run(const v1::ExecRequest& request, RecordingSink* sink) {
    absl::StatusOr<std::unique_ptr<Execution>> execution =
        executor_->Start(request, sink);
    EXPECT_TRUE(execution.ok()) << execution.status();
    if (!execution.ok()) return v1::ExecResult();
    return (*execution)->Wait();
  }

  std::string root_;
  std::string workspace_;
  std::string base_;
  std::unique_ptr<BusyboxImageAccess> images_;
  std::unique_ptr<LocalSandboxExecutor> executor_;
};

TEST_F(LocalSandboxImageTest, CapabilitiesFollowTheImageAccess) {
  EXPECT_TRUE(executor_->Capabilities().images);
  LocalSandboxOptions options;
  options.cgroups = LocalSandboxOptions::Cgroups::kOff;
  absl::StatusOr<std::unique_ptr<LocalSandboxExecutor>> plain =
      LocalSandboxExecutor::Create(options);
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_FALSE((*plain)->Capabilities().images);
  // Without image access an image is refused before anything runs...
  RecordingSink sink;
  absl::StatusOr<std::unique_ptr<Execution>> started =
      (*plain)->Start(Request(AddImage("plain"), "echo ran"), &sink);
  EXPECT_TRUE(absl::IsInvalidArgument(started.status())) << started.status();
  // "host" is the host's root filesystem, as "" is, with or without images.
  for (LocalSandboxExecutor* executor : {plain->get(), executor_.get()}) {
    RecordingSink host_sink;
    v1::ExecRequest on_host = Request("host", "test -d /usr/lib && echo host");
    absl::StatusOr<std::unique_ptr<Execution>> ran =
        executor->Start(on_host, &host_sink);
    ASSERT_TRUE(ran.ok()) << ran.status();
    EXPECT_EQ((*ran)->Wait().status(), v1::EXITED);
    EXPECT_THAT(host_sink.Lines(v1::LogLine::STDOUT), ElementsAre("host"));
  }
  // ... unless the engine passes its own with the request.
  HostWorkspaceOptions host;
  host.images = images_.get();
  started = (*plain)->StartStaged(Request(AddImage("plain2"), "echo ran"),
                                  &sink, host);
  ASSERT_TRUE(started.ok()) << started.status();
  v1::ExecResult result = (*started)->Wait();
  EXPECT_EQ(result.status(), v1::EXITED) << result.message();
  EXPECT_THAT(sink.Lines(v1::LogLine::STDOUT), ElementsAre("ran"));
}

TEST_F(LocalSandboxImageTest, TheRootIsTheImageNotTheHost) {
  RecordingSink sink;
  v1::ExecResult result = Run(Request(AddImage("root"),
                                      "ls / | tr '\\n' ' '; echo; "
                                      "test -e /lib || echo no-host-lib; "
                                      "test -e /usr/bin/env && echo image-env; "
                                      "cat /etc/passwd | head -1; pwd"),
                              &sink);
  EXPECT_EQ(result.status(), v1::EXITED) << result.message();
  EXPECT_EQ(result.exit_code(), 0);
  EXPECT_THAT(sink.Lines(v1::LogLine::STDOUT),
              ElementsAre("bin dev etc home proc root tmp usr workspace ",
                          "no-host-lib", "image-env",
                          "root:x:0:0:root:/root:/bin/sh", "/workspace"));
}

TEST_F(LocalSandboxImageTest, WhiteoutsAndOpaqueDirectoriesAreHonoured) {
  std::string lower = NewLayer("lower");
  ASSERT_TRUE(WriteLayerFile(lower, "etc/gone.txt", "gone").ok());
  ASSERT_TRUE(WriteLayerFile(lower, "data/old/a.txt", "a").ok());
  ASSERT_TRUE(WriteLayerFile(lower, "data/old/b.txt", "b").ok());
  ASSERT_TRUE(WriteLayerFile(lower, "data/keep.txt", "keep").ok());
  std::string upper = NewLayer("upper");
  absl::Status whiteout = MakeWhiteout(upper, "etc/gone.txt");
  ASSERT_TRUE(whiteout.ok()) << whiteout;
  absl::Status opaque = MakeOpaqueDir(upper, "data/old");
  ASSERT_TRUE(opaque.ok()) << opaque;
  ASSERT_TRUE(WriteLayerFile(upper, "data/old/c.txt", "c").ok());
  RecordingSink sink;
  v1::ExecResult result =
      Run(Request(AddImage("layered", {lower, upper}),
                  "ls /data/old | tr '\\n' ' '; echo; "
                  "test -e /etc/gone.txt && echo present || echo absent; "
                  "ls -a /etc | grep -c gone; cat /data/keep.txt; echo"),
          &sink);
  EXPECT_EQ(result.status(), v1::EXITED) << result.message();
  EXPECT_THAT(sink.Lines(v1::LogLine::STDOUT),
              ElementsAre("c.txt ", "absent", "0", "keep"));
}

TEST_F(LocalSandboxImageTest, WritesNeverReachTheSharedLayers) {
  std::string extra = NewLayer("extra");
  ASSERT_TRUE(WriteLayerFile(extra, "data/file.txt", "original").ok());
  std::string image = AddImage("writes", {extra});
  const std::vector<std::string> base_before = TreeSnapshot(base_);
  const std::vector<std::string> extra_before = TreeSnapshot(extra);
  ASSERT_FALSE(base_before.empty());
  RecordingSink sink;
  v1::ExecResult result =
      Run(Request(image,
                  "set -e; echo new > /etc/new.txt; echo more >> /etc/passwd; "
                  "echo changed > /data/file.txt; rm /bin/cat; rm -r /data; "
                  "mkdir -p /opt/made; echo x > /root/x; chmod 700 /etc; "
                  "echo out > out.txt; echo done"),
          &sink);
  EXPECT_EQ(result.status(), v1::EXITED) << result.message();
  EXPECT_EQ(result.exit_code(), 0);
  EXPECT_THAT(sink.Lines(v1::LogLine::STDOUT), ElementsAre("done"));
  EXPECT_EQ(ReadFile(workspace_ + "/out.txt"), "out\n");
  EXPECT_EQ(TreeSnapshot(base_), base_before);
  EXPECT_EQ(TreeSnapshot(extra), extra_before);
  // The next task of the same image starts from the image again.
  RecordingSink again;
  result = Run(Request(image,
                       "test -e /etc/new.txt && echo leaked || echo clean; "
                       "cat /data/file.txt; echo; test -x /bin/cat && echo "
                       "cat-ok; grep -c more /etc/passwd"),
               &again);
  EXPECT_EQ(result.status(), v1::EXITED) << result.message();
  EXPECT_THAT(again.Lines(v1::LogLine::STDOUT),
              ElementsAre("clean", "original", "cat-ok", "0"));
}

TEST_F(LocalSandboxImageTest, ImageEnvWorkdirAndUserAreApplied) {
  std::string image =
      AddImage("config", {}, {"FROM_IMAGE=image", "SHARED=image", "PATH=/bin"},
               "/src", "builder");
  std::filesystem::create_directories(workspace_ + "/sub");
  v1::ExecRequest request =
      Request(image,
              "echo \"$FROM_IMAGE $SHARED $PATH\"; pwd; id -u; id -g; "
              "id -G; echo w > made.txt; ls -n ../made.txt | "
              "tr -s ' ' | cut -d' ' -f3 2>/dev/null || true");
  (*request.mutable_env())["SHARED"] = "request";
  request.set_workdir("sub");
  RecordingSink sink;
  v1::ExecResult result = Run(request, &sink);
  EXPECT_EQ(result.status(), v1::EXITED) << result.message();
  std::vector<std::string> lines = sink.Lines(v1::LogLine::STDOUT);
  ASSERT_GE(lines.size(), 5u) << result.message();
  EXPECT_EQ(lines[0], "image request /bin");
  EXPECT_EQ(lines[1], "/src/sub");
  EXPECT_EQ(lines[2], "1000");
  EXPECT_EQ(lines[3], "1000");
  EXPECT_EQ(lines[4], "1000 2000");
  // The image's user could write its workspace (given to it beforehand).
  EXPECT_EQ(ReadFile(workspace_ + "/sub/made.txt"), "w\n");
  struct stat st;
  ASSERT_EQ(stat((workspace_ + "/sub/made.txt").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 1000u);
}

TEST_F(LocalSandboxImageTest, NumericAndNamedUsersAndGroups) {
  struct Case {
    std::string user;
    std::string expected;
  };
  for (const Case& c : std::vector<Case>{{"", "0 0 0"},
                                         {"1234:5678", "1234 5678 5678"},
                                         {"1000", "1000 1000 1000 2000"},
                                         {"builder:tools", "1000 2000 2000"},
                                         {"nobody", "65534 65534 65534"}}) {
    std::string image =
        AddImage(absl::StrCat("user", c.user), {}, {}, "", c.user);
    RecordingSink sink;
    v1::ExecResult result =
        Run(Request(image, "echo $(id -u) $(id -g) $(id -G)"), &sink);
    EXPECT_EQ(result.status(), v1::EXITED) << c.user << result.message();
    EXPECT_THAT(sink.Lines(v1::LogLine::STDOUT), ElementsAre(c.expected))
        << "user '" << c.user << "'";
  }
}

TEST_F(LocalSandboxImageTest, AnUnknownUserFailsTheTask) {
  for (std::string user : {"ghost", "builder:nogrp", ":1"}) {
    std::string image = AddImage(absl::StrCat("bad", user), {}, {}, "", user);
    RecordingSink sink;
    v1::ExecResult result =
        Run(Request(image, "echo ran > ran.txt; echo ran"), &sink);
    EXPECT_EQ(result.status(), v1::INPUTS_FAILED) << user;
    EXPECT_TRUE(absl::StartsWith(result.message(),
                                 absl::StrCat("image '", image, "': ")))
        << result.message();
    EXPECT_TRUE(sink.Lines(v1::LogLine::STDOUT).empty());
    EXPECT_FALSE(std::filesystem::exists(workspace_ + "/ran.txt"));
  }
  RecordingSink sink;
  v1::ExecResult result =
      Run(Request(AddImage("ghost", {}, {}, "", "ghost"), "echo ran"), &sink);
  EXPECT_THAT(
      result.message(),
      HasSubstr("image user 'ghost' is not in the image's /etc/passwd"));
}

TEST_F(LocalSandboxImageTest, AnImageThatCannotBePreparedFailsTheTask) {
  const std::string reference = TestReference("registry.test/missing");
  images_->AddFailing(reference,
                      absl::NotFoundError("manifest unknown to the registry"));
  // Host-workspace mode: the command would leave a file behind.
  RecordingSink sink;
  v1::ExecResult result =
      Run(Request(reference, "echo ran > ran.txt; echo ran"), &sink);
  EXPECT_EQ(result.status(), v1::INPUTS_FAILED);
  EXPECT_EQ(result.message(), absl::StrCat("image '", reference,
                                           "': manifest unknown to the "
                                           "registry"));
  EXPECT_TRUE(sink.Lines(v1::LogLine::STDOUT).empty());
  EXPECT_FALSE(std::filesystem::exists(workspace_ + "/ran.txt"))
      << "the command ran (on the host?)";
  // Location-independent mode: no workspace is even made.
  v1::ExecRequest free = Request(reference, "echo ran");
  free.clear_workspace();
  RecordingSink sink2;
  result = Run(free, &sink2);
  EXPECT_EQ(result.status(), v1::INPUTS_FAILED);
  EXPECT_TRUE(std::filesystem::is_empty(root_ + "/work"));
  // An image without layers is refused the same way.
  PreparedImage empty;
  const std::string scratch = TestReference("scratch");
  images_->Add(scratch, empty);
  RecordingSink sink3;
  result = Run(Request(scratch, "echo ran"), &sink3);
  EXPECT_EQ(result.status(), v1::INPUTS_FAILED);
  EXPECT_THAT(result.message(), HasSubstr("the image has no layers"));
}

TEST_F(LocalSandboxImageTest, ImageSymlinksNeverReachTheHost) {
  // Mountpoints of the sandbox (the working directory, /dev) that the image
  // makes symlinks to host paths resolve inside the image: the host path
  // exists on the host but not in the image, so setting up fails, and
  // nothing is made or mounted on the host.
  const std::string host_target = root_ + "/host-escape";
  ASSERT_EQ(mkdir(host_target.c_str(), 0755), 0);
  for (std::string link : {"src", "dev"}) {
    std::string hostile = NewLayer(absl::StrCat("hostile-", link));
    ASSERT_EQ(symlink(host_target.c_str(), (hostile + "/" + link).c_str()), 0);
    std::string image =
        AddImage(absl::StrCat("hostile-", link), {hostile}, {}, "/src/ws");
    RecordingSink sink;
    v1::ExecResult result = Run(Request(image, "echo ran"), &sink);
    EXPECT_EQ(result.status(), v1::SETUP_FAILED) << result.message();
    EXPECT_TRUE(sink.Lines(v1::LogLine::STDOUT).empty());
    EXPECT_TRUE(std::filesystem::is_empty(host_target))
        << "/" << link << " reached the host";
  }
  // A symlink to a directory of the image is followed within the image.
  std::string inside = NewLayer("inside");
  ASSERT_TRUE(WriteLayerFile(inside, "opt/app/README", "app").ok());
  ASSERT_EQ(symlink("/opt/app", (inside + "/src").c_str()), 0);
  RecordingSink sink;
  v1::ExecResult result =
      Run(Request(AddImage("inside", {inside}, {}, "/src"),
                  "echo hi > f.txt; test -e /opt/app/f.txt && echo via-link"),
          &sink);
  EXPECT_EQ(result.status(), v1::EXITED) << result.message();
  EXPECT_THAT(sink.Lines(v1::LogLine::STDOUT), ElementsAre("via-link"));
  EXPECT_EQ(ReadFile(workspace_ + "/f.txt"), "hi\n");
  // A symlinked /etc/passwd is not followed to resolve a user.
  std::string linked = NewLayer("linked");
  ASSERT_EQ(mkdir((linked + "/etc").c_str(), 0755), 0);
  ASSERT_EQ(symlink("/etc/passwd", (linked + "/etc/passwd").c_str()), 0);
  RecordingSink sink2;
  result =
      Run(Request(AddImage("linked", {linked}, {}, "", "builder"), "echo ran"),
          &sink2);
  EXPECT_EQ(result.status(), v1::INPUTS_FAILED);
  EXPECT_THAT(result.message(), HasSubstr("symlink"));
}

// Volumes (LocalSandboxOptions.volumes): host directories bound read-write
// at their targets, after the workspace (a volume above the working
// directory covers it); a symlinked source and host mode are refused.
TEST_F(LocalSandboxImageTest, VolumesAreWritableBindsAtTheirTargets) {
  ASSERT_EQ(mkdir((root_ + "/vol-a").c_str(), 0755), 0);
  ASSERT_EQ(mkdir((root_ + "/vol-b").c_str(), 0755), 0);
  std::ofstream(root_ + "/vol-a/in.txt") << "from the host";
  LocalSandboxOptions options;
  options.work_root = root_ + "/work";
  options.hidden_paths = DefaultHiddenPaths("");
  options.cgroups = LocalSandboxOptions::Cgroups::kOff;
  options.images = images_.get();
  options.volumes = {{root_ + "/vol-b", "/workspace"},
                     {root_ + "/vol-a", "/data/a"}};
  auto executor = LocalSandboxExecutor::Create(options);
  ASSERT_TRUE(executor.ok()) << executor.status();
  RecordingSink sink;
  v1::ExecRequest request =
      Request(AddImage("vol"),
              "cat /data/a/in.txt && echo && echo out > /data/a/out.txt && "
              "echo cwd > here.txt && pwd");
  auto execution = (*executor)->Start(request, &sink);
  ASSERT_TRUE(execution.ok()) << execution.status();
  v1::ExecResult result = (*execution)->Wait();
  ASSERT_EQ(result.status(), v1::EXITED) << result.message();
  EXPECT_EQ(result.exit_code(), 0);
  EXPECT_THAT(sink.Lines(v1::LogLine::STDOUT),
              ElementsAre("from the host", "/workspace"));
  EXPECT_EQ(ReadFile(root_ + "/vol-a/out.txt"), "out\n");
  // The volume at /workspace covers the workspace mounted there.
  EXPECT_EQ(ReadFile(root_ + "/vol-b/here.txt"), "cwd\n");
  EXPECT_FALSE(std::filesystem::exists(workspace_ + "/here.txt"));

  // A source reached through a symlink is refused before anything runs.
  ASSERT_EQ(symlink(root_.c_str(), (root_ + "/link").c_str()), 0);
  options.volumes = {{root_ + "/link/vol-a", "/data"}};
  auto linked = LocalSandboxExecutor::Create(options);
  ASSERT_TRUE(linked.ok()) << linked.status();
  auto refused = (*linked)->Start(Request(AddImage("vol2"), "true"), &sink);
  EXPECT_TRUE(absl::IsInvalidArgument(refused.status())) << refused.status();
  EXPECT_THAT(std::string(refused.status().message()),
              HasSubstr("without symlinks"));
  // A target under /proc is refused too.
  options.volumes = {{root_ + "/vol-a", "/proc/x"}};
  auto proc = LocalSandboxExecutor::Create(options);
  ASSERT_TRUE(proc.ok());
  refused = (*proc)->Start(Request(AddImage("vol3"), "true"), &sink);
  EXPECT_TRUE(absl::IsInvalidArgument(refused.status())) << refused.status();
  // Host mode never mounts volumes: refused.
  options.volumes = {{root_ + "/vol-a", "/data"}};
  auto host = LocalSandboxExecutor::Create(options);
  ASSERT_TRUE(host.ok());
  v1::ExecRequest host_request = Request("", "true");
  refused = (*host)->Start(host_request, &sink);
  EXPECT_TRUE(absl::IsInvalidArgument(refused.status())) << refused.status();
}

// CancelWithGrace: the SIGKILL comes after the given grace, not the
// request's kill_grace (a kubelet honours a deletion's grace period).
TEST_F(LocalSandboxImageTest, CancelWithGraceReplacesTheKillGrace) {
  v1::ExecRequest request =
      Request(AddImage("grace"), "trap '' TERM; echo started; sleep 60");
  request.mutable_limits()->mutable_kill_grace()->set_seconds(40);
  RecordingSink sink;
  auto execution = executor_->Start(request, &sink);
  ASSERT_TRUE(execution.ok()) << execution.status();
  ASSERT_TRUE(sink.AwaitLines(1, absl::Seconds(20)));
  absl::Time start = absl::Now();
  CancelWithGrace(execution->get(), absl::Milliseconds(500));
  v1::ExecResult result = (*execution)->Wait();
  absl::Duration took = absl::Now() - start;
  EXPECT_EQ(result.status(), v1::CANCELLED) << result.message();
  EXPECT_GE(took, absl::Milliseconds(450));
  EXPECT_LT(took, absl::Seconds(20)) << "the request's 40 s grace was used";
}

}  // namespace
}  // namespace kiln
