#include "engine/exec/executor_set.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace kiln {
namespace {

// Stands in for an executor name this engine does not have.
class UnknownExecutor : public Executor {
 public:
  explicit UnknownExecutor(std::string known) : known_(std::move(known)) {}
  std::string Name() const override { return "unknown"; }
  std::string Platform() const override { return "unknown-executor"; }
  absl::StatusOr<std::unique_ptr<Execution>> Start(const v1::ExecRequest&,
                                                   OutputSink*) override {
    return absl::InvalidArgumentError(absl::StrCat(
        "the task names an executor this engine does not have (known: ", known_,
        ")"));
  }

 private:
  std::string known_;
};

}  // namespace

ExecutorSet::ExecutorSet(
    const std::vector<std::shared_ptr<Executor>>& executors,
    std::string default_name)
    : default_name_(std::move(default_name)) {
  for (const std::shared_ptr<Executor>& e : executors) {
    if (e == nullptr) {
      problems_.push_back("an executor is null");
      continue;
    }
    if (!by_name_.emplace(e->Name(), e).second) {
      problems_.push_back(
          absl::StrCat("two executors are named '", e->Name(), "'"));
    }
  }
  if (default_name_.empty() && !executors.empty() && executors[0] != nullptr) {
    default_name_ = executors[0]->Name();
  }
  unknown_ = std::make_shared<UnknownExecutor>(KnownNames());
}

absl::Status ExecutorSet::Validate() const {
  if (!problems_.empty()) {
    return absl::InvalidArgumentError(absl::StrJoin(problems_, "; "));
  }
  if (by_name_.empty()) {
    return absl::InvalidArgumentError(
        "no executor: EngineOptions.executor or "
        "EngineOptions.executors is required");
  }
  if (Find(default_name_) == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown default executor '", default_name_,
                     "' (known: ", KnownNames(), ")"));
  }
  return absl::OkStatus();
}

ExecutorSet ExecutorSet::ForPipeline(const v1::Pipeline& pipeline) const {
  ExecutorSet copy = *this;
  if (!pipeline.options().executor().empty()) {
    copy.default_name_ = pipeline.options().executor();
  }
  return copy;
}

Executor* ExecutorSet::For(const v1::Task& task) const {
  Executor* e = Find(task.executor().empty() ? default_name_ : task.executor());
  return e != nullptr ? e : unknown_.get();
}

Executor* ExecutorSet::Default() const { return Find(default_name_); }

pipeline::ExecCapabilities ExecutorSet::Capabilities() const {
  pipeline::ExecCapabilities caps;
  caps.images = !by_name_.empty();
  for (const auto& [name, executor] : by_name_) {
    caps.images = caps.images && executor->Capabilities().ImagesSupported();
  }
  // The executor each task runs on decides. An unknown name is not
  // refused here (Check() names it).
  caps.images_for_task = [set = *this](const v1::Task& task) {
    Executor* e =
        set.Find(task.executor().empty() ? set.default_name_ : task.executor());
    return e == nullptr || e->Capabilities().ImagesSupported();
  };
  return caps;
}

Executor* ExecutorSet::Find(const std::string& name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : it->second.get();
}

bool ExecutorSet::ImagesSupported(const v1::Task& task) const {
  return For(task)->Capabilities().ImagesSupported();
}

std::vector<pipeline::Diagnostic> ExecutorSet::Check(
    const v1::Pipeline& p, const pipeline::SourceMap* map) const {
  std::vector<pipeline::Diagnostic> out;
  auto check = [&](const std::string& name, const std::string& path,
                   const std::string& who) {
    if (name.empty() || Find(name) != nullptr) return;
    out.push_back(pipeline::MakeDiagnostic(
        map, path,
        absl::StrCat(who, "unknown executor '", name,
                     "' (known: ", KnownNames(), ")")));
  };
  check(p.options().executor(), "options.executor", "");
  for (int i = 0; i < p.tasks_size(); ++i) {
    check(p.tasks(i).executor(),
          pipeline::Field(pipeline::Index("tasks", i), "executor"),
          absl::StrCat("task '", p.tasks(i).name(), "': "));
  }
  for (int i = 0; i < p.finally_size(); ++i) {
    check(p.finally(i).executor(),
          pipeline::Field(pipeline::Index("finally", i), "executor"),
          absl::StrCat("task '", p.finally(i).name(), "': "));
  }
  return out;
}

std::string ExecutorSet::KnownNames() const {
  std::vector<std::string> names;
  for (const auto& [name, e] : by_name_) names.push_back(name);
  return absl::StrJoin(names, ", ");
}

}  // namespace kiln
