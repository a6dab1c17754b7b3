// The kubernetes executor of `kiln run` and `kiln serve`
// (docs/kubernetes-executor.md, "Usage"): its flags; the checks that run
// before the engine exists, so that a misconfiguration (unreadable
// kubeconfig, unknown context, no namespace, unreachable API server, an
// agent image not pinned by digest) fails before any task runs, naming the
// problem; the agents' blob endpoint; the orphan sweep.
//
//   auto kube = KubeExecutorWiring::Prepare(flags);  // checks, no engine
//   options.executors.push_back((*kube)->executor());
//   ... engine = Engine::Create(options) ...
//   (*kube)->Start(engine, token);        // blob endpoint + pod executor
//   (*kube)->SweepOrphans(engine);        // pods of finished runs
//   ... run ...; (*kube)->Stop();
//
// The engine needs its executors before it exists, and the pods need the
// blob endpoint that serves the engine's store: executor() is a stand-in
// with the pod executor's name, platform and capabilities whose Start()
// forwards to the pod executor once Start() made it (before that it
// refuses with FailedPrecondition; nothing runs before Start()).
#ifndef KILN_ENGINE_CLI_KUBE_EXECUTOR_H_
#define KILN_ENGINE_CLI_KUBE_EXECUTOR_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "engine/cli/args.h"
#include "engine/engine.h"
#include "executors/executor.h"

namespace kiln::cli {

inline constexpr char kKubernetesExecutor[] = "kubernetes";

struct KubeFlags {
  // On with `--executor kubernetes` or `--kube-agent-image`.
  bool enabled = false;
  std::string kubeconfig;      // "" = $KUBECONFIG, ~/.kube/config, in-cluster
  std::string context;         // "" = current-context
  std::string namespace_name;  // "" = the context's
  std::string agent_image;     // REF@sha256:<64 hex>
  std::string agent_listen = "127.0.0.1:0";
  std::string agent_endpoint;  // "" = the bound listen address
  std::string agent_tls_cert, agent_tls_key, agent_ca;
  absl::Duration pending_timeout = absl::Minutes(5);
  int64_t keep_finished_pods = 0;
};

void AddKubeFlags(Args* args);
// The flags' values; InvalidArgument naming the flag (a tag instead of a
// digest, TLS half given, a bad duration, kubernetes flags without the
// executor, `--executor kubernetes` without an agent image).
absl::StatusOr<KubeFlags> ReadKubeFlags(const Args& args);

class KubeExecutorWiring {
 public:
  // Loads the cluster configuration, resolves the namespace and checks with
  // one GET of the namespace that the API server answers, the credentials
  // work and the namespace exists. Errors name the kubeconfig, context,
  // namespace or server.
  static absl::StatusOr<std::unique_ptr<KubeExecutorWiring>> Prepare(
      const KubeFlags& flags);
  ~KubeExecutorWiring();

  // For EngineOptions.executors.
  std::shared_ptr<Executor> executor() const;
  const std::string& namespace_name() const;
  const std::string& context() const;

  // Starts the agents' blob endpoint over `engine` (token: "" = a fresh
  // random one) and the pod executor the stand-in forwards to; its pods
  // carry KubeInstance(engine's store) as label kiln.dev/instance. The
  // endpoint must be stopped (Stop) before the engine is destroyed.
  absl::Status Start(Engine* engine, const std::string& token);
  // The address pods dial (after Start).
  const std::string& agent_endpoint() const;

  // DeleteOrphanedPods (executors/kubernetes/orphan_pods.h) with the
  // engine's run store as the judge: a run is live while it is queued or
  // running (or recorded unfinished, to be resumed). Returns the number of
  // pods deleted and kept.
  absl::StatusOr<std::pair<int, int>> SweepOrphans(Engine* engine);

  // Stops the blob endpoint (idempotent; the destructor stops too).
  void Stop();

  class Impl;

 private:
  explicit KubeExecutorWiring(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Start, then SweepOrphans; says on stderr where pods run, where they dial
// and what the sweep did. Errors name the step.
absl::Status StartKubernetes(KubeExecutorWiring* kube, Engine* engine,
                             const std::string& token);

// The value of label kiln.dev/instance for the store at `store_dir`: a
// random id kept in STORE/kubernetes/instance (created once).
absl::StatusOr<std::string> KubeInstance(const std::string& store_dir);

}  // namespace kiln::cli

#endif  // KILN_ENGINE_CLI_KUBE_EXECUTOR_H_
