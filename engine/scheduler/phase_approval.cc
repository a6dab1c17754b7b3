// Scheduler::Phase: approval gates (Task.approval). A gated task whose
// needs are done waits in `waiting_` — no worker, no parallelism slot —
// until Decide approves it (it goes back to pending and starts like any
// ready task), rejects it (it fails), or its deadline passes (it times out).
// A decision is recorded (ApprovalRecorder) before it takes effect, and a
// recorded one (SchedulerOptions::approvals, after a restart) is acted on
// when the task is reached again.
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "engine/pipeline/validate.h"
#include "engine/scheduler/phase.h"

namespace kiln {
namespace {

absl::Time FromProto(const google::protobuf::Timestamp& t) {
  return absl::FromUnixSeconds(t.seconds()) + absl::Nanoseconds(t.nanos());
}

google::protobuf::Timestamp ToProto(absl::Time t) {
  google::protobuf::Timestamp out;
  int64_t nanos = absl::ToUnixNanos(t);
  out.set_seconds(nanos / 1000000000);
  out.set_nanos(static_cast<int32_t>(nanos % 1000000000));
  return out;
}

std::string DecisionReason(const v1::ApprovalStatus& a) {
  return absl::StrCat(a.approved() ? "approved by " : "rejected by ",
                      a.principal(), a.comment().empty() ? "" : ": ",
                      a.comment());
}

}  // namespace

absl::Duration ApprovalTimeout(const v1::Approval& approval) {
  absl::Duration d = absl::Seconds(approval.timeout().seconds()) +
                     absl::Nanoseconds(approval.timeout().nanos());
  if (d <= absl::ZeroDuration()) {
    d = absl::Seconds(pipeline::kDefaultApprovalTimeoutSeconds);
  }
  return std::min(d, absl::Seconds(pipeline::kMaxApprovalTimeoutSeconds));
}

bool Scheduler::Phase::Gate(const v1::Task& task) {
  v1::ApprovalStatus record;
  auto recorded = s_->options_.approvals.find(task.name());
  if (recorded != s_->options_.approvals.end()) record = recorded->second;
  record.set_message(task.approval().message());
  absl::Time now = absl::Now();
  if (!record.has_waiting_since())
    *record.mutable_waiting_since() = ToProto(now);
  *record.mutable_deadline() = ToProto(FromProto(record.waiting_since()) +
                                       ApprovalTimeout(task.approval()));
  BeginTask(task);
  if (record.decided()) {
    ApplyDecision(task, record);
    // Back to pending on the loop's next turn (it needs a slot).
    if (approved_.count(&task) > 0) released_.push_back(&task);
    return true;
  }
  gates_[task.name()] = record;
  waiting_[&task] = record;
  v1::TaskStatus& st = Status(task.name());
  st.set_name(task.name());
  st.set_state(v1::TASK_WAITING_FOR_APPROVAL);
  *st.mutable_approval() = record;
  std::string reason = absl::StrCat(
      "waiting for approval until ",
      absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", FromProto(record.deadline()),
                       absl::UTCTimeZone()),
      task.approval().message().empty() ? "" : ": ", task.approval().message());
  st.set_reason(reason);
  Emit(task.name(), v1::TASK_WAITING_FOR_APPROVAL, 0, 0, reason, 0, nullptr,
       nullptr, &record);
  return true;
}

void Scheduler::Phase::ApplyDecision(const v1::Task& task,
                                     const v1::ApprovalStatus& approval) {
  gates_[task.name()] = approval;
  v1::TaskStatus& st = Status(task.name());
  st.set_name(task.name());
  *st.mutable_approval() = approval;
  if (approval.approved()) {
    approved_.insert(&task);
    st.set_state(v1::TASK_PENDING);
    st.set_reason(DecisionReason(approval));
    Emit(task.name(), v1::TASK_PENDING, 0, 0, DecisionReason(approval), 0,
         nullptr, nullptr, &approval);
    return;
  }
  Finish(task, v1::TASK_FAILED, 0, nullptr, DecisionReason(approval));
  AfterFailure(task, v1::TASK_FAILED);
}

absl::Time Scheduler::Phase::ExpireApprovals(absl::Time now) {
  absl::Time next = absl::InfiniteFuture();
  for (auto it = waiting_.begin(); it != waiting_.end();) {
    absl::Time deadline = FromProto(it->second.deadline());
    if (deadline > now) {
      next = std::min(next, deadline);
      ++it;
      continue;
    }
    const v1::Task& task = *it->first;
    it = waiting_.erase(it);
    Finish(task, v1::TASK_TIMED_OUT, 0, nullptr,
           absl::StrCat("no approval decision within ",
                        absl::FormatDuration(ApprovalTimeout(task.approval())),
                        " (approval timeout)"));
    AfterFailure(task, v1::TASK_TIMED_OUT);
  }
  return next;
}

absl::StatusOr<v1::ApprovalStatus> Scheduler::Phase::Decide(
    const std::string& task, const ApprovalDecision& decision,
    const ApprovalRecorder& record) {
  MutexLock lock(&mu_);
  auto it = waiting_.begin();
  while (it != waiting_.end() && it->first->name() != task) ++it;
  if (draining_) {
    return absl::FailedPreconditionError(
        "the run is being stopped for a shutdown; decide once it resumes");
  }
  if (it == waiting_.end() && !stopped_) {
    // Waiting before a restart and not reached again yet (no status in
    // this scheduler yet, or pending): the decision is recorded now and
    // acted on when the task is reached (Gate).
    auto recorded = s_->options_.approvals.find(task);
    auto st = statuses_->find(task);
    if (recorded != s_->options_.approvals.end() &&
        !recorded->second.decided() &&
        (st == statuses_->end() || st->second.state() == v1::TASK_PENDING)) {
      v1::ApprovalStatus approval = recorded->second;
      approval.set_decided(true);
      approval.set_approved(decision.approve);
      approval.set_principal(decision.principal);
      approval.set_comment(decision.comment);
      *approval.mutable_decided_at() = ToProto(absl::Now());
      if (absl::Status s = record(task, approval); !s.ok()) return s;
      recorded->second = approval;
      return approval;
    }
  }
  if (it == waiting_.end() || stopped_) {
    auto st = statuses_->find(task);
    std::string now = st == statuses_->end() ? "not reached"
                      : st->second.approval().decided()
                          ? DecisionReason(st->second.approval())
                          : v1::TaskState_Name(st->second.state());
    return absl::FailedPreconditionError(absl::StrCat(
        "task ", task, " is not waiting for approval (", now, ")"));
  }
  v1::ApprovalStatus approval = it->second;
  approval.set_decided(true);
  approval.set_approved(decision.approve);
  approval.set_principal(decision.principal);
  approval.set_comment(decision.comment);
  *approval.mutable_decided_at() = ToProto(absl::Now());
  if (absl::Status s = record(task, approval); !s.ok()) return s;
  const v1::Task& gated = *it->first;
  waiting_.erase(it);
  ApplyDecision(gated, approval);
  if (decision.approve) released_.push_back(&gated);
  gate_news_ = true;  // wake the loop
  return approval;
}

}  // namespace kiln
