// Building a pipeline in code without writing protobuf by hand
// (docs/embedding.md):
//
//   kiln::PipelineBuilder p("embedded");
//   p.Param("who", "world");
//   p.Run("greet", {"/bin/sh", "-c", "mkdir out && echo hi $WHO >out/g"})
//       .Env("WHO", "${params.who}")
//       .Output("greeting", {"out/g"});
//   p.Run("shout", {"/bin/sh", "-c", "tr a-z A-Z <out/g"})
//       .Needs("greet")
//       .Input("greeting");
//   absl::StatusOr<kiln::v1::Pipeline> pipeline = p.Build();
//
// Build() runs the same validation as a pipeline file (engine/pipeline/
// validate.h) and returns every problem in one InvalidArgument, each as
// "tasks[1].needs[0]: ..." — so a pipeline made in code fails before it is
// submitted, exactly as a file would. The builder covers the common fields;
// Task::proto() (and Pipeline's mutable_proto()) reach everything else.
//
// Not thread-safe; a TaskBuilder is valid until the next call that adds a
// task.
#ifndef KILN_API_BUILDER_H_
#define KILN_API_BUILDER_H_

#include <initializer_list>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "kiln/v1/pipeline.pb.h"

namespace kiln {

class TaskBuilder {
 public:
  // `errors` collects what the proto cannot refuse by itself (a retry count
  // beyond 100, a negative timeout); Build() reports them.
  TaskBuilder(v1::Task* task, std::vector<std::string>* errors)
      : task_(task), errors_(errors) {}

  TaskBuilder& Needs(const std::string& task);
  // Unstash `artifact` into the workspace (at `path`, default its root).
  TaskBuilder& Input(const std::string& artifact, const std::string& path = "");
  // Stash `paths` (relative to the workspace) as `artifact` after success.
  TaskBuilder& Output(const std::string& artifact,
                      const std::vector<std::string>& paths);
  // run tasks: an environment variable, the image ("host" or a reference),
  // the working directory, network access.
  TaskBuilder& Env(const std::string& name, const std::string& value);
  TaskBuilder& Image(const std::string& image);
  TaskBuilder& Workdir(const std::string& dir);
  TaskBuilder& Network(bool enabled);
  TaskBuilder& Retries(int retries);             // 0..100, as in a file
  TaskBuilder& Timeout(absl::Duration timeout);  // > 0
  TaskBuilder& Cache(bool enabled);
  // Only when the trigger's branch matches the glob (e.g. "main").
  TaskBuilder& WhenBranch(const std::string& glob);
  TaskBuilder& Executor(const std::string& name);

  v1::Task& proto() { return *task_; }

 private:
  v1::Task* task_;
  std::vector<std::string>* errors_;
};

class PipelineBuilder {
 public:
  explicit PipelineBuilder(const std::string& name);

  // A param with a default (a param without one must be given per run).
  PipelineBuilder& Param(const std::string& name, const std::string& default_);
  PipelineBuilder& RequiredParam(const std::string& name);
  PipelineBuilder& SecretParam(const std::string& name);
  PipelineBuilder& KeepGoing();  // options.on_failure: continue
  PipelineBuilder& Timeout(absl::Duration timeout);  // > 0

  // Tasks by kind. `argv` is never joined into a shell string.
  TaskBuilder Run(const std::string& name, std::vector<std::string> argv);
  // Stash the workspace directory `from` (after the task's inputs are
  // unstashed) as `artifact`.
  TaskBuilder Stash(const std::string& name, const std::string& artifact,
                    const std::string& from);
  TaskBuilder Unstash(const std::string& name, const std::string& artifact,
                      const std::string& to);
  // A task of the finally block (runs after everything, whatever happened).
  TaskBuilder Finally(const std::string& name, std::vector<std::string> argv);

  // The pipeline, validated (InvalidArgument listing every problem).
  absl::StatusOr<v1::Pipeline> Build() const;
  v1::Pipeline* mutable_proto() { return &pipeline_; }

 private:
  v1::Pipeline pipeline_;
  std::vector<std::string> errors_;
};

}  // namespace kiln

#endif  // KILN_API_BUILDER_H_
