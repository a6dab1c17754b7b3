// kiln::Engine — the library facade the CLI, the gRPC service and embedding
// programs use. It runs pipelines on an executor, memoizes tasks in the
// action cache, moves artifacts through the content store, and records every
// run durably (so a run survives a crash of the process and resumes).
//
//   auto engine = kiln::Engine::Create({.store_dir = dir, .executor = ex});
//   auto run = (*engine)->Submit(request);            // starts at once
//   (*run)->Subscribe(0, [](const v1::RunEvent& e) { ... });
//   v1::Run result = (*run)->Wait();
//
// Thread-safety: every method of Engine and RunHandle is thread-safe.
#ifndef KILN_ENGINE_ENGINE_H_
#define KILN_ENGINE_ENGINE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "base/trace.h"
#include "engine/archive/byte_source.h"
#include "engine/archive/safe_extract.h"
#include "engine/cas/artifact_store.h"
#include "engine/cas/content_store.h"
#include "engine/cas/digest.h"
#include "engine/deploy/rollback.h"
#include "engine/engine_queries.h"
#include "engine/gc/garbage_collector.h"
#include "engine/image/image_store.h"
#include "engine/oci/source.h"
#include "engine/store/run_store.h"
#include "engine/store/store.h"
#include "executors/executor.h"
#include "kiln/v1/pipeline.pb.h"
#include "kiln/v1/run.pb.h"

namespace kiln {

namespace pipeline {
class SourceMap;   // engine/pipeline/diagnostic.h
class Validation;  // engine/pipeline/validate.h
}  // namespace pipeline

struct EngineOptions {
  // Where the content store, action cache, run store and logs live.
  std::string store_dir;
  // Run `run` tasks: `executor` and/or `executors` (at least one), each
  // under its Name(). A task picks one by Task.executor, else the pipeline's
  // options.executor, else `default_executor` ("" = `executor`, or the
  // first of `executors`). Unknown names are refused by Submit.
  std::shared_ptr<Executor> executor;
  std::vector<std::shared_ptr<Executor>> executors;
  std::string default_executor;
  // Task attempts running at once, per run.
  int parallelism = 2;
  // First retry delay; doubles per attempt.
  absl::Duration retry_backoff = absl::Seconds(1);
  // Keep task workspaces after the task (for debugging).
  bool keep_workspaces = false;

  // Bounds on task output: a task may print without end, and the engine's
  // memory, the logs and the run store stay bounded all the same.
  // An attempt's stored log file, unless the task sets max_log_bytes (the
  // executor stops a task past max_log_bytes, or 64 MiB when unset).
  int64_t max_log_file_bytes = 8 << 20;
  // Log lines streamed as events (and so recorded in the run store) per
  // attempt: past either bound, lines go only to the log file, and a
  // "[kiln: N log lines not streamed ...]" event says how many.
  int64_t max_log_events_per_attempt = 10000;
  int64_t max_log_event_bytes_per_attempt = 1 << 20;
  // Log events of a run waiting to be recorded; past it, further lines are
  // dropped from the stream (and counted in that marker) until it drains.
  int64_t max_pending_log_events = 10000;

  // Image-mode runs (`run.image`, docs/image-store.md). How references
  // reach their registries (the registry client's RegistrySources). Null:
  // no registry access — a tag cannot be pinned and only images already in
  // the store run (a task that needs more fails saying so).
  std::shared_ptr<oci::ImageSources> image_sources;
  // The store's images (pins, pulls, the layer cache), given to executors
  // as HostWorkspaceOptions.images. Null: the engine opens one at
  // <store>/images over image_sources with default limits. Set it to share
  // one with executors built before the engine (e.g. a sandbox whose
  // Capabilities().images depends on having an ImageAccess).
  std::shared_ptr<image::ImageStore> image_store;

  // Where runs record their profile (`kiln run --profile`, docs/profile.md):
  // per task, queueing, key, cache lookup, input staging, sandbox start,
  // command, output stashing and recording; null: no profile.
  std::shared_ptr<TraceRecorder> trace;

  // The dashboard's base URL as the pipeline's notifications link to it
  // (`kiln serve --public-url`): ${run.url} is "<public_url>/run?id=<id>";
  // "" (local runs): ${run.url} is empty.
  std::string public_url;
  // Deploy tasks (docs/deploy.md): the cluster a deploy task without its
  // own `context` applies to. Empty paths: $KUBECONFIG, else
  // ~/.kube/config, else the in-cluster service account; "" context: the
  // kubeconfig's current-context.
  std::vector<std::string> kubeconfig_paths;
  std::string kube_context;
};

struct RunRequest {
  v1::Pipeline pipeline;
  // The directory stashed as the artifact `source` at the start of the run,
  // and against which stash/unstash paths resolve. May be empty.
  std::string source_dir;
  v1::Trigger trigger;
  // A retried submission with the same key returns the first run.
  std::string idempotency_key;
  // Approval gates decided before the run starts (a local run's
  // `--approve TASK`): task -> the approving principal. Each must name a
  // task with `approval:` (InvalidArgument otherwise); the decision is
  // recorded with the run when the task is reached.
  std::map<std::string, std::string> approved_in_advance;
  // Overrides the pipeline's failure policy with CONTINUE.
  bool keep_going = false;
  // Where the pipeline's fields are in the file it was loaded from
  // (pipeline::LoadedPipeline::source_map), or null: Submit's diagnostics
  // then say FILE:LINE:COL instead of a field path.
  std::shared_ptr<const pipeline::SourceMap> source_map;
  // The loader's proof that `pipeline` passed every check that does not
  // depend on the executors (pipeline::LoadedPipeline::validation), or
  // null. When it covers `pipeline` (same content), Submit runs only the
  // checks that depend on its executors' capabilities; otherwise all.
  std::shared_ptr<const pipeline::Validation> validation;
};

using EventCallback = std::function<void(const v1::RunEvent&)>;

// A run this engine knows: live (executing in this process) or recorded.
class RunHandle {
 public:
  virtual ~RunHandle() = default;
  virtual const std::string& id() const = 0;

  // Calls `callback` with every event whose sequence is > after_seq: the
  // recorded ones first, then live ones, each exactly once and in order.
  // Callbacks run on an engine thread and must not block for long. Returns
  // an id for Unsubscribe. The last event of a finished run is its final
  // RunStateChanged.
  virtual int Subscribe(uint64_t after_seq, EventCallback callback) = 0;
  virtual void Unsubscribe(int subscription) = 0;

  // Blocks until the run is final; returns it. For a run another process
  // owns, also returns when that owner dies before finishing it: the run
  // is then unfinished with owner_gone set ("interrupted (owner gone)").
  virtual v1::Run Wait() = 0;
  // As Wait, without a copy: the final run, shared with the engine (for a
  // run of 10,000 tasks, Wait's copy was ~4 % of a no-op's time, serial
  // after its last task).
  virtual std::shared_ptr<const v1::Run> WaitShared() {
    return std::make_shared<const v1::Run>(Wait());
  }
  // As WaitShared, for callers that need only how the run ended: the run
  // may come without its tasks (tasks_omitted set) — a replayed run of
  // 10,000 tasks is then never rebuilt task by task. The default returns
  // the whole run.
  virtual std::shared_ptr<const v1::Run> WaitSummary() { return WaitShared(); }
  // As Wait, at most `timeout`; false if the run is still going.
  virtual bool WaitFor(absl::Duration timeout, v1::Run* run) = 0;

  // First call: graceful (running tasks stopped, `finally` runs). Second
  // call: immediate (`finally` stopped too).
  virtual void Cancel(const std::string& reason) = 0;
};

class Engine {
 public:
  // Opens the stores under options.store_dir.
  static absl::StatusOr<std::unique_ptr<Engine>> Create(EngineOptions options);
  virtual ~Engine() = default;

  // Validates and starts a run. InvalidArgument (with every diagnostic) for
  // an invalid pipeline or trigger params; the run starts executing before
  // this returns.
  virtual absl::StatusOr<std::shared_ptr<RunHandle>> Submit(
      RunRequest request) = 0;

  // Continues a recorded, unfinished run (e.g. after the process that ran it
  // was killed): tasks that finished are not executed again. Returns the
  // live handle if the run is already executing here.
  virtual absl::StatusOr<std::shared_ptr<RunHandle>> Resume(
      const std::string& run_id) = 0;

  // What ResumeUnfinished did: the runs it resumed, and each unfinished run
  // it could not resume with why (another live kiln process executes it,
  // an unreadable record).
  struct ResumeReport {
    std::vector<std::string> resumed;
    std::vector<std::pair<std::string, absl::Status>> not_resumed;
  };

  // Resumes every unfinished run in the store. An error only when the store
  // cannot list them.
  virtual absl::StatusOr<ResumeReport> ResumeUnfinished() = 0;

  // Starts a new run with the same pipeline, trigger and source as a
  // finished one. Tasks whose inputs are unchanged hit the action cache, so
  // only what failed (and what depends on it) executes again.
  virtual absl::StatusOr<std::shared_ptr<RunHandle>> Retry(
      const std::string& run_id) = 0;

  // A handle to any recorded run (live or finished). NotFound if unknown.
  virtual absl::StatusOr<std::shared_ptr<RunHandle>> Find(
      const std::string& run_id) = 0;

  virtual absl::StatusOr<v1::Run> GetRun(const std::string& run_id) = 0;

  // Cancels a live run. NotFound if unknown; FailedPrecondition if the run is
  // not executing in this engine.
  virtual absl::Status Cancel(const std::string& run_id,
                              const std::string& reason) = 0;

  // Approves (the task then runs) or rejects (it fails "rejected by
  // PRINCIPAL: COMMENT") a task of a live run that is waiting for approval
  // (TASK_WAITING_FOR_APPROVAL); the decision is recorded durably before
  // this returns, and survives a restart. NotFound for an unknown run or
  // task; PermissionDenied if the task's `approvers:` does not list
  // `principal`; FailedPrecondition if the task has no gate, is not
  // waiting, or the run is not executing in this engine; InvalidArgument
  // for a comment over 4096 bytes. Returns the gate's record.
  virtual absl::StatusOr<v1::ApprovalStatus> DecideApproval(
      const std::string& run_id, const std::string& task, bool approve,
      const std::string& principal, const std::string& comment) = 0;

  // Stops for a restart: nothing new starts, running tasks get `grace` to
  // finish (then they are stopped and will run again), and every live run
  // stays unfinished in the store, to be resumed by ResumeUnfinished() of
  // the next engine on this store. After Shutdown, Submit fails with
  // Unavailable.
  virtual void Shutdown(absl::Duration grace) = 0;

  const std::string& store_dir() const { return store().dir(); }

  // --- Queries and transfers over the engine's store. The service and the
  // CLI use these, never the stores themselves. Non-virtual: they read
  // store(), so an engine (or a test double) provides only that.

  // Recorded runs, newest first, a page at a time (RunStore::ListRuns).
  absl::StatusOr<store::RunPage> ListRuns(const store::RunFilter& filter,
                                          int page_size,
                                          const std::string& page_token);
  // The trigger revision of the newest successful run of `pipeline_name` on
  // `branch` among its newest 1000 successful runs ("": none). Reads no
  // task rows (RunStore::LastSucceededRevision).
  absl::StatusOr<std::string> LastSucceededRevision(
      const std::string& pipeline_name, const std::string& branch);
  // A run's recorded events with sequence > after_seq, at most `limit`.
  absl::StatusOr<std::vector<v1::RunEvent>> ReadEvents(
      const std::string& run_id, uint64_t after_seq, int limit);
  // Waits until the run records an event after `after_seq` or `timeout`
  // passes; returns the highest sequence (RunStore::WaitForEvents).
  absl::StatusOr<uint64_t> WaitForEvents(const std::string& run_id,
                                         uint64_t after_seq,
                                         absl::Duration timeout);
  // The sequence of a run's last recorded event.
  absl::StatusOr<uint64_t> LastSequence(const std::string& run_id);
  // The pipeline a run was submitted with (secret defaults included: for
  // redaction, never for a reply).
  absl::StatusOr<v1::Pipeline> GetPipeline(const std::string& run_id);
  // The directory a run's source was stashed from ("" for none).
  absl::StatusOr<std::string> GetSourceDir(const std::string& run_id);
  // The path of an attempt's log file (it may not exist yet).
  std::string AttemptLogPath(const std::string& run_id, const std::string& task,
                             uint32_t attempt) const;

  // Blobs (the content store).
  bool HasBlob(const cas::Digest& digest) const;
  std::vector<cas::Digest> FindMissingBlobs(
      const std::vector<cas::Digest>& digests) const;
  absl::StatusOr<std::unique_ptr<cas::BlobWriter>> NewBlobWriter() const;
  absl::StatusOr<std::unique_ptr<cas::BlobReader>> OpenBlob(
      const cas::Digest& digest) const;

  // Puts a source uploaded as artifact `tree` (its archive blob already
  // uploaded) into a fresh directory under the store, to submit a run
  // with. FailedPrecondition if the archive is not uploaded; a claim that
  // fails verification is forgotten. Returns the directory. `limits` bound
  // the extraction (a client's archive may be a decompression bomb).
  absl::StatusOr<std::string> PutSource(const cas::Digest& tree,
                                        const cas::Digest& archive,
                                        const archive::ExtractLimits& limits);

  // Garbage collection of the store (gc/garbage_collector.h), dry run
  // included.
  absl::StatusOr<gc::GcReport> CollectGarbage(const gc::GcOptions& options);

  // The store the engine owns (valid while it lives), for embedding
  // programs and tests; the service and the CLI use the methods above.
  virtual store::Store& store() const = 0;

  // --- For the CLI's offline verbs (runs, logs, stash, unstash, cas,
  // cache), which reach the store only through these.

  // An engine over the store at `store_dir` (created if needed) for the
  // queries and transfers above and below, with no executor: Submit,
  // Resume, ResumeUnfinished, Retry, Find and Cancel fail with
  // FailedPrecondition; GetRun reads the run store.
  static absl::StatusOr<std::unique_ptr<Engine>> OpenStore(
      const std::string& store_dir);
  // Whether `store_dir` holds a run store (creates nothing).
  static bool HasRunStore(const std::string& store_dir);

  // A run's attempt logs in pipeline order (only `task`'s unless ""), each
  // path absolute.
  absl::StatusOr<std::vector<store::AttemptLog>> AttemptLogs(
      const std::string& run_id, const std::string& task);
  // Stores the tree below `dir` (only `paths` in it, relative, unless
  // empty) as an artifact.
  absl::StatusOr<cas::StashResult> StashDirectory(
      const std::string& dir, const std::vector<std::string>& paths = {});
  // Extracts artifact `tree` into `dir` (new or empty), verified.
  absl::Status UnstashArtifact(const cas::Digest& tree, const std::string& dir);

  // --- Task outputs (engine_artifacts.cc): what `kiln artifacts`, `kiln
  // unstash RUN/TASK/ARTIFACT` and Kiln.ListArtifacts/DownloadArtifact use.

  // The output artifacts of `run_id`'s tasks (only `task`'s unless ""), in
  // the run's task order, each described from its stored archive's headers.
  // NotFound for an unknown run or task.
  absl::StatusOr<std::vector<ArtifactInfo>> ListArtifacts(
      const std::string& run_id, const std::string& task);
  // One output: NotFound also when `task` has no output `artifact`, or the
  // store no longer holds it.
  absl::StatusOr<ArtifactInfo> GetArtifact(const std::string& run_id,
                                           const std::string& task,
                                           const std::string& artifact);
  // The bytes of a stored artifact: its archive as stored (zstd-compressed
  // deterministic tar), or with `tar` the tar stream (decompressed, bounded
  // as an unstash is). A corrupt blob makes Next() fail DataLoss at the
  // latest at its end.
  absl::StatusOr<std::unique_ptr<archive::ByteSource>> OpenArtifact(
      const ArtifactInfo& artifact, bool tar);
  // Extracts artifact `tree` into `dir`, verified against `tree`. `dir`
  // must be new or an empty directory, unless `replace`: then whatever is
  // at `dir` is replaced once the extraction succeeded (a symlink at `dir`
  // is replaced, never followed; nothing is written through it). `dir`'s
  // parent is the caller's (created if missing, followed like any path).
  absl::Status UnstashArtifactInto(const cas::Digest& tree,
                                   const std::string& dir, bool replace);
  // As UnstashArtifactInto for an archive blob that came from elsewhere
  // (already in this store, e.g. downloaded from a server): the claim that
  // `archive` holds `tree` is recorded, verified by the extraction, and
  // forgotten if the extraction fails.
  absl::Status UnstashDownloadedArtifact(const cas::Digest& tree,
                                         const cas::Digest& archive,
                                         const std::string& dir, bool replace);
  // Stores the file at `path` as a blob.
  absl::StatusOr<cas::Digest> PutBlobFile(const std::string& path);
  // Counts of blobs, artifacts and runs.
  absl::StatusOr<StoreStats> GetStoreStats();
  // Why `task` of `run_id` hit or missed the cache: its key, the key's
  // inputs and what changed since the last earlier run (engine_queries.h).
  // NotFound for an unknown run or task.
  absl::StatusOr<CacheExplanation> ExplainCacheKey(const std::string& run_id,
                                                   const std::string& task);

  // --- Deployments (engine_deployments.cc): what `kiln env list|history|
  // rollback` use (docs/deploy.md, "Deployment records").

  // The newest deployment of each (environment, namespace).
  absl::StatusOr<std::vector<store::DeploymentRecord>> LatestDeployments();
  // Recorded deployments matching `filter`, newest first.
  absl::StatusOr<std::vector<store::DeploymentRecord>> ListDeployments(
      const store::DeploymentFilter& filter);
  // Re-applies a recorded deployment's manifests (deploy::Rollback; its
  // scratch directory is under the store's work/) and returns the
  // rollback's own record. `log` gets the progress lines.
  absl::StatusOr<store::DeploymentRecord> RollbackEnvironment(
      const deploy::RollbackRequest& request,
      const std::function<void(const std::string&)>& log);
};

}  // namespace kiln

#endif  // KILN_ENGINE_ENGINE_H_
