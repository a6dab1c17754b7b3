// Task cache keys: SHA-256 over an explicitly ordered, versioned encoding of
// everything that determines a task's result — never over serialized protos.
//
// Components, each hashed on its own so a miss can be explained:
//   kind              "run", "render", ...
//   <kind>.<field>    every field of the task's kind spec that is set (not
//                     at its default), in field-number order, canonically
//                     encoded (strings length-prefixed, repeated fields
//                     counted; env sorted by name); nested messages encode
//                     their set fields the same way. A field left unset
//                     contributes nothing, so adding a field to a kind's
//                     proto changes no existing task's key (format v2; v1
//                     encoded unset fields too, and the `results` field of
//                     RunSpec would have changed every run task's key).
//   inputs            each input: artifact name, mount path, tree digest
//   outputs           each output: artifact name and its paths
//   platform          the executor's Platform() and the environment identity
//                     (e.g. host OS release, digest of the invoked binary)
// Not in the key: the task's name, needs, when, hints (retries, timeout,
// resources), `cache`, and the attempt number. Secrets reach the key only
// as HMACs: the caller substitutes secret params with HmacToken() values
// before computing the key.
#ifndef KILN_ENGINE_KEYS_TASK_KEY_H_
#define KILN_ENGINE_KEYS_TASK_KEY_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"
#include "kiln/v1/pipeline.pb.h"

namespace kiln {

struct KeyComponent {
  std::string name;     // e.g. "run.command"
  std::string digest;   // hex SHA-256 of the component's canonical encoding
  std::string summary;  // short readable form for `cache explain` (<= 200
                        // bytes; never contains a secret)
};

struct TaskKey {
  std::string key;  // "sha256:<hex>"
  std::vector<KeyComponent> components;
};

struct TaskKeyInputs {
  // The task with every ${...} resolved (secrets as HmacToken()s).
  const v1::Task* task = nullptr;
  // (artifact, tree digest) for each of task->inputs(), in order.
  std::vector<std::pair<std::string, std::string>> input_digests;
  std::string platform;
};

TaskKey ComputeTaskKey(const TaskKeyInputs& inputs);

// "hmac-sha256:<hex>" of `value` under `key`: how a secret enters a key.
std::string HmacToken(absl::string_view key, absl::string_view value);

// Human lines describing how `now` differs from `before`, component by
// component ("run.command changed: [make, build] -> [make, all]"); empty if
// the keys are equal.
std::vector<std::string> ExplainKeyChange(
    const std::vector<KeyComponent>& before,
    const std::vector<KeyComponent>& now);

}  // namespace kiln

#endif  // KILN_ENGINE_KEYS_TASK_KEY_H_
