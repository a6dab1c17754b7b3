#include "engine/pipeline/plan.h"

#include <atomic>
#include <queue>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "engine/pipeline/condition.h"
#include "engine/pipeline/params.h"

namespace kiln::pipeline {
namespace {

std::atomic<int64_t> plans_computed{0};

// Appends `tasks` to plan->order topologically; needs resolve within `tasks`.
absl::Status PlanPart(const google::protobuf::RepeatedPtrField<v1::Task>& tasks,
                      bool is_finally, const v1::Trigger& trigger,
                      const absl::flat_hash_set<std::string>& secrets,
                      Plan* plan) {
  int n = tasks.size();
  absl::flat_hash_map<std::string, int> by_name;
  for (int i = 0; i < n; ++i) by_name.emplace(tasks[i].name(), i);
  std::vector<int> pending(n, 0);
  std::vector<std::vector<int>> dependents(n);
  for (int i = 0; i < n; ++i) {
    absl::flat_hash_set<int> distinct;
    for (const std::string& need : tasks[i].needs()) {
      auto it = by_name.find(need);
      if (it == by_name.end() || it->second == i) continue;
      if (distinct.insert(it->second).second) {
        ++pending[i];
        dependents[it->second].push_back(i);
      }
    }
  }
  // Smallest declaration index first among ready tasks: stable output.
  std::priority_queue<int, std::vector<int>, std::greater<int>> ready;
  for (int i = 0; i < n; ++i) {
    if (pending[i] == 0) ready.push(i);
  }
  std::vector<int> entry(n, -1);  // index into plan->order
  while (!ready.empty()) {
    int i = ready.top();
    ready.pop();
    const v1::Task& task = tasks[i];
    PlannedTask planned;
    planned.task = &task;
    planned.is_finally = is_finally;
    planned.index = i;
    if (task.has_when() && DependsOnResults(task.when())) {
      // Decided when the task is ready (the results exist by then).
      planned.reason = "when: decided when it starts (it reads task results)";
    } else if (task.has_when()) {
      ConditionResult r = EvaluateCondition(task.when(), trigger, secrets);
      planned.skipped = !r.holds;
      planned.reason = r.reason;
    }
    if (!planned.skipped) {
      std::optional<std::string> reason = SkippedByNeeds(
          task, [&](const std::string& need) -> std::optional<bool> {
            auto it = by_name.find(need);
            if (it == by_name.end() || entry[it->second] < 0) {
              return std::nullopt;
            }
            return plan->order[entry[it->second]].skipped;
          });
      if (reason.has_value()) {
        planned.skipped = true;
        planned.reason = *std::move(reason);
      }
    }
    entry[i] = static_cast<int>(plan->order.size());
    plan->order.push_back(std::move(planned));
    for (int d : dependents[i]) {
      if (--pending[d] == 0) ready.push(d);
    }
  }
  for (int i = 0; i < n; ++i) {
    if (entry[i] < 0) {
      return absl::FailedPreconditionError(
          absl::StrCat("task '", tasks[i].name(),
                       "' is on a cycle of needs; validate the "
                       "pipeline first"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

std::optional<std::string> SkippedByNeeds(
    const v1::Task& task,
    const std::function<std::optional<bool>(const std::string&)>&
        need_skipped) {
  if (task.run_if_needs_skipped()) return std::nullopt;
  std::vector<std::string> skipped;
  bool any = false;
  for (const std::string& need : task.needs()) {
    std::optional<bool> s = need_skipped(need);
    if (!s.has_value()) continue;
    if (!*s) return std::nullopt;
    any = true;
    skipped.push_back(need);
  }
  if (!any) return std::nullopt;
  return absl::StrCat("every task it needs is skipped (",
                      absl::StrJoin(skipped, ", "), ")");
}

int64_t PlansComputedForTesting() { return plans_computed.load(); }

const PlannedTask* Plan::Find(const std::string& name) const {
  for (const PlannedTask& t : order) {
    if (t.task->name() == name) return &t;
  }
  return nullptr;
}

absl::StatusOr<Plan> ComputePlan(const v1::Pipeline& pipeline,
                                 const v1::Trigger& trigger) {
  plans_computed.fetch_add(1);
  Plan plan;
  absl::StatusOr<std::map<std::string, std::string>> params =
      ResolveParams(pipeline, trigger.params());
  if (!params.ok()) return params.status();
  plan.params = *std::move(params);
  // Conditions see the resolved values.
  v1::Trigger resolved = trigger;
  resolved.mutable_params()->clear();
  for (const auto& [name, value] : plan.params)
    (*resolved.mutable_params())[name] = value;
  absl::flat_hash_set<std::string> secrets;
  for (const v1::Param& p : pipeline.params()) {
    if (p.secret()) secrets.insert(p.name());
  }
  plan.order.reserve(pipeline.tasks_size() + pipeline.finally_size());
  absl::Status s = PlanPart(pipeline.tasks(), false, resolved, secrets, &plan);
  if (!s.ok()) return s;
  s = PlanPart(pipeline.finally(), true, resolved, secrets, &plan);
  if (!s.ok()) return s;
  return plan;
}

}  // namespace kiln::pipeline
