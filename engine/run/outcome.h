// Small constructors for AttemptOutcome shared by the task runner's files.
#ifndef KILN_ENGINE_RUN_OUTCOME_H_
#define KILN_ENGINE_RUN_OUTCOME_H_

#include <string>
#include <utility>

#include "engine/scheduler/scheduler.h"

namespace kiln {

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

}  // namespace kiln

#endif  // KILN_ENGINE_RUN_OUTCOME_H_
