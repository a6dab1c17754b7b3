// kiln::yaml::RunOnDeepStack: where a YAML parse runs. yaml-cpp's parser
// recurses once per nesting level (up to its own limit of 500 levels, at
// most ~216 KB of stack); a parse must not overflow a caller's small stack
// (a thread started with little), nor cost a thread hand-off when the
// caller's stack has room (the common case: the main thread, a server's
// handler threads).
#ifndef KILN_ENGINE_YAML_DEEP_STACK_H_
#define KILN_ENGINE_YAML_DEEP_STACK_H_

#include <cstddef>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"

namespace kiln::yaml {

// Calls fn() once, and returns when it has returned: on the calling thread
// if at least 1 MiB of its stack is left (~4x the most a parse uses), else
// on a parser thread with a 16 MiB stack (one of a few kept for reuse;
// a thread of its own for an input of more than 64 KiB, whose parse would
// otherwise keep its memory in the reused thread's malloc arena).
// ResourceExhausted, without calling fn, if no thread could be started.
absl::Status RunOnDeepStack(absl::FunctionRef<void()> fn, size_t input_bytes);

}  // namespace kiln::yaml

#endif  // KILN_ENGINE_YAML_DEEP_STACK_H_
