// RunStore: the durable record of every run — its pipeline, trigger, state,
// task statuses, attempts, log references and the ordered event stream — in
// SQLite at <store_dir>/runs.db (see sqlite.h for the durability contract).
//
// Events are the source of truth for state: AppendEvents assigns per-run
// sequence numbers (1, 2, 3, ... without gaps) and applies the state changes
// the events carry to the runs/tasks/attempts tables in the same
// transaction, so the tables always agree with the last event of each run,
// also after a crash at any point.
//
// A new run starts RUN_QUEUED with every task (tasks, then finally) in
// TASK_PENDING and no events (the engine records the task rows when the run
// starts — a replay has none — and reads show them pending until then).
//
// Several processes may open one store at once (the CLI reads while
// `kiln run` or `kiln serve` writes); writes serialize on SQLite's lock.
// Thread-safety: all methods are thread-safe. One connection per RunStore,
// guarded by a mutex; WaitForEvents does not hold it while waiting.
#ifndef KILN_ENGINE_STORE_RUN_STORE_H_
#define KILN_ENGINE_STORE_RUN_STORE_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/optional.h"
#include "base/mutex.h"
#include "engine/store/sqlite.h"
#include "kiln/v1/pipeline.pb.h"
#include "kiln/v1/run.pb.h"

namespace kiln::store {

// `trigger` with the values of the pipeline's secret params replaced by
// kSecretPlaceholder.
v1::Trigger RedactSecretParams(const v1::Pipeline& pipeline,
                               const v1::Trigger& trigger);

struct CreatedRun {
  std::string run_id;
  // false: a run with the same idempotency key already existed; run_id is
  // that run's and nothing was written.
  bool created = true;
  // The hex SHA-256 of the pipeline's deterministic serialization, as kept
  // in pipeline_blobs (set when created).
  std::string pipeline_digest;
};

struct RunFilter {
  absl::optional<v1::RunState> state;  // unset: any
  std::string pipeline_name;           // empty: any
};

struct RunPage {
  std::vector<v1::Run> runs;    // newest first
  std::string next_page_token;  // empty: no more
};

struct AttemptLog {
  std::string task;
  uint32_t attempt = 0;
  std::string path;  // as recorded (relative to the store dir, or absolute)
  int64_t bytes = 0;
};

// What a finished task produced, beyond its state.
struct TaskOutputs {
  std::string cache_key;
  std::map<std::string, std::string> outputs;  // artifact -> "sha256:..."
  std::map<std::string, std::string> results;  // key -> value
};

// Deployments (run_store_deployments.cc, schema 6; 7 adds force and the
// objects' uid, resourceVersion, generation): what a deploy task or
// `kiln env rollback` applied to an environment's namespace, success or
// failure. Ids are monotonic (never reused). No secret is recorded: objects
// by kind and name only, and the reason as the task's (masked) log says it.
struct DeployedObject {
  DeployedObject() = default;
  DeployedObject(std::string api_version, std::string kind,
                 std::string namespace_name, std::string name)
      : api_version(std::move(api_version)),
        kind(std::move(kind)),
        namespace_name(std::move(namespace_name)),
        name(std::move(name)) {}

  std::string api_version, kind, namespace_name, name;  // ns "": cluster
  // As the apply (and the wait) left the live object; "" / 0 when unknown
  // (recorded before schema 7, or the object has no generation).
  std::string uid, resource_version;
  int64_t generation = 0;
};

struct DeploymentRecord {
  int64_t id = 0;  // assigned by RecordDeployment
  std::string environment;
  std::string namespace_name;
  std::string kube_context;             // "" = in-cluster
  std::string run_id;                   // "" for a rollback
  std::string task;                     // "rollback" for a rollback
  std::string manifests_digest;         // the artifact's tree digest
  std::vector<std::string> images;      // as applied, sorted, unique
  std::vector<DeployedObject> objects;  // applied, in apply order
  absl::Time started, finished;
  bool succeeded = false;
  std::string reason;       // why it failed ("" on success)
  int64_t rollback_to = 0;  // a rollback: the deployment re-applied
  bool force = false;       // applied with force (took fields over)
};

// Which deployments ListDeployments returns.
struct DeploymentFilter {
  std::string environment;     // "" = any
  std::string namespace_name;  // "" = any
  std::string run_id;          // "" = any
  int limit = 0;               // <= 0: 100; capped at 10000
};

// Whole-run replay (run_store_replay.cc, schema 8): a run whose every
// task key would equal a finished run's, while none of those cache entries
// changed, is recorded as that run's replay — one row, no task, attempt,
// value or task-event rows. Reads of it (GetRun, ReadEvents) show what the
// same run through the scheduler would have recorded: every task
// TASK_CACHED ("cache hit") with the source's key, outputs and results,
// each with a TASK_RUNNING and a TASK_CACHED event, in the order the
// source's tasks finished (needs before their dependents).
struct ReplayArchive {
  std::string tree;     // the output's tree digest
  std::string archive;  // its archive blob's digest
  int64_t size = 0;     // the blob's size
};
// A shard directory of the artifact index or the blob store as it was when
// a source's archives were checked (cas::ArtifactStore::ShardStamp).
struct ReplayShardStamp {
  std::string shard;
  uint64_t ino = 0;
  int64_t mtime_ns = 0;
  int64_t ctime_ns = 0;
};
// An arena for a structure of many small messages (a run's 10,000 task
// statuses): blocks grow to 1 MiB, so there are few of them to allocate.
std::unique_ptr<google::protobuf::Arena> NewLargeArena();

// A replay source but its tasks (what RecordReplaySource takes beside them).
struct ReplaySourceParts {
  std::string run_id;  // the source run
  // Indexes into the tasks in the order the tasks finished.
  std::vector<uint32_t> order;
  // Every output's verified archive: what must still be in the store.
  std::vector<ReplayArchive> archives;
  // Shards unchanged since the archives were checked need no second look
  // at their entries.
  std::vector<ReplayShardStamp> stamps;
};
struct ReplaySource : ReplaySourceParts {
  // Holds the tasks (declared first: it outlives them).
  std::unique_ptr<google::protobuf::Arena> arena = NewLargeArena();
  // The tasks in pipeline order: name, exit_code, cache_key, outputs and
  // results (nothing else is kept). Parsed on `arena`: no task is copied.
  google::protobuf::RepeatedPtrField<v1::TaskStatus> tasks{arena.get()};
};
// The replayed statuses and events of `source` (shared by the engine, which
// emits them, and by the reads of a replayed run). Events carry run_id,
// sequences first_seq + from, ... and time `at`.
void SetReplayedStatus(const v1::TaskStatus& source, absl::Time at,
                       v1::TaskStatus* status);
// Events [from, to) of the 2 * tasks a replay has (index 2k: task
// order[k] RUNNING, 2k + 1: its TASK_CACHED).
std::vector<v1::RunEvent> ReplayedEvents(const ReplaySource& source,
                                         absl::string_view run_id,
                                         uint64_t first_seq, absl::Time at,
                                         size_t from, size_t to);
// The same events made one at a time in two messages that are reused (a
// replay of 10,000 tasks delivers 20,000 of them: the fields are assigned
// in place, no event is allocated). Not thread-safe; `source` outlives it.
class ReplayedEventMaker {
 public:
  ReplayedEventMaker(const ReplaySource& source, absl::string_view run_id,
                     uint64_t first_seq, absl::Time at);
  // 2 * the source's tasks.
  size_t size() const { return 2 * source_.order.size(); }
  // Event i < size(); valid until the next call.
  const v1::RunEvent& At(size_t i);

 private:
  const ReplaySource& source_;
  const uint64_t first_seq_;
  v1::RunEvent running_;
  v1::RunEvent cached_;
};

// Secret params at rest: CreateRun never writes a secret param's value
// (a param the pipeline declares `secret: true`) in plaintext. The stored
// trigger holds kSecretPlaceholder; the value is sealed with AES-256-GCM
// (bound to run id and param name) under the store's own key
// <store_dir>/params.key (0600, created atomically on first use, distinct
// from the HMAC key secret.key) in the run_secrets table. Runs recorded
// by a kiln before sealing existed (schema 1) are sealed the same way
// when a newer kiln first opens the store, and their plaintext is
// overwritten in the database file (schema 3).
constexpr char kSecretPlaceholder[] = "(secret)";

// Testing: called after every committed ReserveAttempt (crash tests kill
// the process there). nullptr (the default) for none.
using AttemptReservedHook = void (*)(absl::string_view run_id,
                                     absl::string_view task, uint32_t attempt);
void SetAttemptReservedHookForTesting(AttemptReservedHook hook);
// Testing: consulted before every AppendEvents; a non-OK status fails the
// append with it (nothing written). nullptr (the default) for none.
using AppendEventsHook = absl::Status (*)(absl::string_view run_id);
void SetAppendEventsHookForTesting(AppendEventsHook hook);
// The hook's verdict for `run_id` (OK when none is set): RecordReplay
// consults it too.
absl::Status CheckAppendEventsHook(absl::string_view run_id);

class RunStore {
 public:
  // Opens or creates <store_dir>/runs.db (creating store_dir if needed) and
  // migrates it to this kiln's schema. FailedPrecondition if a newer kiln
  // wrote it; DataLoss if it is not a database.
  static absl::StatusOr<std::unique_ptr<RunStore>> Open(
      const std::string& store_dir);

  // The current schema version (PRAGMA user_version).
  static int64_t SchemaVersion();

  const std::string& store_dir() const { return store_dir_; }

  // Records a new run in RUN_QUEUED. With a non-empty idempotency_key that
  // an earlier run used, returns that run's id with created=false.
  // InvalidArgument if the pipeline has no name or two tasks share a name.
  // With record_tasks false the task rows are left to AddTasks (the engine
  // adds them when the run starts, unless it is a replay); until then the
  // run reads as if they were there, every task TASK_PENDING.
  absl::StatusOr<CreatedRun> CreateRun(const v1::Pipeline& pipeline,
                                       const v1::Trigger& trigger,
                                       absl::string_view source_dir,
                                       absl::string_view idempotency_key,
                                       bool record_tasks = true);
  // Records the task rows of a run created without them (TASK_PENDING, in
  // pipeline order). Idempotent: rows already there are kept.
  absl::Status AddTasks(absl::string_view run_id);

  // Appends `events` to the run in one transaction: assigns run_id, the
  // next sequence numbers, and time (now, where unset), applies their state
  // changes to the tables, and returns them filled in. All or nothing. A
  // TASK_CACHED event also records the hit's cache key, outputs and results
  // (as SetTaskOutputs): a cache hit needs no other record.
  // NotFound for an unknown run; InvalidArgument for an event without a
  // kind, with another run's id, or a TaskStateChanged without a task name.
  // Wakes in-process WaitForEvents callers.
  absl::StatusOr<std::vector<v1::RunEvent>> AppendEvents(
      absl::string_view run_id, std::vector<v1::RunEvent> events);

  // The run with its task statuses (in pipeline order), and owner_gone set
  // if it is unfinished and no live process holds its lease. NotFound if
  // absent.
  absl::StatusOr<v1::Run> GetRun(absl::string_view run_id);
  // GetRun into `run`, which may live on an arena (a run of 10,000 tasks is
  // then built without a malloc for every message and map entry).
  // `tasks` false: the run without them (tasks_omitted set).
  absl::Status GetRunInto(absl::string_view run_id, v1::Run* run,
                          bool tasks = true);

  // Runs matching `filter`, newest first. page_size <= 0 means 100; it is
  // capped at 1000. page_token is "" or a previous next_page_token
  // (InvalidArgument otherwise).
  absl::StatusOr<RunPage> ListRuns(const RunFilter& filter, int page_size,
                                   absl::string_view page_token);

  // The trigger revision of the newest RUN_SUCCEEDED run of `pipeline_name`
  // whose trigger names `branch` and a non-empty revision, among the newest
  // `max_runs` succeeded runs of that pipeline ("" if none). Reads only the
  // runs' trigger records (one indexed query, no task rows), so its cost
  // does not grow with the size of the runs.
  absl::StatusOr<std::string> LastSucceededRevision(
      absl::string_view pipeline_name, absl::string_view branch, int max_runs);

  // Events with sequence > after_seq, in order, at most `limit` (<= 0: 1000).
  absl::StatusOr<std::vector<v1::RunEvent>> ReadEvents(absl::string_view run_id,
                                                       uint64_t after_seq,
                                                       int limit);

  // The run's highest sequence number (0: no events). NotFound if absent.
  absl::StatusOr<uint64_t> LastSequence(absl::string_view run_id);

  // Waits until the run has an event with sequence > after_seq or `timeout`
  // passes; returns the highest sequence (<= after_seq on timeout). Appends
  // by this RunStore wake it at once; appends by other processes are seen
  // by polling the database every `poll`.
  absl::StatusOr<uint64_t> WaitForEvents(
      absl::string_view run_id, uint64_t after_seq, absl::Duration timeout,
      absl::Duration poll = absl::Milliseconds(100));

  // Ids of runs in RUN_QUEUED or RUN_RUNNING (to resume after a crash),
  // oldest first.
  absl::StatusOr<std::vector<std::string>> UnfinishedRuns();

  // The trigger the run was created with, secret param values included
  // (decrypted): what resuming or retrying the run needs. GetRun's trigger
  // shows kSecretPlaceholder instead. FailedPrecondition naming the key
  // file if a secret cannot be decrypted (the store's params.key was
  // replaced since the run was created).
  absl::StatusOr<v1::Trigger> GetTriggerWithSecrets(absl::string_view run_id);

  // The pipeline and source directory the run was created with.
  absl::StatusOr<v1::Pipeline> GetPipeline(absl::string_view run_id);
  absl::StatusOr<std::string> GetSourceDir(absl::string_view run_id);

  // Records a task's cache key, output digests and results, replacing any
  // earlier ones. NotFound if the run or task is unknown.
  absl::Status SetTaskOutputs(absl::string_view run_id, absl::string_view task,
                              const TaskOutputs& outputs);

  // Records where an attempt's log lives and its size (creating the attempt
  // row if no event has yet). NotFound if the run or task is unknown.
  absl::Status RecordAttemptLog(absl::string_view run_id,
                                absl::string_view task, uint32_t attempt,
                                absl::string_view log_path, int64_t bytes);

  // Durably takes attempt number `attempt` of `task` before the attempt
  // does anything (workspace, log file, executor): in one transaction the
  // task's attempts count becomes at least `attempt` and the attempt's row
  // exists. A process killed at any later point (even before its
  // TASK_RUNNING event is recorded) leaves the number taken, so a resume
  // starts attempt `attempt + 1` with a new log and workspace, never
  // reusing or skipping one. Idempotent. InvalidArgument for attempt 0;
  // NotFound if the run or task is unknown.
  absl::Status ReserveAttempt(absl::string_view run_id, absl::string_view task,
                              uint32_t attempt);

  // Records the approval gate of `task` (run_store_approvals.cc): its
  // decision, durably, before the scheduler acts on it. A record with a
  // decision replaces any earlier one; one without never replaces a
  // decided one. NotFound if the run or task is unknown.
  absl::Status RecordApproval(absl::string_view run_id, absl::string_view task,
                              const v1::ApprovalStatus& approval);

  // Records a finished deployment (run_store_deployments.cc); returns its
  // id. InvalidArgument without an environment, namespace or digest.
  absl::StatusOr<int64_t> RecordDeployment(const DeploymentRecord& record);
  // Matching deployments, newest (highest id) first.
  absl::StatusOr<std::vector<DeploymentRecord>> ListDeployments(
      const DeploymentFilter& filter);
  // The newest deployment of each (environment, namespace), by environment
  // then namespace.
  absl::StatusOr<std::vector<DeploymentRecord>> LatestDeployments();
  // One deployment. NotFound if there is none with that id.
  absl::StatusOr<DeploymentRecord> GetDeployment(int64_t id);
  // The manifests digests of the newest `per_environment` deployments of
  // each (environment, namespace): what garbage collection keeps so that
  // they can be rolled back to.
  absl::StatusOr<std::vector<std::string>> RetainedDeploymentDigests(
      int per_environment);

  // The recorded logs of one task (or of every task when `task` is empty),
  // in pipeline order, then by attempt. NotFound for an unknown run.
  absl::StatusOr<std::vector<AttemptLog>> AttemptLogs(absl::string_view run_id,
                                                      absl::string_view task);

  // Records `tasks` (a finished run's, in pipeline order, every one
  // SUCCEEDED or CACHED; only the fields ReplaySource::tasks lists are
  // kept, one task at a time, without copying the run) and `parts` as what
  // a run with `fingerprint` replays while the action cache's epoch is
  // `cache_epoch`, replacing any earlier source of that fingerprint.
  // InvalidArgument if the order does not fit the tasks.
  absl::Status RecordReplaySource(
      absl::string_view fingerprint,
      const std::vector<const v1::TaskStatus*>& tasks,
      const ReplaySourceParts& parts, int64_t cache_epoch);
  // The source recorded for `fingerprint` and its epoch; nullopt if none.
  // DataLoss for an unreadable record.
  absl::StatusOr<
      absl::optional<std::pair<std::shared_ptr<const ReplaySource>, int64_t>>>
  FindReplaySource(absl::string_view fingerprint);
  // Records run `run_id` (created, no task events yet) as a replay of
  // `source` at `at`, in one transaction: its task rows go, its task
  // events take the next 2 * tasks sequence numbers. Returns where they
  // sit (ReplayedEvents makes them, a bounded number at a time).
  // FailedPrecondition if the run already has task events.
  // A non-empty `refreshed_stamps` replaces the source's stamps. `before`
  // and `after`: events appended right before and after the replay's, in
  // the same transaction (as AppendEvents would), and returned with them.
  struct RecordedReplay {
    std::vector<v1::RunEvent> before;  // as recorded
    uint64_t first_seq = 0;            // of the task events
    absl::Time at;                     // their time
    std::vector<v1::RunEvent> after;   // as recorded
  };
  absl::StatusOr<RecordedReplay> RecordReplay(
      absl::string_view run_id, const ReplaySource& source, absl::Time at,
      const std::vector<ReplayShardStamp>& refreshed_stamps = {},
      std::vector<v1::RunEvent> before = {},
      std::vector<v1::RunEvent> after = {});

  ~RunStore();

 private:
  RunStore(std::string store_dir, std::unique_ptr<Database> db);

  absl::Status CheckRunExists(absl::string_view run_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // For a replayed run: its source (loaded), first task-event sequence and
  // time; nullopt for any other run.
  struct Replay {
    std::shared_ptr<const ReplaySource> source;
    uint64_t first_seq = 0;
    absl::Time at;
  };
  absl::StatusOr<absl::optional<Replay>> LoadReplayLocked(
      absl::string_view run_id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // AppendEvents' body inside the caller's transaction: `events` (checked)
  // get the sequences after `seq` and `now` where they have no time, are
  // recorded and applied, and the run's last_seq follows.
  absl::Status InsertEventsLocked(absl::string_view run_id,
                                  std::vector<v1::RunEvent>* events,
                                  uint64_t seq,
                                  const google::protobuf::Timestamp& now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Recorded events of the run with after < seq < before, appended to
  // `events` until it holds `limit`.
  absl::Status ReadEventRowsLocked(absl::string_view run_id, uint64_t after,
                                   uint64_t before, int limit,
                                   std::vector<v1::RunEvent>* events)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<v1::Pipeline> GetPipelineLocked(absl::string_view run_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status InsertTasksLocked(absl::string_view run_id,
                                 const std::vector<std::string>& tasks)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Sources are never changed once recorded: the last one read is kept.
  absl::StatusOr<std::shared_ptr<const ReplaySource>> LoadReplaySourceLocked(
      absl::string_view source_run) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // GetRun/ListRuns without the owner probe (they take mu_ themselves).
  absl::StatusOr<v1::Run> GetRunRecord(absl::string_view run_id)
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status GetRunRecordInto(absl::string_view run_id, v1::Run* run,
                                bool tasks = true) ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<RunPage> ListRunRecords(const RunFilter& filter, int page_size,
                                         absl::string_view page_token)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Sets owner_gone for an unfinished run whose lease nobody holds
  // (run_lease.h); a run that finished since it was read is replaced by
  // its final record. Called without mu_: the probe takes file locks.
  void MarkOwnerGone(v1::Run* run) ABSL_LOCKS_EXCLUDED(mu_);
  // The bodies of SetTaskOutputs and ReserveAttempt, inside the caller's
  // transaction.
  absl::Status SetTaskOutputsLocked(absl::string_view run_id,
                                    absl::string_view task,
                                    const TaskOutputs& outputs)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The output and result rows of SetTaskOutputsLocked (not the cache key).
  absl::Status ReplaceTaskValuesLocked(absl::string_view run_id,
                                       absl::string_view task,
                                       const TaskOutputs& outputs)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status ReserveAttemptLocked(absl::string_view run_id,
                                    absl::string_view task, uint32_t attempt)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Applies `event` to the tables. `started` (may be null) is the
  // TASK_RUNNING event of the same task and attempt that came just before a
  // terminal `event` in the same batch, applied with it: the rows end as
  // applying both in turn leaves them, with half the statements.
  absl::Status ApplyEvent(absl::string_view run_id, const v1::RunEvent& event,
                          const v1::RunEvent* started = nullptr)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status RecordApprovalLocked(absl::string_view run_id,
                                    absl::string_view task,
                                    const v1::ApprovalStatus& approval)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status LoadApprovals(
      absl::string_view run_id,
      const absl::flat_hash_map<std::string, v1::TaskStatus*>& by_name)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // run_store_deployments.cc: the objects and images of `record`.
  absl::Status LoadDeploymentDetails(DeploymentRecord* record)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<uint64_t> LastSequenceLocked(absl::string_view run_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // run_store_secrets.cc
  absl::StatusOr<std::string> ParamsKeyLocked()
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status SealSecretsLocked(absl::string_view run_id,
                                 const v1::Pipeline& pipeline,
                                 const v1::Trigger& trigger)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Seals the plaintext secret params of runs recorded before schema 2
  // (listed in reseal_pending by migration 3) and overwrites the
  // plaintext (secure_delete, then a WAL checkpoint). Called by Open; a
  // run that fails stays listed for the next Open.
  absl::Status ResealPlaintextSecrets() ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status ResealRunLocked(absl::string_view run_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status LoadTasks(absl::string_view run_id, v1::Run* run)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::string store_dir_;
  kiln::Mutex mu_;
  std::shared_ptr<const ReplaySource> last_source_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<Database> db_ ABSL_GUARDED_BY(mu_);
  std::string params_key_ ABSL_GUARDED_BY(mu_);  // loaded on first use

  // In-process wake-ups for WaitForEvents: bumped after every committed
  // append; waiters then re-read the database.
  kiln::Mutex notify_mu_;
  uint64_t append_generation_ ABSL_GUARDED_BY(notify_mu_) = 0;
};

}  // namespace kiln::store

#endif  // KILN_ENGINE_STORE_RUN_STORE_H_
