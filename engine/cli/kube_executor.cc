#include "engine/cli/kube_executor.h"

#include <sys/stat.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "base/mutex.h"
#include "engine/cli/state_file.h"
#include "engine/service/agent_blob_server.h"
#include "executors/kubernetes/orphan_pods.h"
#include "executors/kubernetes/pod_executor.h"
#include "kube/client.h"
#include "kube/kubeconfig.h"
#include "kube/names.h"

namespace kiln::cli {
namespace {

// The flags that only mean something with the kubernetes executor
// (--kubeconfig and --kube-context also choose deploy tasks' cluster).
constexpr const char* kKubeOnlyFlags[] = {
    "namespace",     "agent-listen", "agent-endpoint",       "agent-tls-cert",
    "agent-tls-key", "agent-ca",     "kube-pending-timeout", "kube-keep-pods"};

bool IsPinnedByDigest(const std::string& ref) {
  size_t at = ref.rfind("@sha256:");
  if (at == std::string::npos || at == 0) return false;
  std::string hex = ref.substr(at + 8);
  if (hex.size() != 64) return false;
  for (char c : hex) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  for (char c : ref.substr(0, at)) {
    if (c == ' ' || c == '\t' || c == '\n') return false;
  }
  return true;
}

absl::StatusOr<std::string> ReadSmallFile(const std::string& flag,
                                          const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", flag, " ", path, ": not a readable file"));
  }
  if (st.st_size > (1 << 20)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", flag, " ", path, ": larger than 1 MiB"));
  }
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  if (!in.good() && !in.eof()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", flag, " ", path, ": cannot read it"));
  }
  return text.str();
}

// Stands in for the pod executor until the blob endpoint exists.
class LateBoundExecutor : public Executor {
 public:
  LateBoundExecutor(std::string name, std::string platform,
                    ExecutorCapabilities capabilities)
      : name_(std::move(name)),
        platform_(std::move(platform)),
        capabilities_(capabilities) {}

  std::string Name() const override { return name_; }
  std::string Platform() const override { return platform_; }
  ExecutorCapabilities Capabilities() const override { return capabilities_; }

  absl::StatusOr<std::unique_ptr<Execution>> Start(
      const v1::ExecRequest& request, OutputSink* sink) override {
    std::shared_ptr<Executor> target = Target();
    if (target == nullptr) return NotStarted();
    return target->Start(request, sink);
  }
  absl::StatusOr<std::unique_ptr<Execution>> StartStaged(
      const v1::ExecRequest& request, OutputSink* sink,
      const HostWorkspaceOptions& host) override {
    std::shared_ptr<Executor> target = Target();
    if (target == nullptr) return NotStarted();
    return target->StartStaged(request, sink, host);
  }

  void Bind(std::shared_ptr<Executor> target) {
    MutexLock lock(&mu_);
    target_ = std::move(target);
  }

 private:
  std::shared_ptr<Executor> Target() {
    MutexLock lock(&mu_);
    return target_;
  }
  absl::Status NotStarted() const {
    return absl::FailedPreconditionError(absl::StrCat(
        "the ", name_, " executor is not started (no agent blob endpoint)"));
  }

  const std::string name_, platform_;
  const ExecutorCapabilities capabilities_;
  Mutex mu_;
  std::shared_ptr<Executor> target_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

void AddKubeFlags(Args* args) {
  args->Flag("kube-agent-image",
             "the kiln agent image pods run, pinned by digest "
             "(REF@sha256:<64 hex>); turns the kubernetes executor on");
  args->Flag("kubeconfig",
             "kubeconfig file of the kubernetes executor and of deploy tasks "
             "(default $KUBECONFIG, ~/.kube/config, else the in-cluster "
             "service account)");
  args->Flag("kube-context",
             "kubeconfig context (default current-context; a deploy task's "
             "own `context` wins)");
  args->Flag("namespace",
             "namespace of the task pods (default the context's; one is "
             "required)");
  args->Flag("agent-listen",
             "HOST:PORT of the blob endpoint the pods' agents dial (default "
             "127.0.0.1:0; kiln serve needs a fixed port); a non-loopback "
             "host needs --agent-tls-cert/--agent-tls-key");
  args->Flag("agent-endpoint",
             "HOST:PORT the pods dial to reach --agent-listen (default the "
             "listen address)");
  args->Flag("agent-tls-cert", "PEM certificate of the agent endpoint (TLS)");
  args->Flag("agent-tls-key", "PEM private key of the agent endpoint");
  args->Flag("agent-ca",
             "PEM CA the agents verify the endpoint with (default "
             "--agent-tls-cert itself)");
  args->Flag("kube-pending-timeout",
             "a pod not running within this fails the attempt (default 5m)");
  args->Flag("kube-keep-pods", "finished pods kept for inspection (default 0)");
}

absl::StatusOr<KubeFlags> ReadKubeFlags(const Args& args) {
  KubeFlags flags;
  flags.kubeconfig = args.Get("kubeconfig");
  if (args.Has("kubeconfig") && flags.kubeconfig.empty()) {
    return absl::InvalidArgumentError("--kubeconfig needs a FILE");
  }
  flags.context = args.Get("kube-context");
  const bool executor_named = args.Get("executor") == kKubernetesExecutor;
  flags.enabled = executor_named || args.Has("kube-agent-image");
  if (!flags.enabled) {
    for (const char* flag : kKubeOnlyFlags) {
      if (args.Has(flag)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "--", flag,
            " configures the kubernetes executor: pass --kube-agent-image "
            "too"));
      }
    }
    return flags;
  }
  flags.agent_image = args.Get("kube-agent-image");
  if (flags.agent_image.empty()) {
    return absl::InvalidArgumentError(
        "the kubernetes executor needs --kube-agent-image REF@sha256:DIGEST "
        "(the kiln agent image the pods run)");
  }
  if (!IsPinnedByDigest(flags.agent_image)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--kube-agent-image ", flags.agent_image,
        ": must be pinned by digest (REF@sha256:<64 hex digits>); a tag can "
        "move under running pods and the digest is part of every task's "
        "cache key"));
  }
  flags.namespace_name = args.Get("namespace");
  if (args.Has("namespace") && !kube::IsDnsLabel(flags.namespace_name)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--namespace '", flags.namespace_name,
                     "' is not a namespace name (a DNS-1123 label)"));
  }
  if (args.Has("agent-listen")) flags.agent_listen = args.Get("agent-listen");
  flags.agent_endpoint = args.Get("agent-endpoint");
  flags.agent_tls_cert = args.Get("agent-tls-cert");
  flags.agent_tls_key = args.Get("agent-tls-key");
  flags.agent_ca = args.Get("agent-ca");
  if (flags.agent_tls_cert.empty() != flags.agent_tls_key.empty()) {
    return absl::InvalidArgumentError(
        "--agent-tls-cert and --agent-tls-key go together");
  }
  if (!flags.agent_ca.empty() && flags.agent_tls_cert.empty()) {
    return absl::InvalidArgumentError(
        "--agent-ca needs --agent-tls-cert/--agent-tls-key");
  }
  if (args.Has("kube-pending-timeout") &&
      (!absl::ParseDuration(args.Get("kube-pending-timeout"),
                            &flags.pending_timeout) ||
       flags.pending_timeout < absl::Seconds(1) ||
       flags.pending_timeout > absl::Hours(24))) {
    return absl::InvalidArgumentError(
        "--kube-pending-timeout must be a duration from 1s to 24h, such as "
        "5m");
  }
  if (absl::Status s =
          args.IntFlag("kube-keep-pods", 0, 1000, &flags.keep_finished_pods);
      !s.ok()) {
    return s;
  }
  return flags;
}

class KubeExecutorWiring::Impl {
 public:
  KubeFlags flags;
  std::string instance;
  std::shared_ptr<kube::Client> client;
  std::string namespace_name;
  std::string context;
  std::string agent_ca_pem;
  std::shared_ptr<LateBoundExecutor> executor;
  std::unique_ptr<service::AgentBlobServer> blobs;
  std::string endpoint;
};

KubeExecutorWiring::KubeExecutorWiring(std::unique_ptr<Impl> impl)
    : impl_(std::move(impl)) {}
KubeExecutorWiring::~KubeExecutorWiring() { Stop(); }

absl::StatusOr<std::unique_ptr<KubeExecutorWiring>> KubeExecutorWiring::Prepare(
    const KubeFlags& flags) {
  auto impl = std::make_unique<Impl>();
  impl->flags = flags;
  if (!flags.agent_tls_cert.empty()) {
    absl::StatusOr<std::string> ca = ReadSmallFile(
        flags.agent_ca.empty() ? "agent-tls-cert" : "agent-ca",
        flags.agent_ca.empty() ? flags.agent_tls_cert : flags.agent_ca);
    if (!ca.ok()) return ca.status();
    impl->agent_ca_pem = *std::move(ca);
  }

  kube::LoadOptions load;
  if (!flags.kubeconfig.empty()) load.kubeconfig_paths = {flags.kubeconfig};
  load.context = flags.context;
  absl::StatusOr<kube::ClusterConfig> config = kube::LoadClusterConfig(load);
  if (!config.ok()) {
    return absl::Status(
        config.status().code(),
        absl::StrCat("kubernetes executor: ", config.status().message()));
  }
  impl->context = config->context.empty() ? "in-cluster" : config->context;
  impl->namespace_name = flags.namespace_name.empty() ? config->namespace_name
                                                      : flags.namespace_name;
  if (impl->namespace_name.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "kubernetes executor: no namespace: pass --namespace or set one in "
        "the kubeconfig context '",
        impl->context, "'"));
  }
  const std::string server = config->server;

  // The probe: one GET with few retries, so that an unreachable server is
  // reported in seconds.
  kube::ClientOptions probe_options;
  probe_options.max_retries = 1;
  probe_options.request_timeout = absl::Seconds(15);
  probe_options.connect_timeout = absl::Seconds(5);
  absl::StatusOr<std::unique_ptr<kube::Client>> probe =
      kube::Client::Create(*config, probe_options);
  if (!probe.ok()) {
    return absl::Status(
        probe.status().code(),
        absl::StrCat("kubernetes executor (context '", impl->context,
                     "'): ", probe.status().message()));
  }
  absl::StatusOr<nlohmann::json> ns =
      (*probe)->Get(kube::NamespacePath(impl->namespace_name));
  if (!ns.ok()) {
    std::string what =
        absl::IsNotFound(ns.status())
            ? absl::StrCat("namespace '", impl->namespace_name,
                           "' does not exist")
        : absl::IsUnauthenticated(ns.status()) ||
                absl::IsPermissionDenied(ns.status())
            ? absl::StrCat("the credentials of context '", impl->context,
                           "' cannot read namespace '", impl->namespace_name,
                           "'")
            : "the API server does not answer";
    return absl::Status(absl::IsNotFound(ns.status())
                            ? absl::StatusCode::kFailedPrecondition
                            : ns.status().code(),
                        absl::StrCat("kubernetes executor: ", what,
                                     " (context '", impl->context, "', server ",
                                     server, "): ", ns.status().message()));
  }
  absl::StatusOr<std::unique_ptr<kube::Client>> client =
      kube::Client::Create(*std::move(config));
  if (!client.ok()) return client.status();
  impl->client = std::move(*client);

  // The pod executor's identity, from the options Start() will use.
  PodExecutorOptions prototype;
  prototype.name = kKubernetesExecutor;
  prototype.client = impl->client;
  prototype.namespace_name = impl->namespace_name;
  prototype.agent_image = flags.agent_image;
  prototype.agent_server = "unbound:0";
  prototype.agent_token = "unbound";
  absl::StatusOr<std::unique_ptr<Executor>> shape =
      CreatePodExecutor(std::move(prototype));
  if (!shape.ok()) return shape.status();
  impl->executor = std::make_shared<LateBoundExecutor>(
      (*shape)->Name(), (*shape)->Platform(), (*shape)->Capabilities());
  return std::unique_ptr<KubeExecutorWiring>(
      new KubeExecutorWiring(std::move(impl)));
}

std::shared_ptr<Executor> KubeExecutorWiring::executor() const {
  return impl_->executor;
}
const std::string& KubeExecutorWiring::namespace_name() const {
  return impl_->namespace_name;
}
const std::string& KubeExecutorWiring::context() const {
  return impl_->context;
}
const std::string& KubeExecutorWiring::agent_endpoint() const {
  return impl_->endpoint;
}

absl::Status KubeExecutorWiring::Start(Engine* engine,
                                       const std::string& token) {
  if (impl_->blobs != nullptr) {
    return absl::FailedPreconditionError("kubernetes executor: started twice");
  }
  absl::StatusOr<std::string> instance = KubeInstance(engine->store_dir());
  if (!instance.ok()) return instance.status();
  impl_->instance = *instance;
  service::AgentBlobServerOptions options;
  options.listen = impl_->flags.agent_listen;
  options.tls_cert = impl_->flags.agent_tls_cert;
  options.tls_key = impl_->flags.agent_tls_key;
  options.token = token;
  absl::StatusOr<std::unique_ptr<service::AgentBlobServer>> blobs =
      service::StartAgentBlobServer(engine, std::move(options));
  if (!blobs.ok()) {
    return absl::Status(
        blobs.status().code(),
        absl::StrCat("--agent-listen ", impl_->flags.agent_listen, ": ",
                     blobs.status().message()));
  }
  impl_->endpoint = impl_->flags.agent_endpoint.empty()
                        ? (*blobs)->address()
                        : impl_->flags.agent_endpoint;
  PodExecutorOptions pods;
  pods.name = kKubernetesExecutor;
  pods.client = impl_->client;
  pods.namespace_name = impl_->namespace_name;
  pods.agent_image = impl_->flags.agent_image;
  pods.agent_server = impl_->endpoint;
  pods.agent_token = (*blobs)->token();
  pods.agent_ca_pem = impl_->agent_ca_pem;
  pods.instance = impl_->instance;
  pods.pending_timeout = impl_->flags.pending_timeout;
  pods.keep_finished_pods = static_cast<int>(impl_->flags.keep_finished_pods);
  absl::StatusOr<std::unique_ptr<Executor>> executor =
      CreatePodExecutor(std::move(pods));
  if (!executor.ok()) return executor.status();
  if ((*executor)->Platform() != impl_->executor->Platform()) {
    return absl::InternalError("kubernetes executor: the platform changed");
  }
  impl_->blobs = std::move(*blobs);
  impl_->executor->Bind(std::shared_ptr<Executor>(std::move(*executor)));
  return absl::OkStatus();
}

absl::StatusOr<std::pair<int, int>> KubeExecutorWiring::SweepOrphans(
    Engine* engine) {
  absl::StatusOr<OrphanSweep> sweep = DeleteOrphanedPods(
      *impl_->client, impl_->namespace_name, impl_->instance,
      [engine](const std::string& run_id) -> absl::StatusOr<bool> {
        absl::StatusOr<v1::Run> run = engine->GetRun(run_id);
        if (absl::IsNotFound(run.status())) return false;
        if (!run.ok()) return run.status();
        // Recorded unfinished: running here or in another process on this
        // store, or waiting to be resumed; its pods will be re-attached.
        return run->state() == v1::RUN_QUEUED ||
               run->state() == v1::RUN_RUNNING;
      });
  if (!sweep.ok()) return sweep.status();
  return std::make_pair(static_cast<int>(sweep->deleted.size()),
                        static_cast<int>(sweep->kept.size()));
}

void KubeExecutorWiring::Stop() {
  if (impl_ != nullptr && impl_->blobs != nullptr) impl_->blobs->Stop();
}

absl::Status StartKubernetes(KubeExecutorWiring* kube, Engine* engine,
                             const std::string& token) {
  if (absl::Status s = kube->Start(engine, token); !s.ok()) return s;
  absl::StatusOr<std::pair<int, int>> swept = kube->SweepOrphans(engine);
  if (!swept.ok()) {
    return absl::Status(
        swept.status().code(),
        absl::StrCat("kubernetes executor: deleting the pods of finished "
                     "runs: ",
                     swept.status().message()));
  }
  std::fprintf(stderr,
               "kiln: kubernetes executor: context %s, namespace %s; pods' "
               "agents dial %s\n",
               kube->context().c_str(), kube->namespace_name().c_str(),
               kube->agent_endpoint().c_str());
  if (swept->first > 0 || swept->second > 0) {
    std::fprintf(stderr,
                 "kiln: kubernetes executor: %d pod(s) of finished runs "
                 "deleted, %d of unfinished runs kept\n",
                 swept->first, swept->second);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> KubeInstance(const std::string& store_dir) {
  return ReadOrCreateStateFile(
      store_dir + "/kubernetes/instance", []() -> absl::StatusOr<std::string> {
        absl::StatusOr<std::string> token = service::NewRandomToken();
        if (!token.ok()) return token.status();
        // A label value: 20 hex digits are plenty to tell stores apart.
        return absl::StrCat("k", token->substr(0, 20));
      });
}

}  // namespace kiln::cli
