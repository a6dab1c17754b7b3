// PodCluster (testonly): everything a pod needs to really run on this host,
// started once per test binary: a real registry (docker-registry on
// loopback) holding the kiln agent image and a busybox image (both built
// by kiln's containerize), a blob endpoint over a fake engine's store
// (what the agents fetch from and upload to), the Kubernetes API double
// and the simulated kubelet (SandboxKubelet) pulling through the engine's
// image store. Get() starts it on first use; the global test environment
// it registers stops it (kubelet first) after the last test.
#ifndef KILN_TESTS_KUBE_POD_CLUSTER_H_
#define KILN_TESTS_KUBE_POD_CLUSTER_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "engine/cas/artifact_store.h"
#include "executors/artifact_access.h"
#include "executors/executor.h"
#include "executors/testing/memory_artifact_access.h"
#include "kube/client.h"
#include "kube/testing/fake_api_server.h"
#include "kube/testing/kubelet/sandbox_kubelet.h"

namespace kiln {
namespace kubetest {

class PodCluster {
 public:
  // The cluster, started on first use; an error says what did not start.
  static absl::StatusOr<PodCluster*> Get();

  const std::string& agent_image() const { return agent_image_; }
  const std::string& busybox_image() const { return busybox_image_; }
  kube::testing::FakeApiServer* server() const { return server_.get(); }
  kube::testing::SandboxKubelet* kubelet() const { return kubelet_.get(); }
  // A client of the API double.
  std::shared_ptr<kube::Client> Client() const;
  // The engine's store the blob endpoint serves (inputs are stashed here,
  // outputs adopted).
  cas::ArtifactStore* store() const { return store_.get(); }
  ArchiveAccess* archives() const;

  // A pod executor in `ns` whose Start() moves artifacts through this
  // cluster's store (StartStaged with archives()).
  absl::StatusOr<std::unique_ptr<Executor>> MakeExecutor(
      const std::string& ns, int keep_finished_pods = 0) const;

  // Stores files (path -> content) as an artifact; returns its tree digest.
  absl::StatusOr<std::string> PutFiles(
      const conformance::MemoryArtifactAccess::Files& files) const;
  // The regular files of artifact `tree`.
  absl::StatusOr<conformance::MemoryArtifactAccess::Files> GetFiles(
      const std::string& tree) const;

  ~PodCluster();
  class Parts;

 private:
  PodCluster() = default;
  absl::Status Start();

  std::string root_;
  std::unique_ptr<Parts> parts_;
  std::string agent_image_, busybox_image_;
  std::unique_ptr<cas::ArtifactStore> store_;
  std::unique_ptr<kube::testing::FakeApiServer> server_;
  std::unique_ptr<ImageAccess> images_;
  std::unique_ptr<kube::testing::SandboxKubelet> kubelet_;
};

}  // namespace kubetest
}  // namespace kiln

#endif  // KILN_TESTS_KUBE_POD_CLUSTER_H_
