// `kiln validate FILE`: loads and checks a pipeline file.
// stdout "ok: N tasks" (tasks + finally) and exit 0; otherwise every
// diagnostic as "FILE:LINE:COL: message" on stderr and exit 1.
#include <malloc.h>

#include <cstdio>

#include "engine/cli/args.h"
#include "engine/cli/pipeline_limits.h"
#include "engine/cli/verb.h"
#include "engine/pipeline/loader.h"

namespace kiln::cli {
namespace {

int RunValidate(const std::vector<std::string>& argv) {
  // The YAML parser runs on its own thread; glibc would reserve a 64 MiB
  // malloc arena for it, which counts against an address-space limit
  // (ulimit -v) although little of it is used. One arena is plenty here.
  mallopt(M_ARENA_MAX, 1);
  Args args(
      "kiln validate FILE [--max-pipeline-bytes N] [--max-pipeline-nodes N]"
      "\n\nChecks a pipeline file; prints every problem as FILE:LINE:COL: "
      "message.");
  AddPipelineLimitFlags(&args);
  int exit_code = 0;
  if (!args.Parse(argv, &exit_code)) return exit_code;
  if (args.positionals().size() != 1) {
    return args.UsageError("validate takes exactly one FILE");
  }
  absl::StatusOr<pipeline::LoadOptions> limits = PipelineLimitsFromFlags(args);
  if (!limits.ok()) {
    return args.UsageError(std::string(limits.status().message()));
  }
  pipeline::LoadedPipeline loaded =
      pipeline::LoadPipelineFile(args.positionals()[0], *limits);
  if (!loaded.ok()) {
    for (const pipeline::Diagnostic& d : loaded.errors) {
      std::fprintf(stderr, "%s\n", d.ToString().c_str());
    }
    return kExitFailed;
  }
  int tasks = loaded.pipeline.tasks_size() + loaded.pipeline.finally_size();
  std::printf("ok: %d tasks\n", tasks);
  return kExitOk;
}

}  // namespace
}  // namespace kiln::cli

KILN_CLI_VERB(validate, "validate", "check a pipeline file",
              kiln::cli::RunValidate);
