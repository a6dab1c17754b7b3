// Benchmark B12: echo tasks through the pod executor against the Kubernetes
// API server double with a scripted kubelet (bench/README.md, "B12").
// Shared by the b12 binary and its smoke test.
#ifndef KILN_BENCH_KUBE_B12_LIB_H_
#define KILN_BENCH_KUBE_B12_LIB_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "kube/testing/fake_api_server.h"
#include "nlohmann/json.hpp"

namespace kiln {
namespace bench {

// The namespace the pods run in (the caller's server must have it).
extern const char kB12Namespace[];

struct B12PhaseOptions {
  std::string run_id = "b12";
  int tasks = 200;
  int concurrency = 8;
};

struct B12Phase {
  int tasks = 0;
  int concurrency = 0;
  int succeeded = 0;
  // The first failures (status, message), at most 5.
  std::vector<std::string> failures;
  double wall_s = 0;  // the whole phase
  // Per task: Start() to Wait() returning, and the scripted kubelet's own
  // time (pod created hook to Succeeded stored), in ms, sorted.
  std::vector<double> task_ms, kubelet_ms;
  // The double's requests during the phase, "verb resource[/sub]" -> count
  // (FakeApiServer::request_counts() after minus before).
  std::map<std::string, int64_t> requests;
  int64_t requests_total = 0;
};

// Runs `tasks` echo attempts through CreatePodExecutor against `server`
// (which must have kB12Namespace and no kubelet set): a scripted kubelet
// marks each pod Running, appends one log line, then Succeeded with the
// agent's result as the termination message. No other client may use the
// server meanwhile (the request counts are the phase's).
absl::StatusOr<B12Phase> RunB12Phase(kube::testing::FakeApiServer* server,
                                     const B12PhaseOptions& options);

// The double's bare round trip: `n` GETs of one existing pod with a fresh
// kube::Client, in ms, sorted. Creates and deletes the pod.
absl::StatusOr<std::vector<double>> MeasureGetRoundTrip(
    kube::testing::FakeApiServer* server, int n);

// Whether a request kind counts against the ≤ 10 target: log streaming
// ("get pods/log") and watches do not.
bool CountsTowardTarget(const std::string& kind);

// Percentile (0..1) of a sorted vector (nearest rank); 0 when empty.
double Percentile(const std::vector<double>& sorted, double p);

// The phase as JSON, with overhead computed against `rtt_ms` (the median
// bare GET): see bench/README.md for the formula.
nlohmann::json PhaseJson(const B12Phase& phase, double rtt_ms);

}  // namespace bench
}  // namespace kiln

#endif  // KILN_BENCH_KUBE_B12_LIB_H_
