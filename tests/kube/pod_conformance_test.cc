// The executor conformance suite against the pod executor on the API
// double with the simulated kubelet: every case's pod really runs — the
// kiln agent (its image built by kiln and pulled from a real registry)
// fetches inputs from the blob endpoint, runs the program in a busybox
// image under the local sandbox, uploads outputs and reports through its
// termination message. The pod executor's traits (conformance.h): no host
// workspace (files travel as inputs/outputs), one merged log stream, images
// pulled by the node (an unpullable image is INFRA_FAILED).
// ProcessExecutorConformanceTest is not instantiated: its case needs a
// FIFO in a workspace on this host.
#include <memory>

#include "executors/testing/conformance.h"
#include "executors/testing/shell_program.h"
#include "tests/kube/pod_cluster.h"

namespace kiln {
namespace conformance {
namespace {

using kubetest::PodCluster;

// The cluster's store as the suite's artifacts.
class ClusterArtifacts : public ConformanceArtifacts {
 public:
  explicit ClusterArtifacts(PodCluster* cluster) : cluster_(cluster) {}
  std::string Put(Files files) override {
    absl::StatusOr<std::string> tree = cluster_->PutFiles(files);
    EXPECT_TRUE(tree.ok()) << tree.status();
    return tree.ok() ? *tree : "sha256:put-failed";
  }
  absl::StatusOr<Files> Get(const std::string& digest) override {
    return cluster_->GetFiles(digest);
  }

 private:
  PodCluster* cluster_;
};

class PodHarness : public ExecutorHarness {
 public:
  PodHarness() {
    absl::StatusOr<PodCluster*> cluster = PodCluster::Get();
    EXPECT_TRUE(cluster.ok()) << cluster.status();
    if (!cluster.ok()) return;
    cluster_ = *cluster;
    artifacts_ = std::make_unique<ClusterArtifacts>(cluster_);
    auto executor = cluster_->MakeExecutor("ci");
    EXPECT_TRUE(executor.ok()) << executor.status();
    if (executor.ok()) executor_ = std::move(*executor);
  }
  Executor* executor() override { return executor_.get(); }
  std::vector<std::string> Argv(const Program& program) override {
    return ShellArgv(program);
  }
  std::string Image() override {
    return cluster_ != nullptr ? cluster_->busybox_image() : "";
  }
  HarnessTraits Traits() override {
    HarnessTraits t;
    t.host_workspace = false;
    t.separate_streams = false;
    t.images_prepared_locally = false;
    return t;
  }
  ConformanceArtifacts* Artifacts() override { return artifacts_.get(); }

 private:
  PodCluster* cluster_ = nullptr;
  std::unique_ptr<ClusterArtifacts> artifacts_;
  std::unique_ptr<Executor> executor_;
};

INSTANTIATE_TEST_SUITE_P(Pods, ExecutorConformanceTest,
                         ::testing::Values(ExecutorFactory{
                             "pod_executor_sandbox_kubelet",
                             [](const ConformanceEnv&) {
                               return std::make_unique<PodHarness>();
                             }}),
                         ExecutorFactoryName);

}  // namespace
}  // namespace conformance
}  // namespace kiln
