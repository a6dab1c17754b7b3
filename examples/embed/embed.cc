// Embedding kiln: build a small pipeline in code (protobuf), run it in the
// local sandbox, and print its events as they happen.
//
//   bazel run //examples/embed -- [STORE_DIR]
#include <cstdio>
#include <cstdlib>
#include <string>

#include "engine/engine.h"
#include "executors/local_sandbox/local_sandbox_executor.h"
#include "kiln/v1/pipeline.pb.h"

namespace {

// A `run` task with argv (never a shell string unless asked for).
kiln::v1::Task* AddRunTask(kiln::v1::Pipeline* pipeline, const char* name,
                           std::initializer_list<const char*> argv) {
  kiln::v1::Task* task = pipeline->add_tasks();
  task->set_name(name);
  for (const char* arg : argv) task->mutable_run()->add_command(arg);
  return task;
}

const char* StateName(kiln::v1::TaskState state) {
  return kiln::v1::TaskState_Name(state).c_str() + 5;  // drop "TASK_"
}

}  // namespace

int main(int argc, char** argv) {
  std::string store = argc > 1 ? argv[1] : "/tmp/kiln-embed-store";

  // 1. The pipeline: greet -> shout, with a param used as data.
  kiln::v1::Pipeline pipeline;
  pipeline.set_name("embedded");
  kiln::v1::Param* who = pipeline.add_params();
  who->set_name("who");
  who->set_default_("world");

  kiln::v1::Task* greet = AddRunTask(
      &pipeline, "greet",
      {"/bin/sh", "-c", "mkdir -p out && echo \"hello, $WHO\" > out/greeting"});
  kiln::v1::EnvVar* env = greet->mutable_run()->add_env();
  env->set_name("WHO");
  env->set_value("${params.who}");
  kiln::v1::ArtifactOutput* out = greet->add_outputs();
  out->set_artifact("greeting");
  out->add_paths("out/greeting");

  // stdin is /dev/null in the sandbox: the shell redirects the artifact.
  kiln::v1::Task* shout = AddRunTask(
      &pipeline, "shout", {"/bin/sh", "-c", "tr a-z A-Z < out/greeting"});
  shout->add_needs("greet");
  shout->add_inputs()->set_artifact("greeting");

  // 2. The engine: a store directory and the local sandbox executor.
  kiln::LocalSandboxOptions sandbox;
  sandbox.hidden_paths = kiln::DefaultHiddenPaths(store);
  auto executor = kiln::LocalSandboxExecutor::Create(sandbox);
  if (!executor.ok()) {
    std::fprintf(stderr, "sandbox: %s\n", executor.status().ToString().c_str());
    return 1;
  }
  kiln::EngineOptions options;
  options.store_dir = store;
  options.executor = std::move(*executor);
  auto engine = kiln::Engine::Create(std::move(options));
  if (!engine.ok()) {
    std::fprintf(stderr, "engine: %s\n", engine.status().ToString().c_str());
    return 1;
  }

  // 3. Submit with a trigger, print events, wait.
  kiln::RunRequest request;
  request.pipeline = pipeline;
  request.trigger.set_branch("main");
  request.trigger.set_event(kiln::v1::MANUAL);
  (*request.trigger.mutable_params())["who"] = "kiln";
  auto run = (*engine)->Submit(std::move(request));
  if (!run.ok()) {
    std::fprintf(stderr, "submit: %s\n", run.status().ToString().c_str());
    return 1;
  }
  (*run)->Subscribe(0, [](const kiln::v1::RunEvent& e) {
    if (e.has_task_state()) {
      std::printf(
          "#%llu %s: %s %s\n", static_cast<unsigned long long>(e.sequence()),
          e.task_state().task().c_str(), StateName(e.task_state().state()),
          e.task_state().reason().c_str());
    } else if (e.has_log()) {
      std::printf("#%llu %s | %s\n",
                  static_cast<unsigned long long>(e.sequence()),
                  e.log().task().c_str(), e.log().text().c_str());
    } else if (e.has_run_state()) {
      std::printf("#%llu run: %s\n",
                  static_cast<unsigned long long>(e.sequence()),
                  kiln::v1::RunState_Name(e.run_state().state()).c_str());
    }
  });
  kiln::v1::Run result = (*run)->Wait();
  std::printf("run %s finished: %s\n", result.id().c_str(),
              kiln::v1::RunState_Name(result.state()).c_str());
  return result.state() == kiln::v1::RUN_SUCCEEDED ? 0 : 1;
}
