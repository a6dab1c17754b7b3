// Whole-run replay records (run_store.h; schema 8 in run_store_schema.cc).
#include <algorithm>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "base/status_macros.h"
#include "engine/store/run_store.h"
#include "engine/store/time_codec.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "google/protobuf/wire_format_lite.h"

namespace kiln::store {

namespace {

std::string EncodeOrder(const std::vector<uint32_t>& order) {
  std::string out;
  out.reserve(order.size() * 6);
  for (uint32_t i : order) absl::StrAppend(&out, i, " ");
  return out;
}

std::string EncodeArchives(const std::vector<ReplayArchive>& archives) {
  std::string out;
  out.reserve(archives.size() * 150);
  for (const ReplayArchive& a : archives) {
    absl::StrAppend(&out, a.tree, " ", a.archive, " ", a.size, "\n");
  }
  return out;
}

std::string EncodeStamps(const std::vector<ReplayShardStamp>& stamps) {
  std::string out;
  for (const ReplayShardStamp& s : stamps) {
    absl::StrAppend(&out, s.shard, " ", s.ino, " ", s.mtime_ns, " ", s.ctime_ns,
                    "\n");
  }
  return out;
}

absl::Status Unreadable(absl::string_view run_id, absl::string_view what) {
  return absl::DataLossError(
      absl::StrCat("replay record of run ", run_id, ": unreadable ", what));
}

// Splits `text` at `sep` (empty parts skipped), calling part(view) until
// it returns false.
template <typename F>
bool ForEachPart(absl::string_view text, char sep, F part) {
  while (!text.empty()) {
    const size_t end = std::min(text.find(sep), text.size());
    if (end > 0 && !part(text.substr(0, end))) return false;
    text.remove_prefix(std::min(end + 1, text.size()));
  }
  return true;
}

// Every index once: the order of a source is a permutation of its tasks.
bool IsPermutation(const std::vector<uint32_t>& order, size_t n) {
  if (order.size() != n) return false;
  std::vector<bool> seen(n, false);
  for (uint32_t i : order) {
    if (i >= n || seen[i]) return false;
    seen[i] = true;
  }
  return true;
}

bool ParseOrder(absl::string_view text, size_t n, std::vector<uint32_t>* out) {
  out->reserve(n);
  return ForEachPart(text, ' ',
                     [&](absl::string_view part) {
                       uint32_t i;
                       if (!absl::SimpleAtoi(part, &i)) return false;
                       out->push_back(i);
                       return true;
                     }) &&
         IsPermutation(*out, n);
}

// "TREE ARCHIVE SIZE" lines (EncodeArchives).
bool ParseArchives(absl::string_view text, std::vector<ReplayArchive>* out) {
  out->reserve(std::count(text.begin(), text.end(), '\n'));
  return ForEachPart(text, '\n', [&](absl::string_view line) {
    const size_t a = line.find(' ');
    const size_t b = a == absl::string_view::npos ? a : line.find(' ', a + 1);
    if (b == absl::string_view::npos ||
        line.find(' ', b + 1) != absl::string_view::npos) {
      return false;
    }
    ReplayArchive& archive = out->emplace_back();
    archive.tree = std::string(line.substr(0, a));
    archive.archive = std::string(line.substr(a + 1, b - a - 1));
    return absl::SimpleAtoi(line.substr(b + 1), &archive.size);
  });
}

// "SHARD INO MTIME CTIME" lines (EncodeStamps).
bool ParseStamps(absl::string_view text, std::vector<ReplayShardStamp>* out) {
  return ForEachPart(text, '\n', [&](absl::string_view line) {
    std::vector<absl::string_view> f = absl::StrSplit(line, ' ');
    ReplayShardStamp& st = out->emplace_back();
    if (f.size() != 4 || !absl::SimpleAtoi(f[1], &st.ino) ||
        !absl::SimpleAtoi(f[2], &st.mtime_ns) ||
        !absl::SimpleAtoi(f[3], &st.ctime_ns)) {
      return false;
    }
    st.shard = std::string(f[0]);
    return true;
  });
}

}  // namespace

std::unique_ptr<google::protobuf::Arena> NewLargeArena() {
  google::protobuf::ArenaOptions options;
  options.start_block_size = 64 << 10;
  options.max_block_size = 1 << 20;
  return std::make_unique<google::protobuf::Arena>(options);
}

void SetReplayedStatus(const v1::TaskStatus& source, absl::Time at,
                       v1::TaskStatus* s) {
  // As the scheduler records a hit: one attempt, RUNNING then CACHED at
  // once, the reason the memoizer gives.
  s->set_name(source.name());
  s->set_state(v1::TASK_CACHED);
  s->set_attempts(1);
  s->set_exit_code(source.exit_code());
  s->set_reason("cache hit");
  s->set_cache_key(source.cache_key());
  *s->mutable_outputs() = source.outputs();
  *s->mutable_results() = source.results();
  *s->mutable_started() = ToTimestamp(ToMicros(at));
  *s->mutable_finished() = s->started();
}

namespace {

// `to` = `from` with as few allocations as may be: an equal set of keys
// (a task's one output, named as the last task's) keeps its nodes and
// the capacity of its values.
void AssignMap(const google::protobuf::Map<std::string, std::string>& from,
               google::protobuf::Map<std::string, std::string>* to) {
  bool same_keys = from.size() == to->size();
  for (auto it = from.begin(); same_keys && it != from.end(); ++it) {
    same_keys = to->contains(it->first);
  }
  if (!same_keys) {
    *to = from;
    return;
  }
  for (const auto& [key, value] : from) (*to)[key] = value;
}

}  // namespace

ReplayedEventMaker::ReplayedEventMaker(const ReplaySource& source,
                                       absl::string_view run_id,
                                       uint64_t first_seq, absl::Time at)
    : source_(source), first_seq_(first_seq) {
  const google::protobuf::Timestamp time = ToTimestamp(ToMicros(at));
  for (v1::RunEvent* e : {&running_, &cached_}) {
    e->set_run_id(std::string(run_id));
    *e->mutable_time() = time;
    e->mutable_task_state()->set_attempt(1);
  }
  running_.mutable_task_state()->set_state(v1::TASK_RUNNING);
  // The fields of a hit's TASK_CACHED event (Scheduler::Phase::Finish).
  cached_.mutable_task_state()->set_state(v1::TASK_CACHED);
  cached_.mutable_task_state()->set_reason("cache hit");
}

const v1::RunEvent& ReplayedEventMaker::At(size_t i) {
  const v1::TaskStatus& task = source_.tasks[source_.order[i / 2]];
  v1::RunEvent& e = i % 2 == 0 ? running_ : cached_;
  e.set_sequence(first_seq_ + i);
  v1::TaskStateChanged* change = e.mutable_task_state();
  change->set_task(task.name());
  if (i % 2 == 1) {
    change->set_exit_code(task.exit_code());
    AssignMap(task.outputs(), change->mutable_outputs());
    AssignMap(task.results(), change->mutable_results());
    change->set_cache_key(task.cache_key());
  }
  return e;
}

std::vector<v1::RunEvent> ReplayedEvents(const ReplaySource& source,
                                         absl::string_view run_id,
                                         uint64_t first_seq, absl::Time at,
                                         size_t from, size_t to) {
  std::vector<v1::RunEvent> events;
  ReplayedEventMaker maker(source, run_id, first_seq, at);
  to = std::min(to, maker.size());
  if (from >= to) return events;
  events.reserve(to - from);
  for (size_t i = from; i < to; ++i) events.push_back(maker.At(i));
  return events;
}

absl::Status RunStore::RecordReplaySource(
    absl::string_view fingerprint,
    const std::vector<const v1::TaskStatus*>& tasks,
    const ReplaySourceParts& source, int64_t cache_epoch) {
  if (!IsPermutation(source.order, tasks.size())) {
    return absl::InvalidArgumentError(
        "RecordReplaySource: the order is not one of the tasks");
  }
  // A v1::Run with only `tasks`, written one task at a time through one
  // reused message: field by field what Run::SerializeToString gives.
  std::string bytes;
  {
    google::protobuf::io::StringOutputStream raw(&bytes);
    google::protobuf::io::CodedOutputStream out(&raw);
    using google::protobuf::internal::WireFormatLite;
    v1::TaskStatus kept;
    for (const v1::TaskStatus* t : tasks) {
      kept.Clear();
      kept.set_name(t->name());
      kept.set_exit_code(t->exit_code());
      kept.set_cache_key(t->cache_key());
      *kept.mutable_outputs() = t->outputs();
      *kept.mutable_results() = t->results();
      WireFormatLite::WriteTag(v1::Run::kTasksFieldNumber,
                               WireFormatLite::WIRETYPE_LENGTH_DELIMITED, &out);
      out.WriteVarint32(static_cast<uint32_t>(kept.ByteSizeLong()));
      kept.SerializeWithCachedSizes(&out);
    }
  }
  kiln::MutexLock lock(&mu_);
  Transaction txn(db_.get());
  KILN_RETURN_IF_ERROR(txn.Begin());
  KILN_RETURN_IF_ERROR(CheckRunExists(source.run_id));
  {
    // ~3 MB for 10,000 tasks: bound in place, not copied (the strings
    // outlive the statement).
    const std::string order = EncodeOrder(source.order);
    const std::string archives = EncodeArchives(source.archives);
    const std::string stamps = EncodeStamps(source.stamps);
    KILN_ASSIGN_OR_RETURN(
        Statement insert,
        db_->Prepare("INSERT OR REPLACE INTO replay_sources"
                     " (run_id, statuses, task_order, archives, stamps)"
                     " VALUES (?1, ?2, ?3, ?4, ?5)"));
    insert.BindText(1, source.run_id)
        .BindBlobRef(2, bytes)
        .BindBlobRef(3, order)
        .BindBlobRef(4, archives)
        .BindBlobRef(5, stamps);
    KILN_RETURN_IF_ERROR(insert.Run());
  }
  {
    KILN_ASSIGN_OR_RETURN(
        Statement insert,
        db_->Prepare(
            "INSERT OR REPLACE INTO replays"
            " (fingerprint, source, cache_epoch) VALUES (?1, ?2, ?3)"));
    insert.BindText(1, fingerprint)
        .BindText(2, source.run_id)
        .Bind(3, cache_epoch);
    KILN_RETURN_IF_ERROR(insert.Run());
  }
  return txn.Commit();
}

absl::StatusOr<std::shared_ptr<const ReplaySource>>
RunStore::LoadReplaySourceLocked(absl::string_view source_run) {
  if (last_source_ != nullptr && last_source_->run_id == source_run) {
    return last_source_;
  }
  // Mapped for this read only (~800 pages); the statement ends first.
  MappedReads mapped(db_.get(), 256 << 20);
  KILN_ASSIGN_OR_RETURN(
      Statement stmt,
      db_->Prepare("SELECT statuses, task_order, archives, stamps"
                   " FROM replay_sources"
                   " WHERE run_id = ?1"));
  stmt.BindText(1, source_run);
  KILN_ASSIGN_OR_RETURN(bool found, stmt.Step());
  if (!found) return Unreadable(source_run, "source (missing)");
  // The record is read in place (BlobView), and parsed without copies: it
  // is a no-op's largest read (~3 MB for 10,000 tasks).
  auto source = std::make_shared<ReplaySource>();
  source->run_id = std::string(source_run);
  {
    auto* statuses =
        google::protobuf::Arena::CreateMessage<v1::Run>(source->arena.get());
    if (!statuses->ParseFromArray(stmt.BlobView(0).data(),
                                  static_cast<int>(stmt.BlobView(0).size()))) {
      return Unreadable(source_run, "statuses");
    }
    source->tasks.Swap(statuses->mutable_tasks());  // one arena: no copy
  }
  const size_t n = static_cast<size_t>(source->tasks.size());
  if (!ParseOrder(stmt.BlobView(1), n, &source->order)) {
    return Unreadable(source_run, "order");
  }
  if (!ParseArchives(stmt.BlobView(2), &source->archives)) {
    return Unreadable(source_run, "archives");
  }
  if (!ParseStamps(stmt.BlobView(3), &source->stamps)) {
    return Unreadable(source_run, "stamps");
  }
  last_source_ = std::move(source);
  return last_source_;
}

absl::StatusOr<
    absl::optional<std::pair<std::shared_ptr<const ReplaySource>, int64_t>>>
RunStore::FindReplaySource(absl::string_view fingerprint) {
  kiln::MutexLock lock(&mu_);
  Transaction snapshot(db_.get());
  KILN_RETURN_IF_ERROR(snapshot.BeginRead());
  KILN_ASSIGN_OR_RETURN(Statement stmt,
                        db_->Prepare("SELECT source, cache_epoch FROM replays"
                                     " WHERE fingerprint = ?1"));
  stmt.BindText(1, fingerprint);
  KILN_ASSIGN_OR_RETURN(bool found, stmt.Step());
  if (!found) return absl::nullopt;
  std::string source_run = stmt.Text(0);
  int64_t epoch = stmt.Int(1);
  KILN_ASSIGN_OR_RETURN(std::shared_ptr<const ReplaySource> source,
                        LoadReplaySourceLocked(source_run));
  return std::make_pair(std::move(source), epoch);
}

absl::StatusOr<absl::optional<RunStore::Replay>> RunStore::LoadReplayLocked(
    absl::string_view run_id) {
  KILN_ASSIGN_OR_RETURN(
      Statement stmt,
      db_->Prepare("SELECT replay_of, replay_seq, replay_us FROM runs"
                   " WHERE id = ?1 AND replay_of IS NOT NULL"));
  stmt.BindText(1, run_id);
  KILN_ASSIGN_OR_RETURN(bool found, stmt.Step());
  if (!found) return absl::nullopt;
  Replay replay;
  std::string source_run = stmt.Text(0);
  replay.first_seq = static_cast<uint64_t>(stmt.Int(1));
  replay.at = absl::FromUnixMicros(stmt.Int(2));
  stmt.Reset();
  KILN_ASSIGN_OR_RETURN(replay.source, LoadReplaySourceLocked(source_run));
  return replay;
}

absl::StatusOr<RunStore::RecordedReplay> RunStore::RecordReplay(
    absl::string_view run_id, const ReplaySource& source, absl::Time at,
    const std::vector<ReplayShardStamp>& refreshed_stamps,
    std::vector<v1::RunEvent> before, std::vector<v1::RunEvent> after) {
  KILN_RETURN_IF_ERROR(CheckAppendEventsHook(run_id));
  if (!IsPermutation(source.order, source.tasks.size())) {
    return absl::InvalidArgumentError(
        "RecordReplay: the order is not one of the tasks");
  }
  at = absl::FromUnixMicros(ToMicros(at));
  uint64_t first_seq;
  {
    kiln::MutexLock lock(&mu_);
    Transaction txn(db_.get());
    KILN_RETURN_IF_ERROR(txn.Begin());
    KILN_ASSIGN_OR_RETURN(uint64_t last, LastSequenceLocked(run_id));
    {
      KILN_ASSIGN_OR_RETURN(
          Statement started,
          db_->Prepare("SELECT 1 FROM tasks WHERE run_id = ?1 AND"
                       " (state != ?2 OR attempts != 0) LIMIT 1"));
      started.BindText(1, run_id).Bind(2, v1::TASK_PENDING);
      KILN_ASSIGN_OR_RETURN(bool any, started.Step());
      if (any) {
        return absl::FailedPreconditionError(
            absl::StrCat("RecordReplay: run ", run_id, " has started tasks"));
      }
    }
    {
      KILN_ASSIGN_OR_RETURN(
          Statement remove,
          db_->Prepare("DELETE FROM tasks WHERE run_id = ?1"));
      remove.BindText(1, run_id);
      KILN_RETURN_IF_ERROR(remove.Run());
    }
    const google::protobuf::Timestamp now = ToTimestamp(ToMicros(at));
    if (!before.empty()) {
      KILN_RETURN_IF_ERROR(InsertEventsLocked(run_id, &before, last, now));
      last = before.back().sequence();
    }
    first_seq = last + 1;
    const uint64_t new_last = last + 2 * source.order.size();
    KILN_ASSIGN_OR_RETURN(
        Statement update,
        db_->Prepare("UPDATE runs SET replay_of = ?2, replay_seq = ?3,"
                     " replay_us = ?4, last_seq = ?5 WHERE id = ?1"));
    update.BindText(1, run_id)
        .BindText(2, source.run_id)
        .Bind(3, static_cast<int64_t>(first_seq))
        .Bind(4, ToMicros(at))
        .Bind(5, static_cast<int64_t>(new_last));
    KILN_RETURN_IF_ERROR(update.Run());
    if (!refreshed_stamps.empty()) {
      KILN_ASSIGN_OR_RETURN(Statement stamps,
                            db_->Prepare("UPDATE replay_sources SET stamps = ?2"
                                         " WHERE run_id = ?1"));
      stamps.BindText(1, source.run_id)
          .BindBlob(2, EncodeStamps(refreshed_stamps));
      KILN_RETURN_IF_ERROR(stamps.Run());
      last_source_ = nullptr;  // read again with them
    }
    if (!after.empty()) {
      KILN_RETURN_IF_ERROR(InsertEventsLocked(run_id, &after, new_last, now));
    }
    KILN_RETURN_IF_ERROR(txn.Commit());
  }
  {
    kiln::MutexLock lock(&notify_mu_);
    ++append_generation_;
  }
  RecordedReplay recorded;
  recorded.before = std::move(before);
  recorded.first_seq = first_seq;
  recorded.at = at;
  recorded.after = std::move(after);
  return recorded;
}

}  // namespace kiln::store
