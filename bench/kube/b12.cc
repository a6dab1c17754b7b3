// Benchmark B12: 200 `echo` task attempts through the pod executor against
// the Kubernetes API server double (scripted kubelet), at a fixed
// concurrency and at concurrency 1: per-task wall time, the double's bare
// round trip measured in the same run, kiln's overhead and the API requests
// per task. Writes JSON (bench/README.md, "B12").
// Run: bench/kube/run_b12.sh [--tasks=200] [--concurrency=8]
#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "bench/kube/b12_lib.h"
#include "kube/testing/fake_api_server.h"
#include "nlohmann/json.hpp"

ABSL_FLAG(int, tasks, 200, "task attempts per phase");
ABSL_FLAG(int, concurrency, 8, "concurrent tasks of the first phase");
ABSL_FLAG(int, rtt_samples, 200, "GETs for the double's bare round trip");
ABSL_FLAG(std::string, out, "", "write the JSON result here (else stdout)");
ABSL_FLAG(std::string, load, "", "the machine's load (uptime), recorded");

namespace {

using json = nlohmann::json;
using kiln::bench::B12Phase;
using kiln::bench::B12PhaseOptions;

int Fail(const std::string& what) {
  std::cerr << "b12: " << what << "\n";
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  kiln::kube::testing::FakeApiServerOptions so;
  so.initial_namespaces.push_back(kiln::bench::kB12Namespace);
  auto server = kiln::kube::testing::FakeApiServer::Start(so);
  if (!server.ok()) return Fail(server.status().ToString());

  // The double's round trip before and after the tasks; the median of all.
  auto rtt = kiln::bench::MeasureGetRoundTrip(server->get(),
                                              absl::GetFlag(FLAGS_rtt_samples));
  if (!rtt.ok()) return Fail(rtt.status().ToString());

  json phases = json::array();
  int failed = 0;
  std::vector<B12Phase> results;
  for (int c : {absl::GetFlag(FLAGS_concurrency), 1}) {
    B12PhaseOptions o;
    o.run_id = absl::StrCat("b12-c", c);
    o.tasks = absl::GetFlag(FLAGS_tasks);
    o.concurrency = c;
    auto phase = kiln::bench::RunB12Phase(server->get(), o);
    if (!phase.ok()) return Fail(phase.status().ToString());
    failed += phase->tasks - phase->succeeded;
    results.push_back(std::move(*phase));
  }
  auto rtt_after = kiln::bench::MeasureGetRoundTrip(
      server->get(), absl::GetFlag(FLAGS_rtt_samples));
  if (!rtt_after.ok()) return Fail(rtt_after.status().ToString());
  std::vector<double> all = *rtt;
  all.insert(all.end(), rtt_after->begin(), rtt_after->end());
  std::sort(all.begin(), all.end());
  double rtt_ms = kiln::bench::Percentile(all, 0.5);
  for (const auto& p : results)
    phases.push_back(kiln::bench::PhaseJson(p, rtt_ms));

  const json& main = phases[0];
  const json& serial = phases[1];
  json out = {
      {"id", "B12"},
      {"what", absl::StrCat(absl::GetFlag(FLAGS_tasks),
                            " echo tasks through the pod executor against the "
                            "Kubernetes API double (scripted kubelet): kiln's "
                            "overhead per pod task and API requests per task")},
      {"kiln_s", main["task_ms"]["median"].get<double>() / 1000},
      {"peer", "the double's bare GET round trip x requests per task"},
      {"peer_s", main["double_ms_per_task"].get<double>() / 1000},
      {"ratio", main["task_ms"]["median"].get<double>() /
                    std::max(main["double_ms_per_task"].get<double>(), 1e-9)},
      {"target",
       "<= 10 API requests per task besides log streaming and "
       "watch events"},
      {"met", main["target_met"].get<bool>() &&
                  serial["target_met"].get<bool>() && failed == 0},
      {"date", absl::FormatTime("%Y-%m-%d", absl::Now(), absl::UTCTimeZone())},
      {"load", absl::GetFlag(FLAGS_load)},
      {"double_get_rtt_ms",
       {{"median", rtt_ms},
        {"p90", kiln::bench::Percentile(all, 0.9)},
        {"p99", kiln::bench::Percentile(all, 0.99)},
        {"samples", all.size()}}},
      {"phases", phases},
      {"notes",
       "kiln_overhead_ms = task_ms - requests_per_task_counted x "
       "double_get_rtt_ms.median (streams excluded: they wait on the node)"}};
  std::string text = out.dump(2) + "\n";
  std::string path = absl::GetFlag(FLAGS_out);
  if (path.empty()) {
    std::cout << text;
  } else {
    std::ofstream f(path);
    f << text;
    if (!f.good()) return Fail("cannot write " + path);
    std::cout << text;
  }
  if (failed > 0) return Fail(absl::StrCat(failed, " tasks failed"));
  return 0;
}
