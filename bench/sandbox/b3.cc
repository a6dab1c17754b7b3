// Benchmark B3: the per-task cost of LocalSandboxExecutor running `true`,
// against `bwrap --ro-bind / / --unshare-all true` and a plain fork/exec of
// `true`, interleaved round by round on the same machine. Prints means,
// medians and ratios (of medians) and writes bench/results/b3.json.
//
//   bazel run -c opt //bench/sandbox:b3 -- [--n=200] [--out=PATH]
#include <spawn.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "executors/local_sandbox/local_sandbox_executor.h"

extern char** environ;

namespace kiln {
namespace {

class DiscardSink : public OutputSink {
 public:
  void OnLine(v1::LogLine::Stream, absl::string_view, absl::Time) override {}
};

struct Stats {
  double mean_ms = 0;
  double median_ms = 0;
};

Stats Summarize(std::vector<double> ms) {
  Stats stats;
  if (ms.empty()) return stats;
  double sum = 0;
  for (double v : ms) sum += v;
  stats.mean_ms = sum / ms.size();
  std::sort(ms.begin(), ms.end());
  stats.median_ms = ms.size() % 2 == 1
                        ? ms[ms.size() / 2]
                        : (ms[ms.size() / 2 - 1] + ms[ms.size() / 2]) / 2;
  return stats;
}

// posix_spawn + waitpid; returns the exit status or -1.
int SpawnAndWait(const std::vector<std::string>& args) {
  std::vector<char*> argv;
  for (const std::string& a : args)
    argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  pid_t pid;
  if (posix_spawn(&pid, argv[0], nullptr, nullptr, argv.data(), environ) != 0) {
    return -1;
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

double Ms(absl::Duration d) { return absl::ToDoubleMilliseconds(d); }

int Main(int argc, char** argv) {
  int n = 200;
  bool share_network = false;  // diagnostic: skip the new net namespace
  std::string out;
  if (const char* ws = getenv("BUILD_WORKSPACE_DIRECTORY")) {
    out = absl::StrCat(ws, "/bench/results/b3.json");
  } else {
    out = "bench/results/b3.json";
  }
  for (int i = 1; i < argc; ++i) {
    absl::string_view arg = argv[i];
    if (absl::ConsumePrefix(&arg, "--n=")) {
      if (!absl::SimpleAtoi(arg, &n) || n <= 0) {
        std::fprintf(stderr, "bad --n\n");
        return 2;
      }
    } else if (arg == "--share-network") {
      share_network = true;
    } else if (absl::ConsumePrefix(&arg, "--out=")) {
      out = std::string(arg);
    } else {
      std::fprintf(stderr,
                   "usage: b3 [--n=200] [--out=PATH] [--share-network]\n");
      return 2;
    }
  }

  LocalSandboxOptions options;
  options.hidden_paths = DefaultHiddenPaths("");
  options.cgroups = LocalSandboxOptions::Cgroups::kOff;
  auto executor = LocalSandboxExecutor::Create(options);
  if (!executor.ok()) {
    std::fprintf(stderr, "%s\n", executor.status().ToString().c_str());
    return 1;
  }
  std::string workspace = std::filesystem::temp_directory_path() /
                          absl::StrCat("kiln-b3-", getpid());
  std::filesystem::create_directories(workspace);
  v1::ExecRequest request;
  request.add_argv("/bin/true");
  request.set_workspace(workspace);
  request.set_network(share_network);
  DiscardSink sink;

  const std::vector<std::string> bwrap = {
      "/usr/bin/bwrap", "--ro-bind", "/", "/", "--unshare-all", "/bin/true"};
  const std::vector<std::string> spawn = {"/bin/true"};
  // Warm up each path once (page cache, lazy binding).
  SpawnAndWait(bwrap);
  SpawnAndWait(spawn);
  (*executor)->Start(request, &sink).value()->Wait();

  std::vector<double> kiln_ms, bwrap_ms, spawn_ms;
  int failures = 0;
  for (int i = 0; i < n; ++i) {
    absl::Time t0 = absl::Now();
    auto execution = (*executor)->Start(request, &sink);
    if (!execution.ok()) {
      std::fprintf(stderr, "%s\n", execution.status().ToString().c_str());
      return 1;
    }
    v1::ExecResult result = (*execution)->Wait();
    absl::Time t1 = absl::Now();
    if (result.status() != v1::EXITED || result.exit_code() != 0) {
      ++failures;
      std::fprintf(stderr, "kiln: %s\n", result.ShortDebugString().c_str());
    }
    kiln_ms.push_back(Ms(t1 - t0));

    t0 = absl::Now();
    if (SpawnAndWait(bwrap) != 0) ++failures;
    bwrap_ms.push_back(Ms(absl::Now() - t0));

    t0 = absl::Now();
    if (SpawnAndWait(spawn) != 0) ++failures;
    spawn_ms.push_back(Ms(absl::Now() - t0));
  }
  std::filesystem::remove_all(workspace);

  Stats kiln = Summarize(kiln_ms), bw = Summarize(bwrap_ms),
        sp = Summarize(spawn_ms);
  double ratio_bwrap = kiln.median_ms / bw.median_ms;
  double ratio_spawn = kiln.median_ms / sp.median_ms;
  std::printf("B3: per-task cost of running `true` (n=%d, interleaved)\n", n);
  std::printf("  %-28s mean %7.3f ms  median %7.3f ms\n", "kiln local-sandbox",
              kiln.mean_ms, kiln.median_ms);
  std::printf("  %-28s mean %7.3f ms  median %7.3f ms\n", "bwrap --unshare-all",
              bw.mean_ms, bw.median_ms);
  std::printf("  %-28s mean %7.3f ms  median %7.3f ms\n", "plain fork/exec",
              sp.mean_ms, sp.median_ms);
  std::printf(
      "  ratio kiln/bwrap %.3f (target <= 0.5), kiln/spawn %.3f "
      "(target <= 1.5)\n",
      ratio_bwrap, ratio_spawn);
  if (failures > 0) std::printf("  failures: %d\n", failures);

  std::string json = absl::StrFormat(
      "{\"id\":\"B3\",\"n\":%d,\"kiln_ms\":%.4f,\"bwrap_ms\":%.4f,"
      "\"spawn_ms\":%.4f,\"kiln_mean_ms\":%.4f,\"bwrap_mean_ms\":%.4f,"
      "\"spawn_mean_ms\":%.4f,\"ratio_bwrap\":%.4f,\"ratio_spawn\":%.4f,"
      "\"statistic\":\"median\",\"target\":\"<=0.5x bwrap, <=1.5x spawn\","
      "\"failures\":%d,\"date\":\"%s\"}\n",
      n, kiln.median_ms, bw.median_ms, sp.median_ms, kiln.mean_ms, bw.mean_ms,
      sp.mean_ms, ratio_bwrap, ratio_spawn, failures,
      absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", absl::Now(), absl::UTCTimeZone()));
  std::filesystem::create_directories(std::filesystem::path(out).parent_path());
  std::ofstream(out) << json;
  std::printf("wrote %s\n", out.c_str());
  return failures == 0 ? 0 : 1;
}

}  // namespace
}  // namespace kiln

int main(int argc, char** argv) { return kiln::Main(argc, argv); }
