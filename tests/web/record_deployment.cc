// Test helper for the browser tests: writes one deployment record into a
// store's run store (as a deploy task's recorder would), so the dashboard
// of a `kiln serve` on that store lists it without a cluster.
//
//   record_deployment STORE ENV NAMESPACE RUN_ID TASK OUTCOME [IMAGE...]
//
// OUTCOME is "succeeded" or "failed". Prints the new deployment's id.
#include <cstdio>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "engine/engine.h"

int main(int argc, char** argv) {
  if (argc < 7) {
    std::fprintf(stderr,
                 "usage: record_deployment STORE ENV NAMESPACE RUN_ID TASK "
                 "succeeded|failed [IMAGE...]\n");
    return 2;
  }
  const std::string outcome = argv[6];
  if (outcome != "succeeded" && outcome != "failed") {
    std::fprintf(stderr, "record_deployment: OUTCOME is succeeded or failed\n");
    return 2;
  }
  auto engine = kiln::Engine::OpenStore(argv[1]);
  if (!engine.ok()) {
    std::fprintf(stderr, "record_deployment: %s\n",
                 std::string(engine.status().message()).c_str());
    return 1;
  }
  kiln::store::DeploymentRecord r;
  r.environment = argv[2];
  r.namespace_name = argv[3];
  r.run_id = argv[4];
  r.task = argv[5];
  r.manifests_digest =
      "sha256:5e1f0c2d3b4a59687766554433221100ffeeddccbbaa99887766554433221100";
  for (int i = 7; i < argc; ++i) r.images.push_back(argv[i]);
  r.started = absl::Now();
  r.finished = r.started + absl::Seconds(3);
  r.succeeded = outcome == "succeeded";
  if (!r.succeeded) r.reason = "rollout did not finish in time";
  auto id = (*engine)->store().runs().RecordDeployment(r);
  if (!id.ok()) {
    std::fprintf(stderr, "record_deployment: %s\n",
                 std::string(id.status().message()).c_str());
    return 1;
  }
  std::printf("%lld\n", static_cast<long long>(*id));
  return 0;
}
