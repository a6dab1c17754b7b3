#include "bench/kube/b12_lib.h"

#include <algorithm>
#include <atomic>
#include <memory>
#include <thread>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "base/mutex.h"
#include "executors/kubernetes/pod_executor.h"
#include "kube/client.h"

namespace kiln {
namespace bench {

const char kB12Namespace[] = "b12";

namespace {

using json = nlohmann::json;
using kube::testing::FakeApiServer;

constexpr char kAgent[] = "registry.test/kiln-agent@sha256:aaaa";
constexpr char kImage[] = "registry.test/busybox@sha256:bbbb";
constexpr char kLine[] = "hello from b12";

double Ms(absl::Duration d) { return absl::ToDoubleMilliseconds(d); }

absl::StatusOr<std::shared_ptr<kube::Client>> NewClient(FakeApiServer* s) {
  kube::ClusterConfig config;
  config.server = s->url();
  config.context = "fake";
  auto client = kube::Client::Create(config);
  if (!client.ok()) return client.status();
  return std::shared_ptr<kube::Client>(std::move(*client));
}

// The scripted node, as executors/kubernetes/pod_executor_test.cc scripts
// it: each created pod is scheduled, its fetch init container completes,
// the task container runs, prints one line and exits 0 with the agent's
// result (no outputs) as its termination message. Each pod on a thread of
// its own, as a kubelet works on pods concurrently.
class EchoKubelet {
 public:
  explicit EchoKubelet(FakeApiServer* server) : server_(server) {
    FakeApiServer::KubeletHooks hooks;
    hooks.on_pod_created = [this](const json& pod) {
      std::string name = pod["metadata"]["name"];
      MutexLock lock(&mu_);
      threads_.emplace_back([this, name] { RunPod(name); });
    };
    hooks.on_pod_deleting = [this](const json& pod) {
      std::string name = pod["metadata"]["name"];
      MutexLock lock(&mu_);
      ++deleting_hooks_;
      threads_.emplace_back([this, name] {
        absl::Status s = server_->FinalizePodDeletion(kB12Namespace, name);
        if (!s.ok()) Fail(absl::StrCat(name, ": ", s.ToString()));
      });
    };
    server_->SetKubelet(hooks);
  }
  ~EchoKubelet() {
    server_->SetKubelet({});
    std::vector<std::thread> threads;
    {
      MutexLock lock(&mu_);
      threads.swap(threads_);
    }
    for (auto& t : threads) t.join();
  }
  std::vector<double> kubelet_ms() {
    MutexLock lock(&mu_);
    return kubelet_ms_;
  }
  std::vector<std::string> errors() {
    MutexLock lock(&mu_);
    return errors_;
  }

 private:
  void Fail(const std::string& e) {
    MutexLock lock(&mu_);
    errors_.push_back(e);
  }
  bool Mutate(const std::string& name, const std::function<void(json&)>& fn) {
    absl::Status s = server_->MutatePod(kB12Namespace, name, fn);
    if (!s.ok()) Fail(absl::StrCat(name, ": ", s.ToString()));
    return s.ok();
  }
  void RunPod(const std::string& name) {
    absl::Time start = absl::Now();
    bool ok =
        Mutate(name,
               [](json& p) {
                 p["spec"]["nodeName"] = "node-1";
                 p["status"]["phase"] = "Pending";
               }) &&
        Mutate(name,
               [](json& p) {
                 p["status"]["initContainerStatuses"] = json::array(
                     {{{"name", "kiln-fetch"},
                       {"state",
                        {{"terminated",
                          {{"exitCode", 0}, {"reason", "Completed"}}}}}}});
               }) &&
        Mutate(name, [](json& p) {
          p["status"]["phase"] = "Running";
          p["status"]["containerStatuses"] =
              json::array({{{"name", "task"},
                            {"image", p["spec"]["containers"][0]["image"]},
                            {"state", {{"running", json::object()}}}}});
        });
    if (!ok) return;
    server_->AppendLog(kB12Namespace, name, "task", kLine, absl::Now());
    server_->EndLog(kB12Namespace, name, "task");
    json result = {{"v", 1},
                   {"status", "EXITED"},
                   {"exit_code", 0},
                   {"outputs", json::object()}};
    if (!Mutate(name, [&](json& p) {
          p["status"]["phase"] = "Succeeded";
          p["status"]["containerStatuses"] =
              json::array({{{"name", "task"},
                            {"state",
                             {{"terminated",
                               {{"exitCode", 0},
                                {"reason", "Completed"},
                                {"message", result.dump()}}}}}}});
        })) {
      return;
    }
    double ms = Ms(absl::Now() - start);
    MutexLock lock(&mu_);
    kubelet_ms_.push_back(ms);
  }

  FakeApiServer* server_;
  Mutex mu_;
  std::vector<std::thread> threads_ ABSL_GUARDED_BY(mu_);
  std::vector<double> kubelet_ms_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> errors_ ABSL_GUARDED_BY(mu_);
  int deleting_hooks_ ABSL_GUARDED_BY(mu_) = 0;
};

// Counts the task's lines; the executor calls it from one thread per task.
class CountingSink : public OutputSink {
 public:
  void OnLine(v1::LogLine::Stream, absl::string_view line,
              absl::Time) override {
    if (line == kLine) matched_.fetch_add(1);
    lines_.fetch_add(1);
  }
  int lines() const { return lines_.load(); }
  int matched() const { return matched_.load(); }

 private:
  std::atomic<int> lines_{0}, matched_{0};
};

std::map<std::string, int64_t> Delta(const std::map<std::string, int64_t>& a,
                                     const std::map<std::string, int64_t>& b) {
  std::map<std::string, int64_t> d;
  for (const auto& [k, v] : b) {
    auto it = a.find(k);
    int64_t n = v - (it == a.end() ? 0 : it->second);
    if (n != 0) d[k] = n;
  }
  return d;
}

}  // namespace

bool CountsTowardTarget(const std::string& kind) {
  return kind != "get pods/log" && !absl::StartsWith(kind, "watch ");
}

double Percentile(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  size_t rank = static_cast<size_t>(p * sorted.size() + 0.999999);
  if (rank < 1) rank = 1;
  if (rank > sorted.size()) rank = sorted.size();
  return sorted[rank - 1];
}

absl::StatusOr<std::vector<double>> MeasureGetRoundTrip(FakeApiServer* server,
                                                        int n) {
  auto client = NewClient(server);
  if (!client.ok()) return client.status();
  const std::string coll =
      absl::StrCat("/api/v1/namespaces/", kB12Namespace, "/pods");
  json pod = {
      {"apiVersion", "v1"},
      {"kind", "Pod"},
      {"metadata", {{"name", "b12-rtt-probe"}}},
      {"spec",
       {{"containers", json::array({{{"name", "main"}, {"image", kImage}}})}}}};
  auto created = (*client)->Create(coll, pod);
  if (!created.ok()) return created.status();
  std::vector<double> ms;
  for (int i = 0; i < n; ++i) {
    absl::Time t = absl::Now();
    auto got = (*client)->Get(coll + "/b12-rtt-probe");
    if (!got.ok()) return got.status();
    ms.push_back(Ms(absl::Now() - t));
  }
  absl::Status deleted = (*client)->Delete(coll + "/b12-rtt-probe");
  if (!deleted.ok()) return deleted;
  std::sort(ms.begin(), ms.end());
  return ms;
}

absl::StatusOr<B12Phase> RunB12Phase(FakeApiServer* server,
                                     const B12PhaseOptions& options) {
  if (options.tasks < 1 || options.concurrency < 1) {
    return absl::InvalidArgumentError("tasks and concurrency must be >= 1");
  }
  auto client = NewClient(server);
  if (!client.ok()) return client.status();
  PodExecutorOptions eo;
  eo.client = *client;
  eo.namespace_name = kB12Namespace;
  eo.agent_image = kAgent;
  eo.agent_server = "127.0.0.1:1";  // never dialled: the kubelet is scripted
  eo.agent_token = "b12-token";
  eo.pending_timeout = absl::Seconds(60);
  auto executor = CreatePodExecutor(std::move(eo));
  if (!executor.ok()) return executor.status();

  B12Phase phase;
  phase.tasks = options.tasks;
  phase.concurrency = options.concurrency;
  Mutex mu;
  std::vector<double> task_ms;
  std::vector<std::string> failures;
  int succeeded = 0;
  std::atomic<int> next{0};
  auto before = server->request_counts();
  int64_t total_before = server->request_count();
  absl::Time phase_start = absl::Now();
  std::vector<double> kubelet_ms;
  std::vector<std::string> kubelet_errors;
  {
    EchoKubelet kubelet(server);
    std::vector<std::thread> workers;
    for (int w = 0; w < options.concurrency; ++w) {
      workers.emplace_back([&] {
        for (int i = next.fetch_add(1); i < options.tasks;
             i = next.fetch_add(1)) {
          v1::ExecRequest r;
          r.set_run_id(options.run_id);
          r.set_task(absl::StrCat("echo-", i));
          r.set_attempt(1);
          r.set_image(kImage);
          r.add_argv("echo");
          r.add_argv(kLine);
          CountingSink sink;
          absl::Time t = absl::Now();
          auto exec = (*executor)->Start(r, &sink);
          std::string failure;
          double ms = 0;
          if (!exec.ok()) {
            failure = exec.status().ToString();
          } else {
            v1::ExecResult res = (*exec)->Wait();
            ms = Ms(absl::Now() - t);
            if (res.status() != v1::EXITED || res.exit_code() != 0) {
              failure = absl::StrCat(v1::ExecStatus_Name(res.status()), " ",
                                     res.exit_code(), ": ", res.message());
            } else if (sink.lines() != 1 || sink.matched() != 1) {
              failure = absl::StrCat("log: ", sink.lines(), " lines, ",
                                     sink.matched(), " matching");
            }
          }
          MutexLock lock(&mu);
          if (failure.empty()) {
            ++succeeded;
            task_ms.push_back(ms);
          } else if (failures.size() < 5) {
            failures.push_back(absl::StrCat(r.task(), ": ", failure));
          }
        }
      });
    }
    for (auto& w : workers) w.join();
    // Every result is in and every pod deleted: the executor is done.
    executor->reset();
    kubelet_ms = kubelet.kubelet_ms();
    kubelet_errors = kubelet.errors();
  }
  phase.wall_s = absl::ToDoubleSeconds(absl::Now() - phase_start);
  phase.requests = Delta(before, server->request_counts());
  phase.requests_total = server->request_count() - total_before;
  phase.succeeded = succeeded;
  phase.failures = std::move(failures);
  for (const auto& e : kubelet_errors) {
    if (phase.failures.size() < 5) phase.failures.push_back("kubelet: " + e);
  }
  std::sort(task_ms.begin(), task_ms.end());
  std::sort(kubelet_ms.begin(), kubelet_ms.end());
  phase.task_ms = std::move(task_ms);
  phase.kubelet_ms = std::move(kubelet_ms);
  return phase;
}

json PhaseJson(const B12Phase& phase, double rtt_ms) {
  json per_task = json::object();
  double counted = 0, streamed = 0;
  for (const auto& [kind, n] : phase.requests) {
    double per = static_cast<double>(n) / phase.tasks;
    per_task[kind] = per;
    (CountsTowardTarget(kind) ? counted : streamed) += per;
  }
  auto pct = [](const std::vector<double>& v) {
    return json{{"median", Percentile(v, 0.5)},
                {"p90", Percentile(v, 0.9)},
                {"p99", Percentile(v, 0.99)}};
  };
  // overhead = task time - (requests counted toward the target) x (median
  // bare GET round trip); the streams (watch, log) are waits on the node.
  double double_ms = counted * rtt_ms;
  json overhead = {{"median", Percentile(phase.task_ms, 0.5) - double_ms},
                   {"p90", Percentile(phase.task_ms, 0.9) - double_ms},
                   {"p99", Percentile(phase.task_ms, 0.99) - double_ms}};
  // Tasks that took 100 ms or more: the transport notices a cancelled idle
  // stream (the pod's watch) only at its next 100 ms poll (README, B12).
  int slow = 0;
  for (double ms : phase.task_ms) slow += ms >= 100 ? 1 : 0;
  return {{"tasks", phase.tasks},
          {"tasks_ge_100ms", slow},
          {"concurrency", phase.concurrency},
          {"succeeded", phase.succeeded},
          {"failures", phase.failures},
          {"wall_s", phase.wall_s},
          {"tasks_per_s", phase.tasks / phase.wall_s},
          {"task_ms", pct(phase.task_ms)},
          {"kubelet_script_ms", pct(phase.kubelet_ms)},
          {"double_ms_per_task", double_ms},
          {"kiln_overhead_ms", overhead},
          {"requests_total", phase.requests_total},
          {"requests_per_task", per_task},
          {"requests_per_task_counted", counted},
          {"requests_per_task_streams", streamed},
          {"target_requests_per_task", 10},
          {"target_met", counted <= 10.0}};
}

}  // namespace bench
}  // namespace kiln
