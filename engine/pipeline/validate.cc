// Pipeline-level checks: name, params, task names, needs, cycles.
#include "engine/pipeline/validate.h"

#include <algorithm>
#include <atomic>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "engine/pipeline/params.h"
#include "engine/pipeline/suggest.h"
#include "engine/pipeline/validator.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"

namespace kiln::pipeline {
namespace {
std::atomic<int64_t> full_validations{0};
}  // namespace

int64_t FullValidationsForTesting() { return full_validations.load(); }

namespace internal {
namespace {

bool IsTaskName(const std::string& s) {
  if (s.empty() || s.size() > 63) return false;
  for (char c : s) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '-' &&
        c != '_') {
      return false;
    }
  }
  return true;
}

bool IsParamName(const std::string& s) {
  if (s.empty() || s.size() > 128) return false;
  if (absl::ascii_isdigit(static_cast<unsigned char>(s[0]))) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_' ||
           c == '-';
  });
}

}  // namespace

void Validator::Error(const std::string& path, std::string message) {
  out_.push_back(MakeDiagnostic(map_, path, std::move(message)));
}

std::string Validator::Who(int t) const {
  const TaskRef& r = tasks_[t];
  return absl::StrCat(r.is_finally ? "finally task '" : "task '",
                      r.task->name(), "'");
}

void Validator::CheckPipeline() {
  if (p_.name().empty()) {
    Error("", "missing required field 'name' (the pipeline's name)");
  } else if (!IsTaskName(p_.name())) {
    Error("name",
          absl::StrCat("invalid pipeline name '", p_.name(),
                       "': use letters, digits, '-' and '_' (at most 63)"));
  }
  if (p_.tasks().empty()) {
    Error(p_.tasks().empty() && !p_.finally().empty() ? "finally" : "",
          "the pipeline has no tasks; 'tasks' needs at least one task");
  }
}

void Validator::CheckParams() {
  for (int i = 0; i < p_.params_size(); ++i) {
    const v1::Param& param = p_.params(i);
    std::string path = Index("params", i);
    if (param.name().empty()) {
      Error(path, "param: missing required field 'name'");
      continue;
    }
    if (!IsParamName(param.name())) {
      Error(Field(path, "name"),
            absl::StrCat("invalid param name '", param.name(),
                         "': use letters, digits, '-' and '_', not starting "
                         "with a digit"));
    }
    if (!params_.emplace(param.name(), &param).second) {
      Error(Field(path, "name"),
            absl::StrCat("duplicate param '", param.name(), "'"));
    }
    if (param.type() == v1::CHOICE && param.choices().empty()) {
      Error(path, absl::StrCat("param ", param.name(),
                               ": type choice needs a non-empty 'choices'"));
    }
    if (param.type() != v1::CHOICE && !param.choices().empty()) {
      Error(Field(path, "choices"),
            absl::StrCat("param ", param.name(),
                         ": 'choices' is only allowed with type choice"));
    }
    if (param.has_default_()) {
      std::string error = CheckParamValue(param, param.default_());
      if (!error.empty()) {
        Error(
            Field(path, "default"),
            absl::StrCat("param ", param.name(), ": invalid default: ", error));
      }
    }
  }
}

void Validator::ListTasks() {
  tasks_.reserve(p_.tasks_size() + p_.finally_size());
  for (int i = 0; i < p_.tasks_size(); ++i) {
    tasks_.push_back({&p_.tasks(i), Index("tasks", i), false});
  }
  for (int i = 0; i < p_.finally_size(); ++i) {
    tasks_.push_back({&p_.finally(i), Index("finally", i), true});
  }
}

void Validator::IndexTasks() {
  ListTasks();
  for (int t = 0; t < static_cast<int>(tasks_.size()); ++t) {
    const std::string& name = tasks_[t].task->name();
    if (name.empty()) {
      Error(tasks_[t].path, "task: missing required field 'name'");
      continue;
    }
    if (!IsTaskName(name)) {
      Error(Field(tasks_[t].path, "name"),
            absl::StrCat("invalid task name '", name,
                         "': use letters, digits, '-' and '_' (at most 63)"));
    }
    auto [it, inserted] = by_name_.emplace(name, t);
    if (!inserted) {
      std::string first = tasks_[it->second].path;
      int line = 0, column = 0;
      if (map_ != nullptr &&
          map_->Lookup(Field(first, "name"), &line, &column)) {
        first = absl::StrCat("line ", line);
      }
      Error(Field(tasks_[t].path, "name"),
            absl::StrCat("duplicate task name '", name, "' (first at ", first,
                         "); tasks and finally share one namespace"));
    }
  }
}

void Validator::CheckNeeds(int t) {
  const TaskRef& r = tasks_[t];
  // Candidate names for a suggestion, built only when a need is unknown
  // (building them for every task is quadratic in the pipeline's size).
  auto names = [this, &r] {
    std::vector<std::string> out;
    for (const TaskRef& other : tasks_) {
      if (other.is_finally == r.is_finally) out.push_back(other.task->name());
    }
    return out;
  };
  absl::flat_hash_set<std::string> seen;
  for (int i = 0; i < r.task->needs_size(); ++i) {
    const std::string& need = r.task->needs(i);
    std::string path = Index(Field(r.path, "needs"), i);
    if (!seen.insert(need).second) {
      Error(path, absl::StrCat(Who(t), " lists '", need, "' in needs twice"));
      continue;
    }
    if (need == r.task->name()) {
      Error(path, absl::StrCat(Who(t), " needs itself"));
      continue;
    }
    auto it = by_name_.find(need);
    if (it == by_name_.end()) {
      Error(path, absl::StrCat(Who(t), " needs unknown task '", need, "'",
                               DidYouMean(need, names())));
      continue;
    }
    bool other_finally = tasks_[it->second].is_finally;
    if (r.is_finally && !other_finally) {
      Error(path,
            absl::StrCat(Who(t), " may only need other finally tasks; '", need,
                         "' is a regular task (finally tasks run "
                         "after all tasks anyway)"));
    } else if (!r.is_finally && other_finally) {
      Error(path, absl::StrCat(Who(t), " cannot need finally task '", need,
                               "' (finally tasks run after all tasks)"));
    }
  }
}

void Validator::FindCycles() {
  int n = static_cast<int>(tasks_.size());
  // edges[t]: (needed task, index in needs) for known, distinct, non-self
  // needs.
  std::vector<std::vector<std::pair<int, int>>> edges(n);
  for (int t = 0; t < n; ++t) {
    for (int i = 0; i < tasks_[t].task->needs_size(); ++i) {
      auto it = by_name_.find(tasks_[t].task->needs(i));
      if (it != by_name_.end() && it->second != t)
        edges[t].push_back({it->second, i});
    }
  }
  std::vector<int> color(n, 0);  // 0 new, 1 on the stack, 2 done
  std::vector<std::pair<int, size_t>> stack;
  for (int root = 0; root < n; ++root) {
    if (color[root] != 0) continue;
    stack.push_back({root, 0});
    color[root] = 1;
    while (!stack.empty()) {
      auto& [u, next] = stack.back();
      if (next == edges[u].size()) {
        color[u] = 2;
        stack.pop_back();
        continue;
      }
      auto [v, need_index] = edges[u][next++];
      if (color[v] == 0) {
        color[v] = 1;
        stack.push_back({v, 0});
      } else if (color[v] == 1) {
        acyclic_ = false;
        std::vector<std::string> names;
        size_t from = 0;
        while (stack[from].first != v) ++from;
        for (size_t k = from; k < stack.size(); ++k) {
          names.push_back(tasks_[stack[k].first].task->name());
        }
        names.push_back(tasks_[v].task->name());
        int u_now = stack.back().first;
        Error(Index(Field(tasks_[u_now].path, "needs"), need_index),
              absl::StrCat("cycle: ", absl::StrJoin(names, " -> "),
                           " (each task needs the next)"));
      }
    }
  }
}

void Validator::ComputeAncestors() {
  int n = static_cast<int>(tasks_.size());
  parents_.assign(n, {});
  // Kahn's order: a task after everything it needs.
  std::vector<int> pending(n, 0);
  std::vector<std::vector<int>> dependents(n);
  for (int t = 0; t < n; ++t) {
    absl::flat_hash_set<int> distinct;
    for (const std::string& need : tasks_[t].task->needs()) {
      auto it = by_name_.find(need);
      if (it != by_name_.end() && it->second != t &&
          distinct.insert(it->second).second) {
        ++pending[t];
        dependents[it->second].push_back(t);
        parents_[t].push_back(it->second);
      }
    }
  }
  order_.clear();
  order_.reserve(n);
  for (int t = 0; t < n; ++t) {
    if (pending[t] == 0) order_.push_back(t);
  }
  for (size_t next = 0; next < order_.size(); ++next) {
    for (int d : dependents[order_[next]]) {
      if (--pending[d] == 0) order_.push_back(d);
    }
  }
  rank_.assign(n, 0);
  for (int i = 0; i < static_cast<int>(order_.size()); ++i)
    rank_[order_[i]] = i;
  ancestor_groups_.clear();
}

const Validator::AncestorGroup& Validator::GroupMasks(int group) const {
  ++ancestor_clock_;
  for (AncestorGroup& g : ancestor_groups_) {
    if (g.group == group) {
      g.last_use = ancestor_clock_;
      return g;
    }
  }
  // At most ~64 MiB of masks (and at least one group).
  const size_t n = tasks_.size();
  const size_t max_groups =
      std::max<size_t>(1, (size_t{64} << 20) / (8 * std::max<size_t>(n, 1)));
  AncestorGroup* slot;
  if (ancestor_groups_.size() < max_groups) {
    slot = &ancestor_groups_.emplace_back();
  } else {
    slot =
        &*std::min_element(ancestor_groups_.begin(), ancestor_groups_.end(),
                           [](const AncestorGroup& a, const AncestorGroup& b) {
                             return a.last_use < b.last_use;
                           });
  }
  slot->group = group;
  slot->last_use = ancestor_clock_;
  slot->mask.assign(n, 0);
  // One pass in topological order: a task's mask is the union of its
  // parents' masks and of the parents themselves when in the group.
  const int first = group * 64;
  for (int t : order_) {
    uint64_t mask = 0;
    for (int p : parents_[t]) {
      mask |= slot->mask[p];
      if (p >= first && p < first + 64) mask |= uint64_t{1} << (p - first);
    }
    slot->mask[t] = mask;
  }
  return *slot;
}

bool Validator::IsAncestor(int ancestor, int of) const {
  if (!acyclic_ || rank_.empty()) return true;  // unknown: do not report
  if (ancestor == of || rank_[ancestor] >= rank_[of]) return false;
  for (int p : parents_[of]) {
    if (p == ancestor) return true;
  }
  const AncestorGroup& g = GroupMasks(ancestor / 64);
  return (g.mask[of] >> (ancestor % 64)) & 1;
}

std::vector<Diagnostic> Validator::Run() {
  full_validations.fetch_add(1, std::memory_order_relaxed);
  CheckPipeline();
  CheckParams();
  CheckNotify();
  CheckEnvironments();
  IndexTasks();
  for (int t = 0; t < static_cast<int>(tasks_.size()); ++t) CheckNeeds(t);
  FindCycles();
  if (acyclic_) ComputeAncestors();
  IndexArtifacts();
  for (int t = 0; t < static_cast<int>(tasks_.size()); ++t) {
    CheckKind(t);
    if (const KindSpec* kind = KindOf(*tasks_[t].task)) {
      KindFacts facts = kind->Facts(*tasks_[t].task);
      CheckEnvironmentUse(t, facts);
      CheckPromotion(t, facts);
    }
    if (tasks_[t].task->has_when()) {
      CheckCondition(tasks_[t].task->when(), Field(tasks_[t].path, "when"), t);
    }
    CheckArtifacts(t);
    CheckReferences(t);
    if (tasks_[t].task->has_approval()) CheckApproval(t);
  }
  return Sorted();
}

std::vector<Diagnostic> Validator::RunCapabilityChecks() {
  ListTasks();
  for (int t = 0; t < static_cast<int>(tasks_.size()); ++t) {
    // CheckKind's call, for a task whose kind passed its checks.
    if (const KindSpec* kind = KindOf(*tasks_[t].task))
      CheckSupported(*kind, t);
  }
  return Sorted();
}

std::vector<Diagnostic> Validator::Sorted() {
  if (map_ != nullptr) {
    std::stable_sort(out_.begin(), out_.end(),
                     [](const Diagnostic& a, const Diagnostic& b) {
                       return std::make_pair(a.line, a.column) <
                              std::make_pair(b.line, b.column);
                     });
  }
  return std::move(out_);
}

}  // namespace internal

std::vector<Diagnostic> ValidatePipeline(const v1::Pipeline& pipeline,
                                         const SourceMap* source_map) {
  return ValidatePipeline(pipeline, source_map, ExecCapabilities());
}

std::vector<Diagnostic> ValidatePipeline(const v1::Pipeline& pipeline,
                                         const SourceMap* source_map,
                                         const ExecCapabilities& caps) {
  return internal::Validator(pipeline, source_map, caps).Run();
}

namespace {

// The bytes a Validation is bound to: deterministic (map fields in key
// order), so equal pipelines give equal bytes.
std::string ContentOf(const v1::Pipeline& pipeline) {
  std::string bytes;
  {
    google::protobuf::io::StringOutputStream stream(&bytes);
    google::protobuf::io::CodedOutputStream out(&stream);
    out.SetSerializationDeterministic(true);
    pipeline.SerializeToCodedStream(&out);
  }
  return bytes;
}

}  // namespace

bool Validation::Covers(const v1::Pipeline& pipeline) const {
  return ContentOf(pipeline) == bytes_;
}

std::vector<Diagnostic> ValidatePipeline(
    const v1::Pipeline& pipeline, const SourceMap* source_map,
    const ExecCapabilities& caps,
    std::shared_ptr<const Validation>* validation) {
  std::vector<Diagnostic> found =
      internal::Validator(pipeline, source_map, caps).Run();
  validation->reset();
  if (found.empty()) {
    *validation =
        std::shared_ptr<const Validation>(new Validation(ContentOf(pipeline)));
  }
  return found;
}

namespace internal {
std::shared_ptr<const Validation> ValidatedBefore(
    const v1::Pipeline& pipeline) {
  return std::shared_ptr<const Validation>(new Validation(ContentOf(pipeline)));
}
}  // namespace internal

std::vector<Diagnostic> ValidateWithCapabilities(const v1::Pipeline& pipeline,
                                                 const SourceMap* source_map,
                                                 const ExecCapabilities& caps,
                                                 const Validation* prior) {
  internal::Validator validator(pipeline, source_map, caps);
  if (prior != nullptr && prior->Covers(pipeline)) {
    return validator.RunCapabilityChecks();
  }
  return validator.Run();
}

const char* KindName(const v1::Task& task) {
  const KindSpec* kind = KindOf(task);
  return kind == nullptr ? "" : kind->name().c_str();
}

std::string KindArtifact(const v1::Task& task) {
  const KindSpec* kind = KindOf(task);
  return kind == nullptr ? "" : kind->Facts(task).produced;
}

}  // namespace kiln::pipeline
