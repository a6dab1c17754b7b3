// Sandbox start in image mode (report only, issue 14 / B7): the time to run
// `/bin/true` in a one-layer busybox image through LocalSandboxExecutor
// (overlay of the layer under a per-task tmpfs layer, fresh namespaces,
// init) against `crun run` of an OCI bundle whose rootfs is the same layer
// directory (read-only, crun's default namespaces), and the host mode of the
// sandbox for reference, interleaved round by round. Prints medians and
// writes bench/results/image_start.json. Both run without cgroups (kiln:
// Cgroups::kOff; crun: --cgroup-manager=disabled). crun refuses a host with
// cgroups in hybrid mode; run_image_start.sh then runs this binary in a
// private mount namespace with an empty tmpfs at /sys/fs/cgroup.
//
//   bazel run -c opt //bench/sandbox:image_start -- [--n=100] [--out=PATH]
#include <spawn.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "executors/local_sandbox/local_sandbox_executor.h"
#include "executors/testing/busybox_image.h"

extern char** environ;

namespace kiln {
namespace {

class DiscardSink : public OutputSink {
 public:
  void OnLine(v1::LogLine::Stream, absl::string_view, absl::Time) override {}
};

double Median(std::vector<double> ms) {
  if (ms.empty()) return 0;
  std::sort(ms.begin(), ms.end());
  return ms.size() % 2 == 1 ? ms[ms.size() / 2]
                            : (ms[ms.size() / 2 - 1] + ms[ms.size() / 2]) / 2;
}

int SpawnAndWait(const std::vector<std::string>& args) {
  std::vector<char*> argv;
  for (const std::string& a : args) {
    argv.push_back(const_cast<char*>(a.c_str()));
  }
  argv.push_back(nullptr);
  pid_t pid;
  if (posix_spawnp(&pid, argv[0], nullptr, nullptr, argv.data(), environ) !=
      0) {
    return -1;
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

double Ms(absl::Duration d) { return absl::ToDoubleMilliseconds(d); }

int Main(int argc, char** argv) {
  int n = 100;
  std::string out;
  if (const char* ws = getenv("BUILD_WORKSPACE_DIRECTORY")) {
    out = absl::StrCat(ws, "/bench/results/image_start.json");
  } else {
    out = "bench/results/image_start.json";
  }
  for (int i = 1; i < argc; ++i) {
    absl::string_view arg = argv[i];
    if (absl::ConsumePrefix(&arg, "--n=")) {
      if (!absl::SimpleAtoi(arg, &n) || n <= 0) {
        std::fprintf(stderr, "bad --n\n");
        return 2;
      }
    } else if (absl::ConsumePrefix(&arg, "--out=")) {
      out = std::string(arg);
    } else {
      std::fprintf(stderr, "usage: image_start [--n=100] [--out=PATH]\n");
      return 2;
    }
  }
  const std::string root = std::filesystem::temp_directory_path() /
                           absl::StrCat("kiln-image-start-", getpid());
  const std::string layers = root + "/layers";
  const std::string workspace = root + "/ws";
  const std::string bundle = root + "/bundle";
  std::filesystem::create_directories(layers);
  std::filesystem::create_directories(workspace);
  std::filesystem::create_directories(bundle);

  conformance::BusyboxImageAccess images(layers);
  absl::StatusOr<std::string> layer = images.BusyboxLayer("base");
  if (!layer.ok()) {
    std::fprintf(stderr, "%s\n", layer.status().ToString().c_str());
    return 1;
  }
  PreparedImage prepared;
  prepared.layer_dirs = {*layer};
  const std::string reference = conformance::TestReference("bench/busybox");
  images.Add(reference, prepared);

  // The crun bundle: crun's default spec, rootfs = the same layer.
  if (SpawnAndWait(
          {"sh", "-c", absl::StrCat("cd '", bundle, "' && crun spec")}) != 0) {
    std::fprintf(stderr, "crun spec failed (is crun installed?)\n");
    return 1;
  }
  std::ifstream in(bundle + "/config.json");
  std::stringstream spec;
  spec << in.rdbuf();
  std::string config = absl::StrReplaceAll(
      spec.str(),
      {{"\"terminal\": true", "\"terminal\": false"},
       {"\"sh\"", "\"/bin/true\""},
       {"\"path\": \"rootfs\"", absl::StrCat("\"path\": \"", *layer, "\"")}});
  std::ofstream(bundle + "/config.json") << config;

  LocalSandboxOptions options;
  options.hidden_paths = DefaultHiddenPaths("");
  options.cgroups = LocalSandboxOptions::Cgroups::kOff;
  options.images = &images;
  auto executor = LocalSandboxExecutor::Create(options);
  if (!executor.ok()) {
    std::fprintf(stderr, "%s\n", executor.status().ToString().c_str());
    return 1;
  }
  v1::ExecRequest image_request;
  image_request.add_argv("/bin/true");
  image_request.set_workspace(workspace);
  image_request.set_image(reference);
  v1::ExecRequest host_request = image_request;
  host_request.clear_image();
  DiscardSink sink;

  int failures = 0;
  auto run_kiln = [&](const v1::ExecRequest& request) {
    absl::Time t0 = absl::Now();
    auto execution = (*executor)->Start(request, &sink);
    if (!execution.ok()) {
      ++failures;
      return 0.0;
    }
    v1::ExecResult result = (*execution)->Wait();
    double ms = Ms(absl::Now() - t0);
    if (result.status() != v1::EXITED || result.exit_code() != 0) {
      ++failures;
      std::fprintf(stderr, "kiln: %s\n", result.ShortDebugString().c_str());
    }
    return ms;
  };
  int crun_id = 0;
  auto run_crun = [&]() {
    absl::Time t0 = absl::Now();
    int status = SpawnAndWait(
        {"crun", "--cgroup-manager=disabled", "run", "--bundle", bundle,
         absl::StrCat("kiln-bench-", getpid(), "-", crun_id++)});
    double ms = Ms(absl::Now() - t0);
    if (status != 0) ++failures;
    return ms;
  };
  // Warm up each path once.
  run_kiln(image_request);
  run_kiln(host_request);
  run_crun();
  failures = 0;

  std::vector<double> image_ms, host_ms, crun_ms;
  for (int i = 0; i < n; ++i) {
    image_ms.push_back(run_kiln(image_request));
    crun_ms.push_back(run_crun());
    host_ms.push_back(run_kiln(host_request));
  }
  std::filesystem::remove_all(root);

  const double image = Median(image_ms), crun = Median(crun_ms),
               host = Median(host_ms);
  std::printf("Sandbox start, `/bin/true` in a busybox image (n=%d, medians)\n",
              n);
  std::printf("  %-34s %8.3f ms\n", "kiln local-sandbox, image mode", image);
  std::printf("  %-34s %8.3f ms\n", "crun run (same rootfs)", crun);
  std::printf("  %-34s %8.3f ms\n", "kiln local-sandbox, host mode", host);
  std::printf("  ratio image/crun %.3f, image/host %.3f\n", image / crun,
              image / host);
  if (failures > 0) std::printf("  failures: %d\n", failures);
  std::string json = absl::StrFormat(
      "{\"id\":\"B7-sandbox-start\",\"n\":%d,\"kiln_image_ms\":%.4f,"
      "\"crun_ms\":%.4f,\"kiln_host_ms\":%.4f,\"ratio_crun\":%.4f,"
      "\"statistic\":\"median\",\"target\":\"report only\",\"failures\":%d,"
      "\"date\":\"%s\"}\n",
      n, image, crun, host, image / crun, failures,
      absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", absl::Now(), absl::UTCTimeZone()));
  std::filesystem::create_directories(std::filesystem::path(out).parent_path());
  std::ofstream(out) << json;
  std::printf("wrote %s\n", out.c_str());
  return failures == 0 ? 0 : 1;
}

}  // namespace
}  // namespace kiln

int main(int argc, char** argv) { return kiln::Main(argc, argv); }
