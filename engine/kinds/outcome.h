// Small constructors for AttemptOutcome shared by the kinds.
#ifndef KILN_ENGINE_KINDS_OUTCOME_H_
#define KILN_ENGINE_KINDS_OUTCOME_H_

#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "engine/scheduler/scheduler.h"

namespace kiln::kinds {

inline AttemptOutcome Outcome(v1::TaskState state, std::string reason,
                              bool retryable = true) {
  AttemptOutcome o;
  o.state = state;
  o.reason = std::move(reason);
  o.retryable = retryable;
  return o;
}

// A failure; by default not worth retrying (it would fail the same way).
inline AttemptOutcome Failed(std::string reason, bool retryable = false) {
  return Outcome(v1::TASK_FAILED, std::move(reason), retryable);
}

// A failure caused by `status`: its code survives into the task's result,
// its message (after `context`) is the reason.
inline AttemptOutcome Failed(const absl::Status& status,
                             absl::string_view context = "",
                             bool retryable = false) {
  AttemptOutcome o = Failed(absl::StrCat(context, status.message()), retryable);
  o.code = status.code();
  return o;
}

}  // namespace kiln::kinds

#endif  // KILN_ENGINE_KINDS_OUTCOME_H_
