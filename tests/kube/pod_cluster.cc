#include "tests/kube/pod_cluster.h"

#include <stdlib.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/mutex.h"
#include "engine/agent/agent_image.h"
#include "engine/exec/host_staging.h"
#include "engine/oci/registry/testing/registry_fixture.h"
#include "engine/service/agent_blob_server.h"
#include "engine/service/testing/fake_engine.h"
#include "executors/kubernetes/pod_executor.h"
#include "gtest/gtest.h"
#include "kube/testing/kubelet/registry_images.h"
#include "tests/kube/test_images.h"

namespace kiln {
namespace kubetest {

class PodCluster::Parts {
 public:
  std::unique_ptr<oci::registry::testing::RegistryServer> registry;
  std::unique_ptr<service::testing::FakeEngine> engine;
  std::unique_ptr<service::AgentBlobServer> blobs;
  std::unique_ptr<HostStaging> staging;
};

namespace {

Mutex cluster_mu;
PodCluster* cluster ABSL_GUARDED_BY(cluster_mu) = nullptr;
absl::Status cluster_error ABSL_GUARDED_BY(cluster_mu);

// Stops the cluster after the last test (the kubelet kills what runs).
class ClusterEnvironment : public ::testing::Environment {
 public:
  void TearDown() override {
    MutexLock lock(&cluster_mu);
    delete cluster;
    cluster = nullptr;
  }
};
::testing::Environment* const environment =
    ::testing::AddGlobalTestEnvironment(new ClusterEnvironment);

// Runs request through StartStaged with the cluster's archives.
class StagedExecutor : public Executor {
 public:
  StagedExecutor(std::unique_ptr<Executor> inner, ArchiveAccess* archives)
      : inner_(std::move(inner)), archives_(archives) {}
  std::string Name() const override { return inner_->Name(); }
  std::string Platform() const override { return inner_->Platform(); }
  ExecutorCapabilities Capabilities() const override {
    return inner_->Capabilities();
  }
  absl::StatusOr<std::unique_ptr<Execution>> Start(
      const v1::ExecRequest& request, OutputSink* sink) override {
    HostWorkspaceOptions host;
    host.archives = archives_;
    return inner_->StartStaged(request, sink, host);
  }

 private:
  std::unique_ptr<Executor> inner_;
  ArchiveAccess* archives_;
};

std::string TempDir(const std::string& prefix) {
  const char* tmp = getenv("TEST_TMPDIR");
  std::string dir =
      absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/", prefix, "-XXXXXX");
  if (mkdtemp(dir.data()) == nullptr) return "";
  return dir;
}

}  // namespace

absl::StatusOr<PodCluster*> PodCluster::Get() {
  MutexLock lock(&cluster_mu);
  (void)environment;
  if (cluster != nullptr) return cluster;
  if (!cluster_error.ok()) return cluster_error;
  std::unique_ptr<PodCluster> made(new PodCluster());
  absl::Status s = made->Start();
  if (!s.ok()) {
    cluster_error = s;
    return s;
  }
  cluster = made.release();
  return cluster;
}

absl::Status PodCluster::Start() {
  root_ = TempDir("pod-cluster");
  if (root_.empty()) return absl::InternalError("mkdtemp");
  parts_ = std::make_unique<Parts>();
  auto registry = oci::registry::testing::RegistryServer::Start();
  if (!registry.ok()) return registry.status();
  parts_->registry = std::move(*registry);
  const std::string host = parts_->registry->address();
  absl::StatusOr<std::string> agent = agent::BuildAgentImage(host);
  if (!agent.ok()) return agent.status();
  agent_image_ = *agent;
  absl::StatusOr<std::string> busybox = BuildBusyboxImage(host);
  if (!busybox.ok()) return busybox.status();
  busybox_image_ = *busybox;

  service::testing::FakeEngineOptions engine_options;
  engine_options.store_dir = root_ + "/store";
  auto engine = service::testing::FakeEngine::Create(engine_options);
  if (!engine.ok()) return engine.status();
  parts_->engine = std::move(*engine);
  auto blobs = service::StartAgentBlobServer(parts_->engine.get(), {});
  if (!blobs.ok()) return blobs.status();
  parts_->blobs = std::move(*blobs);
  auto store = cas::ArtifactStore::Open(root_ + "/store");
  if (!store.ok()) return store.status();
  store_ = std::move(*store);
  parts_->staging = std::make_unique<HostStaging>(store_.get());

  kube::testing::FakeApiServerOptions server_options;
  server_options.initial_namespaces.push_back("ci");
  auto server = kube::testing::FakeApiServer::Start(server_options);
  if (!server.ok()) return server.status();
  server_ = std::move(*server);
  // One answered request: the server listens.
  absl::StatusOr<nlohmann::json> version = Client()->Get("/version");
  if (!version.ok()) return version.status();
  auto images = kube::testing::OpenRegistryImages(root_ + "/images");
  if (!images.ok()) return images.status();
  images_ = std::move(*images);
  kube::testing::SandboxKubeletOptions kubelet_options;
  kubelet_options.root = root_ + "/pods";
  kubelet_options.images = images_.get();
  kubelet_options.retry_initial = absl::Milliseconds(200);
  kubelet_options.retry_max = absl::Seconds(2);
  auto kubelet =
      kube::testing::SandboxKubelet::Start(server_.get(), kubelet_options);
  if (!kubelet.ok()) return kubelet.status();
  kubelet_ = std::move(*kubelet);
  return absl::OkStatus();
}

PodCluster::~PodCluster() {
  kubelet_.reset();
  server_.reset();
  if (parts_ != nullptr) {
    if (parts_->blobs != nullptr) parts_->blobs->Stop();
    if (parts_->engine != nullptr) parts_->engine->Shutdown(absl::Seconds(5));
    parts_->staging.reset();
  }
  store_.reset();
  images_.reset();
  parts_.reset();
  std::error_code ec;
  if (!root_.empty()) std::filesystem::remove_all(root_, ec);
}

std::shared_ptr<kube::Client> PodCluster::Client() const {
  kube::ClusterConfig config;
  config.server = server_->url();
  config.context = "fake";
  auto client = kube::Client::Create(config);
  if (!client.ok()) return nullptr;
  return std::shared_ptr<kube::Client>(std::move(*client));
}

ArchiveAccess* PodCluster::archives() const { return parts_->staging.get(); }

absl::StatusOr<std::unique_ptr<Executor>> PodCluster::MakeExecutor(
    const std::string& ns, int keep_finished_pods) const {
  PodExecutorOptions o;
  o.client = Client();
  o.namespace_name = ns;
  o.agent_image = agent_image_;
  o.agent_server = parts_->blobs->address();
  o.agent_token = parts_->blobs->token();
  o.pending_timeout = absl::Seconds(60);
  o.keep_finished_pods = keep_finished_pods;
  auto executor = CreatePodExecutor(std::move(o));
  if (!executor.ok()) return executor.status();
  return std::unique_ptr<Executor>(
      new StagedExecutor(std::move(*executor), archives()));
}

absl::StatusOr<std::string> PodCluster::PutFiles(
    const conformance::MemoryArtifactAccess::Files& files) const {
  std::string dir = TempDir("put");
  if (dir.empty()) return absl::InternalError("mkdtemp");
  for (const auto& [path, content] : files) {
    std::filesystem::path p = std::filesystem::path(dir) / path;
    std::error_code ec;
    std::filesystem::create_directories(p.parent_path(), ec);
    std::ofstream(p) << content;
  }
  absl::StatusOr<cas::StashResult> stashed = store_->Stash(dir);
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  if (!stashed.ok()) return stashed.status();
  return stashed->tree.ToString();
}

absl::StatusOr<conformance::MemoryArtifactAccess::Files> PodCluster::GetFiles(
    const std::string& tree) const {
  absl::StatusOr<cas::Digest> digest = cas::Digest::Parse(tree);
  if (!digest.ok()) return digest.status();
  std::string dir = TempDir("get");
  if (dir.empty()) return absl::InternalError("mkdtemp");
  std::string target = dir + "/tree";
  absl::Status s = store_->Unstash(*digest, target);
  conformance::MemoryArtifactAccess::Files files;
  if (s.ok()) {
    std::error_code ec;
    for (auto it = std::filesystem::recursive_directory_iterator(target, ec);
         !ec && it != std::filesystem::recursive_directory_iterator();
         it.increment(ec)) {
      if (!it->is_regular_file() || it->is_symlink()) continue;
      std::ifstream in(it->path());
      std::stringstream content;
      content << in.rdbuf();
      files[std::filesystem::relative(it->path(), target).string()] =
          content.str();
    }
  }
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  if (!s.ok()) return s;
  return files;
}

}  // namespace kubetest
}  // namespace kiln
