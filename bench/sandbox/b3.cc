// Benchmark B3: the per-task cost of LocalSandboxExecutor running `true`,
// against `bwrap --ro-bind / / --unshare-all true` and a plain fork/exec of
// `true`, interleaved round by round on the same machine. Prints means,
// medians and ratios (of medians) and writes bench/results/b3.json. With
// --before=B3, the baseline build of this same program (built from the
// BEFORE tree with KILN_B3_BASELINE defined: bench/sandbox/run_b3.sh) runs
// as a --serve child and its sandbox is timed in the same rounds. When the
// executor can share one empty network namespace among tasks, that
// configuration is measured too and is the one reported as kiln's.
//
//   bazel run -c opt //bench/sandbox:b3 -- [--n=200] [--out=PATH]
#include <fcntl.h>
#include <limits.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
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

absl::StatusOr<std::unique_ptr<LocalSandboxExecutor>> MakeExecutor(
    bool shared_empty_network) {
  LocalSandboxOptions options;
  options.hidden_paths = DefaultHiddenPaths("");
  options.cgroups = LocalSandboxOptions::Cgroups::kOff;
#ifndef KILN_B3_BASELINE
  if (shared_empty_network) {
    options.network_namespaces =
        LocalSandboxOptions::NetworkNamespaces::kSharedEmpty;
  }
#endif
  return LocalSandboxExecutor::Create(options);
}

// One sandboxed `true`: its wall time in ms, or -1 when it did not exit 0.
double RunOnce(LocalSandboxExecutor* executor, const v1::ExecRequest& request) {
  DiscardSink sink;
  absl::Time t0 = absl::Now();
  auto execution = executor->Start(request, &sink);
  if (!execution.ok()) {
    std::fprintf(stderr, "%s\n", execution.status().ToString().c_str());
    return -1;
  }
  v1::ExecResult result = (*execution)->Wait();
  double ms = Ms(absl::Now() - t0);
  if (result.status() != v1::EXITED || result.exit_code() != 0) {
    std::fprintf(stderr, "kiln: %s\n", result.ShortDebugString().c_str());
    return -1;
  }
  return ms;
}

// A child running this benchmark (or its BEFORE build) with --serve,
// driven round by round over pipes: it reads one byte per round and
// answers with the ms of one task.
class ServedSandbox {
 public:
  ~ServedSandbox() {
    if (to_ >= 0) close(to_);
    if (from_ != nullptr) fclose(from_);
    if (pid_ > 0) waitpid(pid_, nullptr, 0);
  }
  bool Start(const std::string& binary, const char* mode) {
    int in[2], out[2];
    if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0) return false;
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, in[0], 0);
    posix_spawn_file_actions_adddup2(&actions, out[1], 1);
    std::vector<char*> argv = {const_cast<char*>(binary.c_str()),
                               const_cast<char*>(mode), nullptr};
    int rc = posix_spawn(&pid_, binary.c_str(), &actions, nullptr, argv.data(),
                         environ);
    posix_spawn_file_actions_destroy(&actions);
    close(in[0]);
    close(out[1]);
    to_ = in[1];
    from_ = fdopen(out[0], "r");
    return rc == 0 && from_ != nullptr;
  }
  // -1 on failure.
  double Round() {
    if (write(to_, "r", 1) != 1) return -1;
    char line[64];
    if (fgets(line, sizeof(line), from_) == nullptr) return -1;
    double ms = 0;
    if (!absl::SimpleAtod(absl::StripAsciiWhitespace(line), &ms)) return -1;
    return ms;
  }

 private:
  pid_t pid_ = -1;
  int to_ = -1;
  FILE* from_ = nullptr;
};

std::string NewWorkspace() {
  std::string workspace = std::filesystem::temp_directory_path() /
                          absl::StrCat("kiln-b3-", getpid());
  std::filesystem::create_directories(workspace);
  return workspace;
}

v1::ExecRequest TrueRequest(const std::string& workspace, bool network) {
  v1::ExecRequest request;
  request.add_argv("/bin/true");
  request.set_workspace(workspace);
  request.set_network(network);
  return request;
}

// --serve / --serve=shared: the served side of ServedSandbox.
int Serve(bool shared_empty_network, bool host_network = false) {
  auto executor = MakeExecutor(shared_empty_network);
  if (!executor.ok()) {
    std::fprintf(stderr, "%s\n", executor.status().ToString().c_str());
    return 1;
  }
  std::string workspace = NewWorkspace();
  v1::ExecRequest request = TrueRequest(workspace, host_network);
  char c;
  while (read(0, &c, 1) == 1) {
    double ms = RunOnce(executor->get(), request);
    std::printf("%.4f\n", ms);
    std::fflush(stdout);
  }
  std::filesystem::remove_all(workspace);
  return 0;
}

int Main(int argc, char** argv) {
  int n = 200;
  bool share_network = false;  // diagnostic: skip the new net namespace
  std::string out, before;
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
    } else if (arg == "--serve") {
      return Serve(false);
    } else if (arg == "--serve=shared") {
      return Serve(true);
    } else if (arg == "--serve=host-network") {
      return Serve(false, true);
    } else if (arg == "--share-network") {
      share_network = true;
    } else if (absl::ConsumePrefix(&arg, "--out=")) {
      out = std::string(arg);
    } else if (absl::ConsumePrefix(&arg, "--before=")) {
      before = std::string(arg);
    } else {
      std::fprintf(stderr,
                   "usage: b3 [--n=200] [--out=PATH] [--before=B3_BINARY] "
                   "[--share-network] | --serve\n");
      return 2;
    }
  }

  // Every kiln configuration runs in a child of its own (this program with
  // --serve), so that BEFORE and AFTER are measured alike.
  char self[PATH_MAX];
  ssize_t self_len = readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (self_len <= 0) {
    std::fprintf(stderr, "readlink /proc/self/exe failed\n");
    return 1;
  }
  const std::string self_path(self, static_cast<size_t>(self_len));
  ServedSandbox after;
  if (!after.Start(self_path,
                   share_network ? "--serve=host-network" : "--serve")) {
    std::fprintf(stderr, "cannot start %s --serve\n", self_path.c_str());
    return 1;
  }
  // The same executor with tasks in one shared empty network namespace.
  std::unique_ptr<ServedSandbox> shared;
#ifndef KILN_B3_BASELINE
  if (auto s = MakeExecutor(true); s.ok() && (*s)->shared_network_active()) {
    shared = std::make_unique<ServedSandbox>();
    if (!shared->Start(self_path, "--serve=shared")) {
      std::fprintf(stderr, "cannot start %s --serve=shared\n",
                   self_path.c_str());
      return 1;
    }
  } else {
    std::fprintf(stderr, "shared empty network namespace unavailable: %s\n",
                 s.ok() ? (*s)->network_fallback_reason().c_str()
                        : s.status().ToString().c_str());
  }
#endif
  ServedSandbox baseline;
  if (!before.empty() && !baseline.Start(before, "--serve")) {
    std::fprintf(stderr, "cannot start %s --serve\n", before.c_str());
    return 1;
  }

  const std::vector<std::string> bwrap = {
      "/usr/bin/bwrap", "--ro-bind", "/", "/", "--unshare-all", "/bin/true"};
  const std::vector<std::string> spawn = {"/bin/true"};
  // Warm up each path once (page cache, lazy binding).
  SpawnAndWait(bwrap);
  SpawnAndWait(spawn);
  after.Round();
  if (shared) shared->Round();
  if (!before.empty()) baseline.Round();

  std::vector<double> kiln_ms, shared_ms, before_ms, bwrap_ms, spawn_ms;
  int failures = 0;
  // One measurement per contender and round, in an order shuffled every
  // round: a contender that leaves work behind (the kernel tears a network
  // namespace down asynchronously) must not always slow the same neighbour,
  // as a rotated order would (it keeps neighbours together).
  std::vector<std::function<void()>> contenders;
  auto record = [&failures](std::vector<double>* into, double ms) {
    if (ms < 0) {
      ++failures;
    } else {
      into->push_back(ms);
    }
  };
  contenders.push_back([&] { record(&kiln_ms, after.Round()); });
  if (shared) {
    contenders.push_back([&] { record(&shared_ms, shared->Round()); });
  }
  if (!before.empty()) {
    contenders.push_back([&] { record(&before_ms, baseline.Round()); });
  }
  contenders.push_back([&] {
    absl::Time t0 = absl::Now();
    if (SpawnAndWait(bwrap) != 0) ++failures;
    bwrap_ms.push_back(Ms(absl::Now() - t0));
  });
  contenders.push_back([&] {
    absl::Time t0 = absl::Now();
    if (SpawnAndWait(spawn) != 0) ++failures;
    spawn_ms.push_back(Ms(absl::Now() - t0));
  });
  std::vector<size_t> order(contenders.size());
  for (size_t j = 0; j < order.size(); ++j) order[j] = j;
  std::mt19937 random(20261203);  // fixed: runs are comparable
  for (int i = 0; i < n; ++i) {
    std::shuffle(order.begin(), order.end(), random);
    for (size_t j : order) contenders[j]();
  }

  Stats kiln = Summarize(kiln_ms), sh = Summarize(shared_ms),
        bef = Summarize(before_ms), bw = Summarize(bwrap_ms),
        sp = Summarize(spawn_ms);
  std::printf("B3: per-task cost of running `true` (n=%d, interleaved)\n", n);
  auto row = [](const char* name, const Stats& s) {
    std::printf("  %-34s mean %7.3f ms  median %7.3f ms\n", name, s.mean_ms,
                s.median_ms);
  };
  row("kiln (default options)", kiln);
  if (shared) row("kiln (shared empty netns)", sh);
  if (!before.empty()) row("kiln BEFORE (baseline build)", bef);
  row("bwrap --unshare-all", bw);
  row("plain fork/exec", sp);
  auto ratio = [](const Stats& a, const Stats& b) {
    return b.median_ms > 0 ? a.median_ms / b.median_ms : 0.0;
  };
  std::printf("  kiln/bwrap %.3f (target <= 0.7), kiln/spawn %.3f (reported)\n",
              ratio(kiln, bw), ratio(kiln, sp));
  if (shared) {
    std::printf("  shared netns: /bwrap %.3f, /spawn %.3f\n", ratio(sh, bw),
                ratio(sh, sp));
  }
  if (!before.empty()) {
    std::printf(
        "  BEFORE/bwrap %.3f, BEFORE/spawn %.3f, AFTER/BEFORE %.3f "
        "(shared netns %.3f)\n",
        ratio(bef, bw), ratio(bef, sp), ratio(kiln, bef), ratio(sh, bef));
  }
  if (failures > 0) std::printf("  failures: %d\n", failures);

  std::string json = absl::StrFormat(
      "{\"id\":\"B3\",\"n\":%d,\"statistic\":\"median\","
      "\"kiln_ms\":%.4f,\"kiln_shared_netns_ms\":%.4f,\"before_ms\":%.4f,"
      "\"bwrap_ms\":%.4f,\"spawn_ms\":%.4f,"
      "\"kiln_mean_ms\":%.4f,\"before_mean_ms\":%.4f,\"bwrap_mean_ms\":%.4f,"
      "\"spawn_mean_ms\":%.4f,\"ratio_bwrap\":%.4f,\"ratio_spawn\":%.4f,"
      "\"shared_netns_ratio_bwrap\":%.4f,"
      "\"shared_netns_ratio_spawn\":%.4f,"
      "\"before_ratio_bwrap\":%.4f,\"before_ratio_spawn\":%.4f,"
      "\"after_over_before\":%.4f,\"shared_netns_after_over_before\":%.4f,"
      "\"target\":\"<=0.7x bwrap (stretch 0.5x); plain spawn reported\","
      "\"failures\":%d,\"date\":\"%s\"}\n",
      n, kiln.median_ms, sh.median_ms, bef.median_ms, bw.median_ms,
      sp.median_ms, kiln.mean_ms, bef.mean_ms, bw.mean_ms, sp.mean_ms,
      ratio(kiln, bw), ratio(kiln, sp), ratio(sh, bw), ratio(sh, sp),
      ratio(bef, bw), ratio(bef, sp), ratio(kiln, bef), ratio(sh, bef),
      failures,
      absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", absl::Now(), absl::UTCTimeZone()));
  std::filesystem::create_directories(std::filesystem::path(out).parent_path());
  std::ofstream(out) << json;
  std::printf("wrote %s\n", out.c_str());
  return failures == 0 ? 0 : 1;
}

}  // namespace
}  // namespace kiln

int main(int argc, char** argv) { return kiln::Main(argc, argv); }
