// RunStore: the event stream — append (with the state changes it carries),
// read, wait.
#include <algorithm>
#include <atomic>
#include <limits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "engine/store/run_store.h"
#include "engine/store/time_codec.h"

namespace kiln::store {

namespace {

bool IsTerminal(v1::RunState state) {
  return state == v1::RUN_SUCCEEDED || state == v1::RUN_FAILED ||
         state == v1::RUN_CANCELLED || state == v1::RUN_TIMED_OUT;
}

bool IsTerminal(v1::TaskState state) {
  return state == v1::TASK_SUCCEEDED || state == v1::TASK_FAILED ||
         state == v1::TASK_SKIPPED || state == v1::TASK_CACHED ||
         state == v1::TASK_CANCELLED || state == v1::TASK_TIMED_OUT;
}

absl::Status ValidateEvent(absl::string_view run_id, const v1::RunEvent& e,
                           size_t index) {
  auto bad = [&](absl::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat("AppendEvents(", run_id, "): event ", index, ": ", why));
  };
  if (!e.run_id().empty() && e.run_id() != run_id) {
    return bad(absl::StrCat("belongs to run ", e.run_id()));
  }
  switch (e.kind_case()) {
    case v1::RunEvent::kRunState:
      if (e.run_state().state() == v1::RUN_STATE_UNSPECIFIED) {
        return bad("run state unspecified");
      }
      return absl::OkStatus();
    case v1::RunEvent::kTaskState:
      if (e.task_state().task().empty()) return bad("task state without task");
      if (e.task_state().state() == v1::TASK_STATE_UNSPECIFIED) {
        return bad("task state unspecified");
      }
      return absl::OkStatus();
    case v1::RunEvent::kLog:
    case v1::RunEvent::kNotification:
      return absl::OkStatus();
    case v1::RunEvent::KIND_NOT_SET:
      break;
  }
  return bad("no kind");
}

// Whether `first` is a task's TASK_RUNNING and `next` ends that attempt
// (a cache hit: RUNNING, then CACHED, one after the other).
bool StartsWhatEnds(const v1::RunEvent& first, const v1::RunEvent& next) {
  return first.has_task_state() && next.has_task_state() &&
         first.task_state().state() == v1::TASK_RUNNING &&
         IsTerminal(next.task_state().state()) &&
         first.task_state().task() == next.task_state().task() &&
         first.task_state().attempt() == next.task_state().attempt() &&
         !first.task_state().has_approval();
}

}  // namespace

absl::Status RunStore::ApplyEvent(absl::string_view run_id,
                                  const v1::RunEvent& event,
                                  const v1::RunEvent* started) {
  const int64_t time = ToMicros(event.time());
  if (event.has_run_state()) {
    const v1::RunStateChanged& change = event.run_state();
    KILN_ASSIGN_OR_RETURN(
        Statement update,
        db_->Prepare("UPDATE runs SET state = ?2, reason = ?3,"
                     " finished_us = ?4 WHERE id = ?1"));
    update.BindText(1, run_id)
        .Bind(2, change.state())
        .BindText(3, change.reason());
    if (IsTerminal(change.state())) {
      update.Bind(4, time);
    } else {
      update.BindNull(4);
    }
    return update.Run();
  }
  // Log lines and notifications change no table.
  if (!event.has_task_state()) return absl::OkStatus();

  const v1::TaskStateChanged& change = event.task_state();
  const bool running = change.state() == v1::TASK_RUNNING;
  const bool terminal = IsTerminal(change.state());
  // When the task started: this event's time, or its paired RUNNING's.
  const bool has_start = running || started != nullptr;
  const int64_t start_time =
      started != nullptr ? ToMicros(started->time()) : time;
  const bool cached = change.state() == v1::TASK_CACHED;
  {
    // started: the first time the task ran; finished: when it last ended;
    // a hit's cache key with its state (its values follow below).
    KILN_ASSIGN_OR_RETURN(
        Statement update,
        db_->Prepare("UPDATE tasks SET state = ?3,"
                     " attempts = MAX(attempts, ?4), exit_code = ?5,"
                     " reason = ?6, started_us = COALESCE(started_us, ?7),"
                     " finished_us = ?8, error_code = ?9,"
                     " cache_key = COALESCE(?10, cache_key)"
                     " WHERE run_id = ?1 AND name = ?2"));
    update.BindText(1, run_id)
        .BindText(2, change.task())
        .Bind(3, change.state())
        .Bind(4, change.attempt())
        .Bind(5, change.exit_code())
        .BindText(6, change.reason())
        .Bind(9, change.error_code());
    has_start ? update.Bind(7, start_time) : update.BindNull(7);
    terminal ? update.Bind(8, time) : update.BindNull(8);
    cached ? update.BindText(10, change.cache_key()) : update.BindNull(10);
    KILN_RETURN_IF_ERROR(update.Run());
  }
  if (db_->Changes() == 0) {
    // A task the pipeline did not list (e.g. generated at run time).
    KILN_ASSIGN_OR_RETURN(
        Statement insert,
        db_->Prepare(
            "INSERT INTO tasks (run_id, name, position, state,"
            " attempts, exit_code, reason, started_us, finished_us,"
            " error_code, cache_key)"
            " VALUES (?1, ?2, (SELECT COALESCE(MAX(position), -1) + 1"
            " FROM tasks WHERE run_id = ?1), ?3, ?4, ?5, ?6, ?7, ?8, ?9,"
            " COALESCE(?10, ''))"));
    insert.BindText(1, run_id)
        .BindText(2, change.task())
        .Bind(3, change.state())
        .Bind(4, change.attempt())
        .Bind(5, change.exit_code())
        .BindText(6, change.reason())
        .Bind(9, change.error_code());
    has_start ? insert.Bind(7, start_time) : insert.BindNull(7);
    terminal ? insert.Bind(8, time) : insert.BindNull(8);
    cached ? insert.BindText(10, change.cache_key()) : insert.BindNull(10);
    KILN_RETURN_IF_ERROR(insert.Run());
  }
  if (change.has_approval()) {
    KILN_RETURN_IF_ERROR(
        RecordApprovalLocked(run_id, change.task(), change.approval()));
  }
  if (cached) {
    // The hit's record: what it reuses is durable with the event itself.
    TaskOutputs hit;  // its cache_key is set with the state above
    hit.outputs.insert(change.outputs().begin(), change.outputs().end());
    hit.results.insert(change.results().begin(), change.results().end());
    KILN_RETURN_IF_ERROR(ReplaceTaskValuesLocked(run_id, change.task(), hit));
  }
  if (change.attempt() == 0) return absl::OkStatus();  // e.g. skipped, cached

  KILN_ASSIGN_OR_RETURN(
      Statement attempt,
      db_->Prepare("INSERT INTO attempts (run_id, task, attempt, state,"
                   " exit_code, reason, started_us, finished_us)"
                   " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
                   " ON CONFLICT (run_id, task, attempt) DO UPDATE SET"
                   " state = excluded.state, exit_code = excluded.exit_code,"
                   " reason = excluded.reason,"
                   " started_us = COALESCE(started_us, excluded.started_us),"
                   " finished_us = excluded.finished_us"));
  attempt.BindText(1, run_id)
      .BindText(2, change.task())
      .Bind(3, change.attempt())
      .Bind(4, change.state())
      .Bind(5, change.exit_code())
      .BindText(6, change.reason());
  has_start ? attempt.Bind(7, start_time) : attempt.BindNull(7);
  terminal ? attempt.Bind(8, time) : attempt.BindNull(8);
  return attempt.Run();
}

absl::StatusOr<uint64_t> RunStore::LastSequenceLocked(
    absl::string_view run_id) {
  KILN_ASSIGN_OR_RETURN(
      Statement stmt, db_->Prepare("SELECT last_seq FROM runs WHERE id = ?1"));
  stmt.BindText(1, run_id);
  KILN_ASSIGN_OR_RETURN(bool found, stmt.Step());
  if (!found) return absl::NotFoundError(absl::StrCat("no run ", run_id));
  return static_cast<uint64_t>(stmt.Int(0));
}

absl::StatusOr<uint64_t> RunStore::LastSequence(absl::string_view run_id) {
  kiln::MutexLock lock(&mu_);
  return LastSequenceLocked(run_id);
}

namespace {
std::atomic<AppendEventsHook> append_events_hook{nullptr};
}  // namespace

void SetAppendEventsHookForTesting(AppendEventsHook hook) {
  append_events_hook.store(hook);
}

absl::Status CheckAppendEventsHook(absl::string_view run_id) {
  if (AppendEventsHook hook = append_events_hook.load()) return hook(run_id);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<v1::RunEvent>> RunStore::AppendEvents(
    absl::string_view run_id, std::vector<v1::RunEvent> events) {
  KILN_RETURN_IF_ERROR(CheckAppendEventsHook(run_id));
  const google::protobuf::Timestamp now = ToTimestamp(ToMicros(absl::Now()));
  {
    kiln::MutexLock lock(&mu_);
    Transaction txn(db_.get());
    KILN_RETURN_IF_ERROR(txn.Begin());
    KILN_ASSIGN_OR_RETURN(uint64_t seq, LastSequenceLocked(run_id));
    if (events.empty()) return events;
    KILN_RETURN_IF_ERROR(InsertEventsLocked(run_id, &events, seq, now));
    KILN_RETURN_IF_ERROR(txn.Commit());
  }
  kiln::MutexLock lock(&notify_mu_);
  ++append_generation_;
  return events;
}

absl::Status RunStore::InsertEventsLocked(
    absl::string_view run_id, std::vector<v1::RunEvent>* events_in,
    uint64_t seq, const google::protobuf::Timestamp& now) {
  std::vector<v1::RunEvent>& events = *events_in;
  for (size_t i = 0; i < events.size(); ++i) {
    KILN_RETURN_IF_ERROR(ValidateEvent(run_id, events[i], i));
  }
  {
    std::string payload;
    for (size_t i = 0; i < events.size(); ++i) {
      v1::RunEvent& event = events[i];
      event.set_run_id(std::string(run_id));
      event.set_sequence(++seq);
      if (!event.has_time()) *event.mutable_time() = now;
      payload.clear();
      if (!event.SerializeToString(&payload)) {
        return absl::InvalidArgumentError("AppendEvents: cannot serialize");
      }
      {
        KILN_ASSIGN_OR_RETURN(
            Statement insert,
            db_->Prepare("INSERT INTO events (run_id, seq, time_us, payload)"
                         " VALUES (?1, ?2, ?3, ?4)"));
        insert.BindText(1, run_id)
            .Bind(2, static_cast<int64_t>(seq))
            .Bind(3, ToMicros(event.time()))
            .BindBlob(4, payload);
        KILN_RETURN_IF_ERROR(insert.Run());
      }
      if (i + 1 < events.size() && StartsWhatEnds(event, events[i + 1])) {
        continue;  // applied with the event that ends the attempt
      }
      const v1::RunEvent* started =
          i > 0 && StartsWhatEnds(events[i - 1], event) ? &events[i - 1]
                                                        : nullptr;
      KILN_RETURN_IF_ERROR(ApplyEvent(run_id, event, started));
    }
    {
      KILN_ASSIGN_OR_RETURN(
          Statement update,
          db_->Prepare("UPDATE runs SET last_seq = ?2 WHERE id = ?1"));
      update.BindText(1, run_id).Bind(2, static_cast<int64_t>(seq));
      KILN_RETURN_IF_ERROR(update.Run());
    }
  }
  return absl::OkStatus();
}

absl::Status RunStore::ReadEventRowsLocked(absl::string_view run_id,
                                           uint64_t after, uint64_t before,
                                           int limit,
                                           std::vector<v1::RunEvent>* events) {
  if (static_cast<int>(events->size()) >= limit) return absl::OkStatus();
  KILN_ASSIGN_OR_RETURN(
      Statement stmt,
      db_->Prepare("SELECT seq, payload FROM events WHERE run_id = ?1"
                   " AND seq > ?2 AND seq < ?3 ORDER BY seq LIMIT ?4"));
  stmt.BindText(1, run_id)
      .Bind(2, static_cast<int64_t>(after))
      .Bind(3, static_cast<int64_t>(std::min<uint64_t>(
                   before, std::numeric_limits<int64_t>::max())))
      .Bind(4, limit - static_cast<int>(events->size()));
  while (true) {
    KILN_ASSIGN_OR_RETURN(bool row, stmt.Step());
    if (!row) break;
    v1::RunEvent& event = events->emplace_back();
    if (!event.ParseFromString(stmt.Blob(1))) {
      return absl::DataLossError(
          absl::StrCat("run ", run_id, ": unreadable event ", stmt.Int(0)));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<v1::RunEvent>> RunStore::ReadEvents(
    absl::string_view run_id, uint64_t after_seq, int limit) {
  if (limit <= 0) limit = 1000;
  kiln::MutexLock lock(&mu_);
  Transaction snapshot(db_.get());
  KILN_RETURN_IF_ERROR(snapshot.BeginRead());
  KILN_ASSIGN_OR_RETURN(absl::optional<Replay> replay,
                        LoadReplayLocked(run_id));
  std::vector<v1::RunEvent> events;
  auto read = [&](uint64_t after,
                  uint64_t before) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return ReadEventRowsLocked(run_id, after, before, limit, &events);
  };
  if (!replay.has_value()) {
    KILN_RETURN_IF_ERROR(read(after_seq, std::numeric_limits<uint64_t>::max()));
  } else {
    // A replay's task events are not rows: they are made from its source,
    // between the recorded events before and after them.
    const uint64_t first = replay->first_seq;
    const uint64_t end = first + 2 * replay->source->order.size();
    KILN_RETURN_IF_ERROR(read(after_seq, first));
    if (static_cast<int>(events.size()) < limit && after_seq + 1 < end) {
      size_t from = after_seq + 1 > first ? after_seq + 1 - first : 0;
      size_t to = std::min<size_t>(
          end - first, from + (limit - static_cast<int>(events.size())));
      for (v1::RunEvent& e : ReplayedEvents(*replay->source, run_id, first,
                                            replay->at, from, to)) {
        events.push_back(std::move(e));
      }
    }
    KILN_RETURN_IF_ERROR(read(std::max(after_seq, end - 1),
                              std::numeric_limits<uint64_t>::max()));
  }
  if (events.empty()) KILN_RETURN_IF_ERROR(CheckRunExists(run_id));
  return events;
}

absl::StatusOr<uint64_t> RunStore::WaitForEvents(absl::string_view run_id,
                                                 uint64_t after_seq,
                                                 absl::Duration timeout,
                                                 absl::Duration poll) {
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    uint64_t generation;
    {
      kiln::MutexLock lock(&notify_mu_);
      generation = append_generation_;
    }
    KILN_ASSIGN_OR_RETURN(uint64_t last, LastSequence(run_id));
    absl::Time now = absl::Now();
    if (last > after_seq || now >= deadline) return last;
    kiln::MutexLock lock(&notify_mu_);
    notify_mu_.AwaitWithDeadline(
        [&]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
          return append_generation_ != generation;
        },
        std::min(deadline, now + poll));
  }
}

}  // namespace kiln::store
