// kiln::kube::testing::RolloutController: a simulated workload controller
// for the API server double (testonly), so that a deploy can wait for
// rollouts as on a cluster.
//
// Deployments, StatefulSets and DaemonSets: a spec change (a new
// metadata.generation) is observed at once (status.observedGeneration,
// replicas, Progressing=True ReplicaSetUpdated) and becomes ready
// `ready_after` later (updated/ready/available replicas = spec.replicas,
// Available=True, Progressing=True NewReplicaSetAvailable). Jobs complete
// after `ready_after` (status.succeeded, condition Complete).
//
// A workload whose pod template has a container image containing
// "kiln-test-crashloop", or the annotation kiln.dev/test-rollout: fail
// (on the object or its pod template), fails deterministically: one pod in
// CrashLoopBackOff with the log line kCrashLogLine and a Warning BackOff
// event; a Deployment gets Progressing=False ProgressDeadlineExceeded, a
// Job Failed=True BackoffLimitExceeded.
#ifndef KILN_KUBE_TESTING_ROLLOUT_H_
#define KILN_KUBE_TESTING_ROLLOUT_H_

#include <map>
#include <memory>
#include <string>
#include <thread>

#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "kube/testing/fake_api_server.h"

namespace kiln::kube::testing {

inline constexpr char kCrashLogLine[] =
    "kiln-test-crashloop: simulated crash: exit status 1";

struct RolloutOptions {
  absl::Duration tick = absl::Milliseconds(50);
  absl::Duration ready_after = absl::Milliseconds(300);
};

class RolloutController {
 public:
  // Starts the controller's thread over `server` (which must outlive it).
  static std::unique_ptr<RolloutController> Start(FakeApiServer* server,
                                                  RolloutOptions options = {});
  ~RolloutController();  // stops and joins the thread
  RolloutController(const RolloutController&) = delete;
  RolloutController& operator=(const RolloutController&) = delete;

 private:
  RolloutController(FakeApiServer* server, RolloutOptions options)
      : server_(server), options_(options) {}
  void Loop();
  void Tick();
  void Workload(const std::string& plural, const nlohmann::json& obj);
  void Job(const nlohmann::json& obj);
  void CrashingPod(const nlohmann::json& owner, const std::string& pod_name,
                   const nlohmann::json& extra_labels);

  FakeApiServer* const server_;
  const RolloutOptions options_;
  absl::Notification stop_;
  std::thread thread_;
  // Touched by the controller's thread only.
  std::map<std::string, absl::Time> seen_;  // uid/generation -> first seen
  std::map<std::string, bool> pod_made_;    // uid/generation -> crash pod
};

}  // namespace kiln::kube::testing

#endif  // KILN_KUBE_TESTING_ROLLOUT_H_
