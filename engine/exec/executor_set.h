// ExecutorSet: the executors an engine can run tasks on, by Name(), and
// the choice of one per task: Task.executor, else the pipeline's
// options.executor, else the engine's default.
//
// Each executor's Platform() is part of the keys of the tasks it runs, so
// the same task on two executors never shares a cache entry. An unknown
// name is refused before a run starts (Check); if one still reaches For()
// (a recorded run resumed by an engine configured differently), it gets an
// executor whose Start() fails naming the known ones, never another one.
//
// Copyable (shares the executors); thread-safe for const use.
#ifndef KILN_ENGINE_EXEC_EXECUTOR_SET_H_
#define KILN_ENGINE_EXEC_EXECUTOR_SET_H_

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "engine/pipeline/diagnostic.h"
#include "engine/pipeline/kind_spec.h"
#include "executors/executor.h"
#include "kiln/v1/pipeline.pb.h"

namespace kiln {

class ExecutorSet {
 public:
  ExecutorSet() = default;
  // `executors` by their Name(); `default_name` "" = the only one (or the
  // first). Validate() says whether this is usable.
  ExecutorSet(const std::vector<std::shared_ptr<Executor>>& executors,
              std::string default_name);

  // InvalidArgument: no executor, a null one, two with one name, or an
  // unknown default.
  absl::Status Validate() const;

  // This set with the default replaced by the pipeline's options.executor
  // (when set).
  ExecutorSet ForPipeline(const v1::Pipeline& pipeline) const;

  // The executor of `task`; never null (see above).
  Executor* For(const v1::Task& task) const;
  bool empty() const { return by_name_.empty(); }
  // The default executor, or null when the set is empty or the default is
  // unknown.
  Executor* Default() const;
  // By name; null if unknown.
  Executor* Find(const std::string& name) const;
  // Can the executor `task` runs on run images?
  bool ImagesSupported(const v1::Task& task) const;
  // What the executors of the set can do: `images` when all run images,
  // and per task (images_for_task) whether the one chosen for it does.
  pipeline::ExecCapabilities Capabilities() const;

  // A diagnostic for every unknown executor name in `pipeline` (its
  // options, every task and finally task), listing the known ones.
  std::vector<pipeline::Diagnostic> Check(
      const v1::Pipeline& pipeline,
      const pipeline::SourceMap* source_map = nullptr) const;

  // "a, b, c" (sorted).
  std::string KnownNames() const;

 private:
  std::map<std::string, std::shared_ptr<Executor>> by_name_;
  std::string default_name_;
  std::vector<std::string> problems_;  // found by the constructor
  std::shared_ptr<Executor> unknown_;  // For() of an unknown name
};

}  // namespace kiln

#endif  // KILN_ENGINE_EXEC_EXECUTOR_SET_H_
