// libFuzzer harness: any bytes through the loader (YAML limits, decoding,
// validation) and, when the pipeline is valid, through planning and
// substitution of every task. Must never crash, hang or exhaust memory.
#include <cstddef>
#include <cstdint>
#include <string>

#include "engine/pipeline/loader.h"
#include "engine/pipeline/plan.h"
#include "engine/pipeline/substitute.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace kiln::pipeline;
  std::string text(reinterpret_cast<const char*>(data), size);
  LoadedPipeline loaded = LoadPipelineText(text, "fuzz.yaml");
  for (const Diagnostic& d : loaded.errors) (void)d.ToString();
  if (!loaded.ok()) return 0;
  kiln::v1::Trigger trigger;
  trigger.set_branch("feature/Fuzz_1");
  trigger.set_commit_message("shipit\nsecond line");
  trigger.set_event(kiln::v1::PULL_REQUEST);
  absl::StatusOr<Plan> plan = ComputePlan(loaded.pipeline, trigger);
  if (!plan.ok()) return 0;
  SubstitutionContext context;
  context.params = plan->params;
  context.trigger = trigger;
  for (const PlannedTask& t : plan->order) {
    for (const std::string& key : OutputKeys(*t.task)) {
      context.task_outputs[t.task->name()][key] = "sha256:00";
    }
  }
  for (const PlannedTask& t : plan->order) {
    (void)SubstituteTask(*t.task, context);
  }
  return 0;
}
