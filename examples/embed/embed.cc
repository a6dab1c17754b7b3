// Embedding kiln: build a small pipeline in code, run it in the local
// sandbox, and print its events as they happen (docs/embedding.md).
//
//   bazel run //examples/embed -- [STORE_DIR]
//
// The same file is built outside this workspace against an installed kiln
// by CMake and by a separate Bazel workspace (tests/consumers/).
#include <cstdio>
#include <string>

#include "api/kiln.h"

namespace {

const char* StateName(kiln::v1::TaskState state) {
  return kiln::v1::TaskState_Name(state).c_str() + 5;  // drop "TASK_"
}

void Print(const kiln::v1::RunEvent& e) {
  auto seq = static_cast<unsigned long long>(e.sequence());
  if (e.has_task_state()) {
    std::printf("#%llu %s: %s %s\n", seq, e.task_state().task().c_str(),
                StateName(e.task_state().state()),
                e.task_state().reason().c_str());
  } else if (e.has_log()) {
    std::printf("#%llu %s | %s\n", seq, e.log().task().c_str(),
                e.log().text().c_str());
  } else if (e.has_run_state()) {
    std::printf("#%llu run: %s\n", seq,
                kiln::v1::RunState_Name(e.run_state().state()).c_str());
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::string store = argc > 1 ? argv[1] : "/tmp/kiln-embed-store";
  std::printf("kiln %s (built against %s)\n", kiln::Version(),
              KILN_VERSION_STRING);

  // 1. The pipeline: greet -> shout, with a param used as data.
  kiln::PipelineBuilder p("embedded");
  p.Param("who", "world");
  p.Run("greet", {"/bin/sh", "-c",
                  "mkdir -p out && echo \"hello, $WHO\" > out/greeting"})
      .Env("WHO", "${params.who}")
      .Output("greeting", {"out/greeting"});
  // stdin is /dev/null in the sandbox: the shell redirects the artifact.
  p.Run("shout", {"/bin/sh", "-c", "tr a-z A-Z < out/greeting"})
      .Needs("greet")
      .Input("greeting");
  auto pipeline = p.Build();
  if (!pipeline.ok()) {
    std::fprintf(stderr, "%s\n", pipeline.status().ToString().c_str());
    return 1;
  }

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
  request.pipeline = *std::move(pipeline);
  request.trigger.set_branch("main");
  request.trigger.set_event(kiln::v1::MANUAL);
  (*request.trigger.mutable_params())["who"] = "kiln";
  auto run = (*engine)->Submit(std::move(request));
  if (!run.ok()) {
    std::fprintf(stderr, "submit: %s\n", run.status().ToString().c_str());
    return 1;
  }
  (*run)->Subscribe(0, Print);
  kiln::v1::Run result = (*run)->Wait();
  std::printf("run %s finished: %s\n", result.id().c_str(),
              kiln::v1::RunState_Name(result.state()).c_str());
  return result.state() == kiln::v1::RUN_SUCCEEDED ? 0 : 1;
}
