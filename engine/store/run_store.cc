// RunStore: opening, runs, tasks and outputs. Events live in
// run_store_events.cc, attempts and their log references in
// run_store_attempts.cc.
#include "engine/store/run_store.h"

#include <cstdio>
#include <filesystem>
#include <system_error>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "base/sha256.h"
#include "base/status_macros.h"
#include "engine/store/migrate.h"
#include "engine/store/run_id.h"
#include "engine/store/run_lease.h"
#include "engine/store/run_store_schema.h"
#include "engine/store/time_codec.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"

namespace kiln::store {

int64_t RunStore::SchemaVersion() {
  return static_cast<int64_t>(RunStoreMigrations().size());
}

RunStore::RunStore(std::string store_dir, std::unique_ptr<Database> db)
    : store_dir_(std::move(store_dir)), db_(std::move(db)) {}

RunStore::~RunStore() = default;

absl::StatusOr<std::unique_ptr<RunStore>> RunStore::Open(
    const std::string& store_dir) {
  KILN_ASSIGN_OR_RETURN(
      std::unique_ptr<Database> db,
      OpenMigrated(store_dir, "runs.db", "run store", RunStoreMigrations()));
  std::unique_ptr<RunStore> store(new RunStore(store_dir, std::move(db)));
  if (absl::Status s = store->ResealPlaintextSecrets(); !s.ok()) {
    // Damaged state never blocks the store: the runs stay listed and are
    // retried at the next open.
    std::fprintf(stderr,
                 "kiln: warning: %s/runs.db: could not seal the secret "
                 "params of runs recorded by an older kiln (retried at the "
                 "next start): %s\n",
                 store_dir.c_str(), s.ToString().c_str());
  }
  return store;
}

absl::Status RunStore::CheckRunExists(absl::string_view run_id) {
  KILN_ASSIGN_OR_RETURN(Statement stmt,
                        db_->Prepare("SELECT 1 FROM runs WHERE id = ?1"));
  stmt.BindText(1, run_id);
  KILN_ASSIGN_OR_RETURN(bool found, stmt.Step());
  if (!found) return absl::NotFoundError(absl::StrCat("no run ", run_id));
  return absl::OkStatus();
}

namespace {

// Task names in pipeline order: tasks, then finally. InvalidArgument on an
// empty or repeated name.
absl::StatusOr<std::vector<std::string>> TaskNames(
    const v1::Pipeline& pipeline) {
  std::vector<std::string> names;
  absl::flat_hash_set<std::string> seen;
  for (const auto* list : {&pipeline.tasks(), &pipeline.finally()}) {
    for (const v1::Task& task : *list) {
      if (task.name().empty()) {
        return absl::InvalidArgumentError(
            absl::StrCat("pipeline ", pipeline.name(), ": a task has no name"));
      }
      if (!seen.insert(task.name()).second) {
        return absl::InvalidArgumentError(
            absl::StrCat("pipeline ", pipeline.name(), ": task ", task.name(),
                         " is defined twice"));
      }
      names.push_back(task.name());
    }
  }
  return names;
}

}  // namespace

absl::StatusOr<CreatedRun> RunStore::CreateRun(
    const v1::Pipeline& pipeline, const v1::Trigger& trigger,
    absl::string_view source_dir, absl::string_view idempotency_key,
    bool record_tasks) {
  if (pipeline.name().empty()) {
    return absl::InvalidArgumentError("CreateRun: the pipeline has no name");
  }
  KILN_ASSIGN_OR_RETURN(std::vector<std::string> tasks, TaskNames(pipeline));
  std::string pipeline_bytes, trigger_bytes;
  {
    // Deterministic (map entries in key order): one pipeline, one blob.
    google::protobuf::io::StringOutputStream stream(&pipeline_bytes);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    if (!pipeline.SerializeToCodedStream(&coded)) {
      return absl::InvalidArgumentError("CreateRun: cannot serialize");
    }
  }
  if (!RedactSecretParams(pipeline, trigger)
           .SerializeToString(&trigger_bytes)) {
    return absl::InvalidArgumentError("CreateRun: cannot serialize");
  }

  const std::string pipeline_digest = HexSha256(pipeline_bytes);

  kiln::MutexLock lock(&mu_);
  Transaction txn(db_.get());
  KILN_RETURN_IF_ERROR(txn.Begin());
  if (!idempotency_key.empty()) {
    KILN_ASSIGN_OR_RETURN(
        Statement find,
        db_->Prepare("SELECT id FROM runs WHERE idempotency_key = ?1"));
    find.BindText(1, idempotency_key);
    KILN_ASSIGN_OR_RETURN(bool found, find.Step());
    if (found) return CreatedRun{find.Text(0), false, ""};
  }

  absl::Time now = absl::Now();
  std::string id;
  // A clash of two random 32-bit suffixes in one microsecond is unlikely
  // but possible; pick another id then.
  for (int tries = 0;; ++tries) {
    id = NewRunId(now);
    KILN_ASSIGN_OR_RETURN(
        Statement insert,
        db_->Prepare("INSERT INTO runs (id, pipeline_name, trigger, pipeline,"
                     " source_dir, state, created_us, idempotency_key,"
                     " pipeline_digest)"
                     " VALUES (?1, ?2, ?3, X'', ?4, ?5, ?6, ?7, ?8)"
                     " ON CONFLICT (id) DO NOTHING"));
    insert.BindText(1, id)
        .BindText(2, pipeline.name())
        .BindBlob(3, trigger_bytes)
        .BindText(4, source_dir)
        .Bind(5, v1::RUN_QUEUED)
        .Bind(6, ToMicros(now))
        .BindTextOrNull(7, idempotency_key)
        .BindText(8, pipeline_digest);
    KILN_RETURN_IF_ERROR(insert.Run());
    if (db_->Changes() == 1) break;
    if (tries == 10) return absl::InternalError("CreateRun: no free run id");
  }
  {
    KILN_ASSIGN_OR_RETURN(
        Statement blob,
        db_->Prepare("INSERT INTO pipeline_blobs (digest, bytes)"
                     " VALUES (?1, ?2) ON CONFLICT (digest) DO NOTHING"));
    blob.BindText(1, pipeline_digest).BindBlob(2, pipeline_bytes);
    KILN_RETURN_IF_ERROR(blob.Run());
  }
  if (record_tasks) KILN_RETURN_IF_ERROR(InsertTasksLocked(id, tasks));
  KILN_RETURN_IF_ERROR(SealSecretsLocked(id, pipeline, trigger));
  KILN_RETURN_IF_ERROR(txn.Commit());
  return CreatedRun{id, true, pipeline_digest};
}

absl::Status RunStore::InsertTasksLocked(
    absl::string_view run_id, const std::vector<std::string>& tasks) {
  KILN_ASSIGN_OR_RETURN(
      Statement insert_task,
      db_->Prepare("INSERT INTO tasks (run_id, name, position, state)"
                   " VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING"));
  for (size_t i = 0; i < tasks.size(); ++i) {
    insert_task.BindText(1, run_id)
        .BindText(2, tasks[i])
        .Bind(3, static_cast<int64_t>(i))
        .Bind(4, v1::TASK_PENDING);
    KILN_RETURN_IF_ERROR(insert_task.Run());
  }
  return absl::OkStatus();
}

absl::Status RunStore::AddTasks(absl::string_view run_id) {
  kiln::MutexLock lock(&mu_);
  Transaction txn(db_.get());
  KILN_RETURN_IF_ERROR(txn.Begin());
  KILN_ASSIGN_OR_RETURN(
      Statement any,
      db_->Prepare("SELECT 1 FROM tasks WHERE run_id = ?1 LIMIT 1"));
  any.BindText(1, run_id);
  KILN_ASSIGN_OR_RETURN(bool has_rows, any.Step());
  any.Reset();
  if (has_rows) return absl::OkStatus();
  KILN_ASSIGN_OR_RETURN(v1::Pipeline pipeline, GetPipelineLocked(run_id));
  KILN_ASSIGN_OR_RETURN(std::vector<std::string> tasks, TaskNames(pipeline));
  KILN_RETURN_IF_ERROR(InsertTasksLocked(run_id, tasks));
  return txn.Commit();
}

absl::Status RunStore::LoadTasks(absl::string_view run_id, v1::Run* run) {
  KILN_ASSIGN_OR_RETURN(absl::optional<Replay> replay,
                        LoadReplayLocked(run_id));
  if (replay.has_value()) {
    run->mutable_tasks()->Reserve(replay->source->tasks.size());
    for (const v1::TaskStatus& task : replay->source->tasks) {
      SetReplayedStatus(task, replay->at, run->add_tasks());
    }
    return absl::OkStatus();
  }
  KILN_ASSIGN_OR_RETURN(
      Statement tasks,
      db_->Prepare("SELECT name, state, attempts, exit_code, reason,"
                   " cache_key, started_us, finished_us, error_code FROM tasks"
                   " WHERE run_id = ?1 ORDER BY position"));
  tasks.BindText(1, run_id);
  absl::flat_hash_map<std::string, v1::TaskStatus*> by_name;
  while (true) {
    KILN_ASSIGN_OR_RETURN(bool row, tasks.Step());
    if (!row) break;
    v1::TaskStatus* task = run->add_tasks();
    task->set_name(tasks.Text(0));
    task->set_state(static_cast<v1::TaskState>(tasks.Int(1)));
    task->set_attempts(static_cast<uint32_t>(tasks.Int(2)));
    task->set_exit_code(static_cast<int32_t>(tasks.Int(3)));
    task->set_reason(tasks.Text(4));
    task->set_cache_key(tasks.Text(5));
    task->set_error_code(static_cast<int32_t>(tasks.Int(8)));
    if (!tasks.IsNull(6)) *task->mutable_started() = ToTimestamp(tasks.Int(6));
    if (!tasks.IsNull(7)) {
      *task->mutable_finished() = ToTimestamp(tasks.Int(7));
    }
    by_name[task->name()] = task;
  }
  tasks.Reset();
  if (by_name.empty()) {
    // Created without task rows (CreateRun's record_tasks) and not started
    // yet: every task of its pipeline is pending.
    KILN_ASSIGN_OR_RETURN(v1::Pipeline pipeline, GetPipelineLocked(run_id));
    KILN_ASSIGN_OR_RETURN(std::vector<std::string> names, TaskNames(pipeline));
    for (std::string& name : names) {
      v1::TaskStatus* task = run->add_tasks();
      task->set_name(std::move(name));
      task->set_state(v1::TASK_PENDING);
    }
    return absl::OkStatus();
  }
  KILN_ASSIGN_OR_RETURN(
      Statement values,
      db_->Prepare("SELECT task, kind, key, value FROM task_values"
                   " WHERE run_id = ?1"));
  values.BindText(1, run_id);
  while (true) {
    KILN_ASSIGN_OR_RETURN(bool row, values.Step());
    if (!row) break;
    auto it = by_name.find(values.Text(0));
    if (it == by_name.end()) continue;
    auto* map = values.Text(1) == "output" ? it->second->mutable_outputs()
                                           : it->second->mutable_results();
    (*map)[values.Text(2)] = values.Text(3);
  }
  return LoadApprovals(run_id, by_name);
}

namespace {

constexpr char kRunColumns[] =
    "id, pipeline_name, trigger, state, reason, created_us, finished_us";

absl::StatusOr<v1::Run> RunFromRow(const Statement& row) {
  v1::Run run;
  run.set_id(row.Text(0));
  run.set_pipeline_name(row.Text(1));
  if (!run.mutable_trigger()->ParseFromString(row.Blob(2))) {
    return absl::DataLossError(
        absl::StrCat("run ", run.id(), ": unreadable trigger record"));
  }
  run.set_state(static_cast<v1::RunState>(row.Int(3)));
  run.set_reason(row.Text(4));
  *run.mutable_created() = ToTimestamp(row.Int(5));
  if (!row.IsNull(6)) *run.mutable_finished() = ToTimestamp(row.Int(6));
  return run;
}

}  // namespace

void RunStore::MarkOwnerGone(v1::Run* run) {
  if (run->state() != v1::RUN_QUEUED && run->state() != v1::RUN_RUNNING) {
    return;
  }
  absl::StatusOr<bool> leased = RunLease::IsLeased(store_dir_, run->id());
  if (!leased.ok() || *leased) return;
  // Nobody holds the lease: the owner died, or it finished the run between
  // our read and the probe (an owner records the final state before it
  // gives up the lease). A second read tells them apart.
  absl::StatusOr<v1::Run> again = GetRunRecord(run->id());
  if (again.ok() && again->state() != v1::RUN_QUEUED &&
      again->state() != v1::RUN_RUNNING) {
    *run = *std::move(again);
    return;
  }
  run->set_owner_gone(true);
}

absl::StatusOr<v1::Run> RunStore::GetRun(absl::string_view run_id) {
  v1::Run run;
  KILN_RETURN_IF_ERROR(GetRunInto(run_id, &run));
  return run;
}

absl::Status RunStore::GetRunInto(absl::string_view run_id, v1::Run* run,
                                  bool tasks) {
  KILN_RETURN_IF_ERROR(GetRunRecordInto(run_id, run, tasks));
  MarkOwnerGone(run);
  return absl::OkStatus();
}

absl::StatusOr<v1::Run> RunStore::GetRunRecord(absl::string_view run_id) {
  v1::Run run;
  KILN_RETURN_IF_ERROR(GetRunRecordInto(run_id, &run));
  return run;
}

absl::Status RunStore::GetRunRecordInto(absl::string_view run_id, v1::Run* out,
                                        bool tasks) {
  kiln::MutexLock lock(&mu_);
  Transaction snapshot(db_.get());
  KILN_RETURN_IF_ERROR(snapshot.BeginRead());
  KILN_ASSIGN_OR_RETURN(Statement stmt,
                        db_->Prepare(absl::StrCat("SELECT ", kRunColumns,
                                                  " FROM runs WHERE id = ?1")));
  stmt.BindText(1, run_id);
  KILN_ASSIGN_OR_RETURN(bool found, stmt.Step());
  if (!found) return absl::NotFoundError(absl::StrCat("no run ", run_id));
  {
    KILN_ASSIGN_OR_RETURN(v1::Run run, RunFromRow(stmt));
    out->Clear();
    out->Swap(&run);  // a copy when `out` is on an arena (no tasks yet)
  }
  // The snapshot ends when its statements are reset.
  if (!tasks) {
    out->set_tasks_omitted(true);
    return absl::OkStatus();
  }
  return LoadTasks(run_id, out);
}

absl::StatusOr<RunPage> RunStore::ListRuns(const RunFilter& filter,
                                           int page_size,
                                           absl::string_view page_token) {
  KILN_ASSIGN_OR_RETURN(RunPage page,
                        ListRunRecords(filter, page_size, page_token));
  for (v1::Run& run : page.runs) MarkOwnerGone(&run);
  return page;
}

absl::StatusOr<RunPage> RunStore::ListRunRecords(const RunFilter& filter,
                                                 int page_size,
                                                 absl::string_view page_token) {
  if (page_size <= 0) page_size = 100;
  page_size = std::min(page_size, 1000);
  if (!page_token.empty() && !IsValidRunId(page_token)) {
    return absl::InvalidArgumentError(
        absl::StrCat("ListRuns: bad page token '", page_token, "'"));
  }
  // Keyset pagination on the id, which sorts by creation time.
  std::string sql = absl::StrCat("SELECT ", kRunColumns, " FROM runs WHERE 1");
  if (filter.state.has_value()) absl::StrAppend(&sql, " AND state = ?1");
  if (!filter.pipeline_name.empty()) {
    absl::StrAppend(&sql, " AND pipeline_name = ?2");
  }
  if (!page_token.empty()) absl::StrAppend(&sql, " AND id < ?3");
  absl::StrAppend(&sql, " ORDER BY id DESC LIMIT ?4");

  kiln::MutexLock lock(&mu_);
  Transaction snapshot(db_.get());
  KILN_RETURN_IF_ERROR(snapshot.BeginRead());
  KILN_ASSIGN_OR_RETURN(Statement stmt, db_->Prepare(sql));
  if (filter.state.has_value()) stmt.Bind(1, *filter.state);
  if (!filter.pipeline_name.empty()) stmt.BindText(2, filter.pipeline_name);
  if (!page_token.empty()) stmt.BindText(3, page_token);
  stmt.Bind(4, page_size + 1);
  RunPage page;
  bool more = false;
  while (true) {
    KILN_ASSIGN_OR_RETURN(bool row, stmt.Step());
    if (!row) break;
    if (static_cast<int>(page.runs.size()) == page_size) {
      more = true;
      break;
    }
    KILN_ASSIGN_OR_RETURN(v1::Run run, RunFromRow(stmt));
    page.runs.push_back(std::move(run));
  }
  for (v1::Run& run : page.runs) {
    KILN_RETURN_IF_ERROR(LoadTasks(run.id(), &run));
  }
  if (more) page.next_page_token = page.runs.back().id();
  return page;  // the snapshot ends when its statements are reset
}

absl::StatusOr<std::string> RunStore::LastSucceededRevision(
    absl::string_view pipeline_name, absl::string_view branch, int max_runs) {
  kiln::MutexLock lock(&mu_);
  // runs_by_state (state, id) gives the newest first without a sort.
  KILN_ASSIGN_OR_RETURN(
      Statement stmt,
      db_->Prepare("SELECT id, trigger FROM runs WHERE state = ?1"
                   " AND pipeline_name = ?2 ORDER BY id DESC LIMIT ?3"));
  stmt.Bind(1, v1::RUN_SUCCEEDED)
      .BindText(2, pipeline_name)
      .Bind(3, std::max(max_runs, 0));
  while (true) {
    KILN_ASSIGN_OR_RETURN(bool row, stmt.Step());
    if (!row) break;
    v1::Trigger trigger;
    if (!trigger.ParseFromString(stmt.Blob(1))) {
      return absl::DataLossError(
          absl::StrCat("run ", stmt.Text(0), ": unreadable trigger record"));
    }
    if (trigger.branch() == branch && !trigger.revision().empty()) {
      return trigger.revision();
    }
  }
  return std::string();
}

absl::StatusOr<std::vector<std::string>> RunStore::UnfinishedRuns() {
  kiln::MutexLock lock(&mu_);
  KILN_ASSIGN_OR_RETURN(
      Statement stmt,
      db_->Prepare("SELECT id FROM runs WHERE state IN (?1, ?2) ORDER BY id"));
  stmt.Bind(1, v1::RUN_QUEUED).Bind(2, v1::RUN_RUNNING);
  std::vector<std::string> ids;
  while (true) {
    KILN_ASSIGN_OR_RETURN(bool row, stmt.Step());
    if (!row) break;
    ids.push_back(stmt.Text(0));
  }
  return ids;
}

absl::StatusOr<v1::Pipeline> RunStore::GetPipeline(absl::string_view run_id) {
  kiln::MutexLock lock(&mu_);
  return GetPipelineLocked(run_id);
}

absl::StatusOr<v1::Pipeline> RunStore::GetPipelineLocked(
    absl::string_view run_id) {
  KILN_ASSIGN_OR_RETURN(
      Statement stmt,
      db_->Prepare("SELECT r.pipeline_digest IS NULL, r.pipeline, b.bytes"
                   " FROM runs r LEFT JOIN pipeline_blobs b"
                   " ON b.digest = r.pipeline_digest WHERE r.id = ?1"));
  stmt.BindText(1, run_id);
  KILN_ASSIGN_OR_RETURN(bool found, stmt.Step());
  if (!found) return absl::NotFoundError(absl::StrCat("no run ", run_id));
  // Runs recorded before schema 8 hold their pipeline in their row.
  const bool inline_pipeline = stmt.Int(0) != 0;
  if (!inline_pipeline && stmt.IsNull(2)) {
    return absl::DataLossError(
        absl::StrCat("run ", run_id, ": its pipeline record is missing"));
  }
  v1::Pipeline pipeline;
  if (!pipeline.ParseFromString(stmt.Blob(inline_pipeline ? 1 : 2))) {
    return absl::DataLossError(
        absl::StrCat("run ", run_id, ": unreadable pipeline record"));
  }
  return pipeline;
}

absl::StatusOr<std::string> RunStore::GetSourceDir(absl::string_view run_id) {
  kiln::MutexLock lock(&mu_);
  KILN_ASSIGN_OR_RETURN(
      Statement stmt,
      db_->Prepare("SELECT source_dir FROM runs WHERE id = ?1"));
  stmt.BindText(1, run_id);
  KILN_ASSIGN_OR_RETURN(bool found, stmt.Step());
  if (!found) return absl::NotFoundError(absl::StrCat("no run ", run_id));
  return stmt.Text(0);
}

absl::Status RunStore::SetTaskOutputs(absl::string_view run_id,
                                      absl::string_view task,
                                      const TaskOutputs& outputs) {
  kiln::MutexLock lock(&mu_);
  Transaction txn(db_.get());
  KILN_RETURN_IF_ERROR(txn.Begin());
  KILN_RETURN_IF_ERROR(SetTaskOutputsLocked(run_id, task, outputs));
  return txn.Commit();
}

absl::Status RunStore::SetTaskOutputsLocked(absl::string_view run_id,
                                            absl::string_view task,
                                            const TaskOutputs& outputs) {
  {
    KILN_ASSIGN_OR_RETURN(Statement update,
                          db_->Prepare("UPDATE tasks SET cache_key = ?3"
                                       " WHERE run_id = ?1 AND name = ?2"));
    update.BindText(1, run_id).BindText(2, task).BindText(3, outputs.cache_key);
    KILN_RETURN_IF_ERROR(update.Run());
  }
  if (db_->Changes() == 0) {
    return absl::NotFoundError(
        absl::StrCat("run ", run_id, " has no task ", task));
  }
  return ReplaceTaskValuesLocked(run_id, task, outputs);
}

absl::Status RunStore::ReplaceTaskValuesLocked(absl::string_view run_id,
                                               absl::string_view task,
                                               const TaskOutputs& outputs) {
  {
    KILN_ASSIGN_OR_RETURN(
        Statement clear,
        db_->Prepare(
            "DELETE FROM task_values WHERE run_id = ?1 AND task = ?2"));
    clear.BindText(1, run_id).BindText(2, task);
    KILN_RETURN_IF_ERROR(clear.Run());
  }
  KILN_ASSIGN_OR_RETURN(
      Statement insert,
      db_->Prepare("INSERT INTO task_values (run_id, task, kind, key, value)"
                   " VALUES (?1, ?2, ?3, ?4, ?5)"));
  for (const auto& [kind, map] : {std::make_pair("output", &outputs.outputs),
                                  std::make_pair("result", &outputs.results)}) {
    for (const auto& [key, value] : *map) {
      insert.BindText(1, run_id)
          .BindText(2, task)
          .BindText(3, kind)
          .BindText(4, key)
          .BindText(5, value);
      KILN_RETURN_IF_ERROR(insert.Run());
    }
  }
  return absl::OkStatus();
}

}  // namespace kiln::store
