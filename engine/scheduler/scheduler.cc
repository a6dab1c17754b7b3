#include "engine/scheduler/scheduler.h"

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "engine/pipeline/condition.h"
#include "engine/pipeline/kind_spec.h"
#include "engine/scheduler/phase.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/message.h"

namespace kiln {

bool IsSuccess(v1::TaskState s) {
  return s == v1::TASK_SUCCEEDED || s == v1::TASK_CACHED;
}

bool IsFinal(v1::TaskState s) {
  return s == v1::TASK_SUCCEEDED || s == v1::TASK_CACHED ||
         s == v1::TASK_FAILED || s == v1::TASK_SKIPPED ||
         s == v1::TASK_CANCELLED || s == v1::TASK_TIMED_OUT;
}

bool IsFailure(v1::TaskState s) {
  return s == v1::TASK_FAILED || s == v1::TASK_CANCELLED ||
         s == v1::TASK_TIMED_OUT;
}

absl::Duration RetryBackoff(int attempt, absl::Duration base,
                            absl::Duration cap) {
  absl::Duration d = base;
  for (int i = 1; i < attempt && d < cap; ++i) d *= 2;
  return std::min(d, cap);
}

google::protobuf::Timestamp NowProto() {
  google::protobuf::Timestamp t;
  absl::Time now = absl::Now();
  t.set_seconds(absl::ToUnixSeconds(now));
  t.set_nanos(static_cast<int32_t>(
      (absl::ToUnixNanos(now) % 1000000000 + 1000000000) % 1000000000));
  return t;
}

Scheduler::Scheduler(const pipeline::Plan& plan,
                     std::map<std::string, v1::TaskStatus> prior,
                     TaskRunner* runner, EventSink* sink,
                     SchedulerOptions options)
    : plan_(plan),
      prior_(std::move(prior)),
      runner_(runner),
      sink_(sink),
      options_(options) {
  for (const pipeline::PlannedTask& t : plan_.order) {
    if (t.skipped) planned_skips_[t.task->name()] = t.reason;
  }
}

Scheduler::~Scheduler() = default;

void Scheduler::Cancel(const std::string& reason) {
  // Holding mu_ keeps the active phase alive while it is stopped.
  MutexLock lock(&mu_);
  int count = ++cancel_count_;
  if (cancel_reason_.empty()) cancel_reason_ = reason;
  Phase* phase = active_phase_;
  // `finally` survives a graceful cancel; only a second one stops it.
  if (phase == nullptr || (phase->is_finally() && count < 2)) return;
  phase->Stop(v1::TASK_CANCELLED, reason);
}

absl::StatusOr<v1::ApprovalStatus> Scheduler::Decide(
    const std::string& task, const ApprovalDecision& decision,
    const ApprovalRecorder& record) {
  MutexLock lock(&mu_);
  if (!main_begun_) {
    return absl::UnavailableError(
        absl::StrCat("the run has not started scheduling yet; decide task ",
                     task, " again in a moment"));
  }
  if (active_phase_ == nullptr || active_phase_->is_finally()) {
    return absl::FailedPreconditionError(
        absl::StrCat("task ", task, " is not waiting for approval"));
  }
  return active_phase_->Decide(task, decision, record);
}

void Scheduler::Drain(absl::Duration grace) {
  MutexLock lock(&mu_);
  draining_ = true;
  drain_grace_deadline_ = absl::Now() + grace;
  if (active_phase_ != nullptr) active_phase_->Drain(drain_grace_deadline_);
}

namespace {

// Artifacts a task consumes: its inputs and what its kind reads.
void ConsumedArtifacts(const v1::Task& task, std::vector<std::string>* out) {
  for (const auto& input : task.inputs()) out->push_back(input.artifact());
  if (const pipeline::KindSpec* kind = pipeline::KindOf(task)) {
    for (const auto& c : kind->Facts(task).consumed) {
      out->push_back(c.artifact);
    }
  }
}

// Task names in the ${tasks.NAME.…} references of one string.
void ReferencedTasksIn(const std::string& text, std::vector<std::string>* out) {
  static constexpr char kPrefix[] = "${tasks.";
  for (size_t pos = text.find(kPrefix); pos != std::string::npos;
       pos = text.find(kPrefix, pos + 1)) {
    size_t begin = pos + sizeof(kPrefix) - 1;
    size_t end = text.find_first_of(".}", begin);
    if (end != std::string::npos)
      out->push_back(text.substr(begin, end - begin));
  }
}

// Task names in ${tasks.NAME.…} references anywhere in the message: every
// string field, at any depth (map entries are messages too). Reflection,
// not a text dump of the task: printing each task in text format was ~2 %
// of a no-op run.
void ReferencedTasks(const google::protobuf::Message& message,
                     std::vector<std::string>* out) {
  using google::protobuf::FieldDescriptor;
  const google::protobuf::Reflection* reflection = message.GetReflection();
  std::vector<const FieldDescriptor*> fields;
  reflection->ListFields(message, &fields);
  std::string scratch;
  for (const FieldDescriptor* field : fields) {
    if (field->cpp_type() == FieldDescriptor::CPPTYPE_STRING) {
      if (field->is_repeated()) {
        for (int i = 0, n = reflection->FieldSize(message, field); i < n; ++i) {
          ReferencedTasksIn(reflection->GetRepeatedStringReference(
                                message, field, i, &scratch),
                            out);
        }
      } else {
        ReferencedTasksIn(
            reflection->GetStringReference(message, field, &scratch), out);
      }
    } else if (field->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
      if (field->is_repeated()) {
        for (int i = 0, n = reflection->FieldSize(message, field); i < n; ++i) {
          ReferencedTasks(reflection->GetRepeatedMessage(message, field, i),
                          out);
        }
      } else {
        ReferencedTasks(reflection->GetMessage(message, field), out);
      }
    }
  }
}

}  // namespace

const Scheduler::Uses& Scheduler::UsesOf(const v1::Task& task) {
  auto it = uses_.find(&task);
  if (it != uses_.end()) return it->second;
  Uses& uses = uses_[&task];
  ConsumedArtifacts(task, &uses.artifacts);
  ReferencedTasks(task, &uses.tasks);
  pipeline::ResultConditionTasks(task.when(), &uses.tasks);
  // A deploy promoting from an environment this run deploys reads what the
  // deploy to it (one of its needs, maybe indirectly) published.
  const pipeline::KindSpec* kind = pipeline::KindOf(task);
  if (kind != nullptr && kind->Facts(task).promote_same_run) {
    for (const pipeline::PlannedTask& t : plan_.order) {
      if (t.task != &task) uses.tasks.push_back(t.task->name());
    }
  }
  return uses;
}

std::vector<const v1::Task*> Scheduler::PartOf(bool is_finally) const {
  std::vector<const pipeline::PlannedTask*> part;
  for (const pipeline::PlannedTask& t : plan_.order) {
    if (t.is_finally == is_finally) part.push_back(&t);
  }
  std::sort(part.begin(), part.end(),
            [](const pipeline::PlannedTask* a, const pipeline::PlannedTask* b) {
              return a->index < b->index;
            });
  std::vector<const v1::Task*> tasks;
  tasks.reserve(part.size());
  for (const pipeline::PlannedTask* t : part) tasks.push_back(t->task);
  return tasks;
}

bool Scheduler::RunMain(SchedulerResult* result, bool* timed_out) {
  absl::Time deadline = options_.timeout > absl::ZeroDuration()
                            ? absl::Now() + options_.timeout
                            : absl::InfiniteFuture();
  Phase main(this, PartOf(false), &result->tasks, deadline, false);
  bool cancelled;
  std::string reason;
  {
    MutexLock lock(&mu_);
    active_phase_ = &main;
    main_begun_ = true;
    cancelled = cancel_count_ > 0;
    reason = cancel_reason_;
  }
  if (cancelled) main.Stop(v1::TASK_CANCELLED, reason);
  {
    MutexLock lock(&mu_);
    if (draining_) main.Drain(drain_grace_deadline_);
  }
  main.Run();
  *timed_out = main.timed_out();
  MutexLock lock(&mu_);
  if (draining_ || main.drained()) {
    active_phase_ = nullptr;
    return false;
  }
  return true;
}

bool Scheduler::RunFinally(SchedulerResult* result) {
  absl::Duration budget = options_.finally_timeout > absl::ZeroDuration()
                              ? options_.finally_timeout
                              : absl::Minutes(10);
  Phase fin(this, PartOf(true), &result->tasks, absl::Now() + budget, true);
  int cancels;
  std::string cancel_reason;
  {
    MutexLock lock(&mu_);
    active_phase_ = &fin;
    cancels = cancel_count_;
    cancel_reason = cancel_reason_;
  }
  if (cancels >= 2) fin.Stop(v1::TASK_CANCELLED, cancel_reason);
  fin.Run();
  MutexLock lock(&mu_);
  active_phase_ = nullptr;
  return !(draining_ || fin.drained());
}

SchedulerResult Scheduler::Run() {
  SchedulerResult result;
  result.tasks = prior_;
  for (const auto& [name, status] : prior_) {
    for (const auto& [artifact, digest] : status.outputs()) {
      producers_[artifact].push_back(name);
    }
  }
  bool main_timed_out = false;
  if (!RunMain(&result, &main_timed_out) || !RunFinally(&result)) {
    result.state = v1::RUN_RUNNING;
    result.reason = "interrupted by shutdown";
    return result;
  }
  int cancels;
  std::string cancel_reason;
  {
    MutexLock lock(&mu_);
    cancels = cancel_count_;
    cancel_reason = cancel_reason_;
  }
  std::vector<std::string> failures;
  for (const auto& [name, st] : result.tasks) {
    if (IsFailure(st.state())) failures.push_back(name);
  }
  if (cancels > 0) {
    result.state = v1::RUN_CANCELLED;
    result.reason = cancel_reason;
  } else if (main_timed_out) {
    result.state = v1::RUN_TIMED_OUT;
    result.reason = "pipeline timed out";
  } else if (!failures.empty()) {
    result.state = v1::RUN_FAILED;
    result.reason = absl::StrCat("failed: ", absl::StrJoin(failures, ", "));
  } else {
    result.state = v1::RUN_SUCCEEDED;
  }
  return result;
}

}  // namespace kiln
