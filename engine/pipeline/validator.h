// Internal to validate.cc / validate_task.cc: the state of one validation.
#ifndef KILN_ENGINE_PIPELINE_VALIDATOR_H_
#define KILN_ENGINE_PIPELINE_VALIDATOR_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "engine/pipeline/diagnostic.h"
#include "engine/pipeline/kind_spec.h"
#include "kiln/v1/pipeline.pb.h"

namespace kiln::pipeline::internal {

// A task of the pipeline, tasks first then finally.
struct TaskRef {
  const v1::Task* task;
  std::string path;  // "tasks[i]" or "finally[i]"
  bool is_finally;
};

class Validator {
 public:
  Validator(const v1::Pipeline& p, const SourceMap* map,
            const ExecCapabilities& caps)
      : p_(p), map_(map), caps_(caps) {}
  std::vector<Diagnostic> Run();
  // Only the checks that depend on caps_ (CheckSupported), for a pipeline
  // every other check passed: the diagnostics Run() would return then.
  std::vector<Diagnostic> RunCapabilityChecks();

  // validate.cc
  void ListTasks();  // fills tasks_
  // Diagnostics by position (with a source map), as returned.
  std::vector<Diagnostic> Sorted();
  void Error(const std::string& path, std::string message);
  void CheckPipeline();
  void CheckParams();
  void IndexTasks();
  void CheckNeeds(int t);
  void FindCycles();
  void ComputeAncestors();
  bool IsAncestor(int ancestor, int of) const;

  // validate_notify.cc: the pipeline's `notify:` entries.
  void CheckNotify();
  // validate_environments.cc
  void CheckEnvironments();
  // Task t's environment (facts: its kind's) against the declared ones.
  void CheckEnvironmentUse(int t, const KindFacts& facts);
  // Task t promoting an environment's deployment of this run: a task it
  // needs deploys to that environment.
  void CheckPromotion(int t, const KindFacts& facts);
  // ${...} in an environment field: params (not secret) and trigger only.
  void CheckEnvironmentString(const std::string& path, const std::string& value,
                              const std::string& who);

  // validate_task.cc
  void CheckKind(int t);
  // Refuses a task this kiln cannot execute unless `unsupported: skip`.
  void CheckSupported(const KindSpec& kind, int t);
  void CheckCondition(const v1::Condition& c, const std::string& path, int t);
  void IndexArtifacts();
  void CheckArtifacts(int t);
  void CheckApproval(int t);
  void CheckReferences(int t);
  // A reference by task t to result `result` of task `producer` (as
  // written: `what`): the task exists, is among t's needs (directly or
  // indirectly) and declares the result. Errors at task_path (an unknown or
  // unneeded task) or result_path (an undeclared result).
  void CheckResultReference(const std::string& producer,
                            const std::string& result, const std::string& what,
                            const std::string& task_path,
                            const std::string& result_path, int t);
  void CheckRelativePath(const std::string& path, const std::string& value,
                         const std::string& what, int t);
  void CheckEnv(const google::protobuf::RepeatedPtrField<v1::EnvVar>& env,
                const std::string& path, int t);
  void Require(bool present, const std::string& path, const std::string& field,
               int t);
  // Reports if `artifact` is not available to task t.
  void CheckConsumed(const std::string& artifact, const std::string& path,
                     int t);
  std::string Who(int t) const;

  const v1::Pipeline& p_;
  const SourceMap* map_;
  ExecCapabilities caps_;
  std::vector<Diagnostic> out_;
  std::vector<TaskRef> tasks_;
  absl::flat_hash_map<std::string, int> by_name_;  // first of each name
  absl::flat_hash_map<std::string, const v1::Param*> params_;
  absl::flat_hash_map<std::string, int> environments_;  // name -> index
  bool acyclic_ = true;
  // Reachability (valid if acyclic_), in memory linear in the graph:
  // parents_[t] are the distinct tasks t needs; rank_[t] is t's position in
  // a topological order. IsAncestor answers from the rank, the direct
  // parents, or a pass over the graph for a group of 64 candidate ancestors
  // (ancestor_groups_, bounded in bytes, least recently used dropped).
  std::vector<std::vector<int>> parents_;
  std::vector<int> order_;  // topological: a task after all it needs
  std::vector<int> rank_;
  struct AncestorGroup {
    int group = -1;
    uint64_t last_use = 0;
    std::vector<uint64_t> mask;  // per task: bit i = task 64*group+i
  };
  mutable std::vector<AncestorGroup> ancestor_groups_;
  mutable uint64_t ancestor_clock_ = 0;
  const AncestorGroup& GroupMasks(int group) const;
  absl::flat_hash_map<std::string, int> producer_;  // artifact -> task
};

}  // namespace kiln::pipeline::internal

#endif  // KILN_ENGINE_PIPELINE_VALIDATOR_H_
