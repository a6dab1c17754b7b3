// The engine's services for one run, as the kinds use them: the stores,
// the executor, secret masking, host fingerprinting, visible warnings.
#ifndef KILN_ENGINE_KINDS_KIND_ENV_H_
#define KILN_ENGINE_KINDS_KIND_ENV_H_

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "base/mutex.h"
#include "base/trace.h"
#include "engine/cas/artifact_store.h"
#include "engine/exec/executor_set.h"
#include "engine/image/image_store.h"
#include "engine/pipeline/kind_spec.h"
#include "engine/pipeline/substitute.h"
#include "engine/store/action_cache.h"
#include "engine/store/run_store.h"
#include "executors/executor.h"
#include "kiln/v1/pipeline.pb.h"

namespace kiln {

// What the engine hands the task runner for one run.
struct TaskRunnerContext {
  std::string run_id;
  std::string pipeline_name;
  std::string store_dir;
  // Host directory that stash/unstash paths are relative to ("" = none).
  std::string source_dir;
  // Tree digest of the implicit artifact `source` ("" = none).
  std::string source_digest;
  pipeline::SubstitutionContext substitution;
  // Values of secret params: masked in logs, HMAC'd in keys.
  std::map<std::string, std::string> secrets;
  std::string hmac_key;
  bool keep_workspaces = false;
  // An attempt's stored log file cap, unless the task sets max_log_bytes.
  int64_t max_log_file_bytes = 8 << 20;
  // What the executor can do. A task needing more fails with the reason,
  // or is skipped with it when the pipeline set `options.unsupported:
  // skip` (skip_unsupported). Validation refused every such task it could
  // see; what reaches run time is what only resolving ${...} revealed.
  pipeline::ExecCapabilities capabilities;
  bool skip_unsupported = false;

  // The default executor (kept for callers that set only it).
  Executor* executor = nullptr;
  // The executors, with the run's default; a task's comes from For(task).
  ExecutorSet executors;
  cas::ArtifactStore* artifacts = nullptr;
  store::ActionCache* action_cache = nullptr;
  store::RunStore* run_store = nullptr;
  // Emits a log line event (thread-safe).
  std::function<void(v1::RunEvent)> emit;
  // Pins run.image before the key and prepares images for executors on
  // this host (HostWorkspaceOptions.images). Null: image tasks fail.
  image::ImageStore* images = nullptr;
  // Registry access for containerize bases and pushes (null: none).
  oci::ImageSources* image_sources = nullptr;
  // The run's profile (null: none): spans on each task's track.
  TraceRecorder* trace = nullptr;
  // Deploy tasks' cluster: kubeconfig files (empty: $KUBECONFIG, else
  // ~/.kube/config, else in-cluster) and context ("" = current-context)
  // when the task names none.
  std::vector<std::string> kubeconfig_paths;
  std::string kube_context;
  // The pipeline's name and `environments:` (nothing else): where deploy
  // tasks go (engine/kinds/deploy_target.h). No environments: a deploy
  // reads deploy.kind/namespace/context from its task.
  v1::Pipeline environments;
};

namespace kinds {

// Replaces every encoding of a secret value (raw, base64, JSON-escaped,
// each line of a multi-line value) with "***". Immutable; thread-safe.
class SecretMask {
 public:
  explicit SecretMask(const std::map<std::string, std::string>& secrets);
  std::string Mask(std::string line) const;

 private:
  std::vector<std::string> forms_;  // longest first
};

// The executor platform plus what identifies the environment of a host
// task (host OS release, the invoked binary's digest), each read once for
// the lifetime of the object (a run). Thread-safe.
class HostPlatform {
 public:
  std::string For(const Executor& executor, const v1::Task& task);

 private:
  Mutex mu_;
  // (argv[0], PATH) -> ";bin=" and the first 16 hex digits of the SHA-256
  // of the binary it resolves to ("" when it resolves to none).
  std::map<std::pair<std::string, std::string>, std::string> binary_digests_
      ABSL_GUARDED_BY(mu_);
  std::string os_release_digest_ ABSL_GUARDED_BY(mu_);
};

// Everything a kind may use while executing. Thread-safe.
class KindEnv {
 public:
  explicit KindEnv(TaskRunnerContext ctx);

  const TaskRunnerContext& ctx() const { return ctx_; }
  // The executor that runs `task` (ctx.executors, else the single one).
  Executor* ExecutorFor(const v1::Task& task) const {
    return !ctx_.executors.empty() ? ctx_.executors.For(task) : ctx_.executor;
  }
  std::string Platform(const v1::Task& task) {
    return platform_.For(*ExecutorFor(task), task);
  }
  std::string Mask(std::string line) const { return mask_.Mask(line); }
  // Digest of an artifact visible to a task: `source`, or an output of a
  // finished task it needs. NotFound otherwise.
  absl::StatusOr<std::string> ArtifactDigest(
      const std::string& artifact,
      const std::map<std::string, v1::TaskStatus>& finished) const;
  // `relative` (already split and checked) shown below the source directory.
  std::string SourcePath(const std::string& relative) const;
  // A visible line on the task's log stream (stderr, prefixed "kiln: "),
  // for what went wrong without failing the task.
  void Warn(const std::string& task, int attempt,
            const std::string& text) const;

 private:
  TaskRunnerContext ctx_;
  SecretMask mask_;
  HostPlatform platform_;
};

}  // namespace kinds
}  // namespace kiln

#endif  // KILN_ENGINE_KINDS_KIND_ENV_H_
