// Writes a populated store (runs.db and action_cache.db) with today's
// schema into DIR, for schema_upgrade_test. When a schema changes (a new
// migration), run this with the kiln *before* the change and check the
// result in as tests/store/schema_fixtures/vN (N = the old version):
//   bazel run //tests/store:schema_fixture --
//   $PWD/tests/store/schema_fixtures/vN
// usage: schema_fixture DIR
#include <cstdio>
#include <string>

#include "engine/store/action_cache.h"
#include "engine/store/run_store.h"
#include "tests/store/schema_fixture.h"

namespace f = kiln::store::fixture;

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: schema_fixture DIR\n");
    return 2;
  }
  std::string dir = argv[1];
  auto runs = kiln::store::RunStore::Open(dir);
  if (!runs.ok()) {
    std::fprintf(stderr, "%s\n", runs.status().ToString().c_str());
    return 1;
  }
  kiln::v1::Pipeline p;
  p.set_name(f::kPipeline);
  p.add_tasks()->set_name("build");
  p.add_tasks()->set_name("test");
  p.add_finally()->set_name("cleanup");
  kiln::v1::Trigger trigger;
  trigger.set_branch(f::kBranch);
  (*trigger.mutable_params())[f::kParam] = f::kParamValue;
  auto created =
      (*runs)->CreateRun(p, trigger, f::kSourceDir, f::kIdempotencyKey);
  if (!created.ok()) {
    std::fprintf(stderr, "%s\n", created.status().ToString().c_str());
    return 1;
  }
  std::vector<kiln::v1::RunEvent> events(5);
  events[0].mutable_run_state()->set_state(kiln::v1::RUN_RUNNING);
  events[1].mutable_task_state()->set_task("build");
  events[1].mutable_task_state()->set_state(kiln::v1::TASK_RUNNING);
  events[1].mutable_task_state()->set_attempt(1);
  events[2].mutable_log()->set_task("build");
  events[2].mutable_log()->set_text(f::kLogText);
  events[3].mutable_task_state()->set_task("build");
  events[3].mutable_task_state()->set_state(kiln::v1::TASK_SUCCEEDED);
  events[3].mutable_task_state()->set_attempt(1);
  events[4].mutable_task_state()->set_task("test");
  events[4].mutable_task_state()->set_state(kiln::v1::TASK_FAILED);
  events[4].mutable_task_state()->set_attempt(1);
  events[4].mutable_task_state()->set_exit_code(2);
  events[4].mutable_task_state()->set_error_code(f::kErrorCode);
  auto appended = (*runs)->AppendEvents(created->run_id, events);
  if (!appended.ok()) {
    std::fprintf(stderr, "%s\n", appended.status().ToString().c_str());
    return 1;
  }
  kiln::store::TaskOutputs outputs;
  outputs.cache_key = f::kActionKey;
  outputs.outputs["app"] = f::kArtifactDigest;
  outputs.results[f::kResultKey] = f::kResultValue;
  if (auto s = (*runs)->SetTaskOutputs(created->run_id, "build", outputs);
      !s.ok()) {
    std::fprintf(stderr, "%s\n", s.ToString().c_str());
    return 1;
  }

  if (auto s = (*runs)->RecordAttemptLog(created->run_id, "build", 1,
                                         "logs/build.1.log", 42);
      !s.ok()) {
    std::fprintf(stderr, "%s\n", s.ToString().c_str());
    return 1;
  }

  kiln::store::DeploymentRecord deployment;
  deployment.environment = f::kEnvironment;
  deployment.namespace_name = f::kNamespace;
  deployment.kube_context = "dev";
  deployment.run_id = created->run_id;
  deployment.task = "build";
  deployment.manifests_digest = f::kArtifactDigest;
  deployment.images = {f::kImage};
  deployment.objects = {{"v1", "ConfigMap", f::kNamespace, "settings"}};
  deployment.objects[0].uid = f::kObjectUid;
  deployment.objects[0].resource_version = f::kObjectResourceVersion;
  deployment.objects[0].generation = f::kObjectGeneration;
  deployment.force = true;
  deployment.started = absl::FromUnixSeconds(1700000000);
  deployment.finished = absl::FromUnixSeconds(1700000001);
  deployment.succeeded = true;
  if (auto s = (*runs)->RecordDeployment(deployment); !s.ok()) {
    std::fprintf(stderr, "%s\n", s.status().ToString().c_str());
    return 1;
  }

  auto cache = kiln::store::ActionCache::Open(dir);
  if (!cache.ok()) {
    std::fprintf(stderr, "%s\n", cache.status().ToString().c_str());
    return 1;
  }
  kiln::store::ActionResult result;
  result.exit_code = 0;
  result.outputs["app"] = f::kArtifactDigest;
  result.results[f::kResultKey] = f::kResultValue;
  result.pipeline_name = f::kPipeline;
  result.task_name = "build";
  result.run_id = created->run_id;
  result.components.push_back({f::kComponent, f::kComponentDigest});
  if (auto s = (*cache)->Put(f::kActionKey, result); !s.ok()) {
    std::fprintf(stderr, "%s\n", s.ToString().c_str());
    return 1;
  }
  std::printf("wrote run %s (schema %lld) to %s\n", created->run_id.c_str(),
              static_cast<long long>(kiln::store::RunStore::SchemaVersion()),
              dir.c_str());
  return 0;
}
