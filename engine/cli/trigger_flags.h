// The trigger flags shared by `run`, `graph` and `submit`:
// --branch B --message M --event E --revision R --param k=v (repeatable).
#ifndef KILN_ENGINE_CLI_TRIGGER_FLAGS_H_
#define KILN_ENGINE_CLI_TRIGGER_FLAGS_H_

#include "absl/status/statusor.h"
#include "engine/cli/args.h"
#include "kiln/v1/pipeline.pb.h"

namespace kiln::cli {

void AddTriggerFlags(Args* args);

// InvalidArgument for an unknown --event or a --param without '='.
absl::StatusOr<v1::Trigger> TriggerFromFlags(const Args& args);

}  // namespace kiln::cli

#endif  // KILN_ENGINE_CLI_TRIGGER_FLAGS_H_
