// The loader bounds of the verbs that read a local pipeline file (`run`,
// `validate`, `graph`): generous by default for a trusted file
// (pipeline::LoadOptions::LocalFile: 64 MiB, 10 M nodes), changed with
// --max-pipeline-bytes and --max-pipeline-nodes, and always bounded.
// Pipelines sent to a server keep the server's tight bounds.
#ifndef KILN_ENGINE_CLI_PIPELINE_LIMITS_H_
#define KILN_ENGINE_CLI_PIPELINE_LIMITS_H_

#include "absl/status/statusor.h"
#include "engine/cli/args.h"
#include "engine/pipeline/loader.h"

namespace kiln::cli {

// Declares --max-pipeline-bytes and --max-pipeline-nodes.
void AddPipelineLimitFlags(Args* args);

// LoadOptions::LocalFile() with the flags applied; InvalidArgument for a
// flag out of its range (1 byte..1 GiB, 1..100 M nodes).
absl::StatusOr<pipeline::LoadOptions> PipelineLimitsFromFlags(const Args& args);

}  // namespace kiln::cli

#endif  // KILN_ENGINE_CLI_PIPELINE_LIMITS_H_
