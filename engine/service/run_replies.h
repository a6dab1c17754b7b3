// What the service may put in a reply about a run: secret param values
// redacted, and a size every reply can be sent at.
//
// Secrets: the value of a param declared `secret` never leaves the server —
// neither in a run's trigger, nor inside a task's results, nor as a
// pipeline's default — whatever the caller's role; it reads kRedacted.
//
// Size: a reply is at most kMaxReplyBytes (half the 8 MiB send limit): a
// run whose task list would pass it is sent without its tasks
// (tasks_omitted), which GetRunTasks pages by count and by bytes.
//
// Thread-safety: pure functions.
#ifndef KILN_ENGINE_SERVICE_RUN_REPLIES_H_
#define KILN_ENGINE_SERVICE_RUN_REPLIES_H_

#include <cstddef>
#include <string>

#include "absl/status/statusor.h"
#include "kiln/v1/pipeline.pb.h"
#include "kiln/v1/run.pb.h"
#include "kiln/v1/service.pb.h"

namespace kiln::service {

inline constexpr char kRedacted[] = "[redacted]";
inline constexpr size_t kMaxReplyBytes = 4 << 20;

// Replaces secret param values in `run` (trigger params, and any task
// result containing one) with kRedacted.
void RedactSecrets(const v1::Pipeline& pipeline, v1::Run* run);
// Replaces the defaults of secret params with kRedacted.
void RedactSecretDefaults(v1::Pipeline* pipeline);

// Drops the run's tasks (setting tasks_omitted) if it is over `max_bytes`;
// then, if still over (a huge trigger or reason), shortens those.
void FitRun(v1::Run* run, size_t max_bytes = kMaxReplyBytes);
// ListRuns: the run without its tasks, fitted.
void SummarizeRun(v1::Run* run, size_t max_bytes = kMaxReplyBytes);

// A page of `run`'s tasks from `page_token` (an index; "" is 0): at most
// page_size (<= 0: 100, at most 1000) and at most max_bytes; always at least
// one task, fitted by dropping its results and outputs if alone it is over.
absl::StatusOr<v1::GetRunTasksResponse> PageTasks(
    const v1::Run& run, int page_size, const std::string& page_token,
    size_t max_bytes = kMaxReplyBytes);

}  // namespace kiln::service

#endif  // KILN_ENGINE_SERVICE_RUN_REPLIES_H_
