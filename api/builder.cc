#include "api/builder.h"

#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "engine/pipeline/validate.h"
#include "google/protobuf/duration.pb.h"

namespace kiln {
namespace {

// The bound the loader puts on a task's `retries`.
constexpr int kMaxRetries = 100;

// A positive, finite duration into *out; false (and *out untouched) else.
bool SetDuration(absl::Duration d, google::protobuf::Duration* out) {
  if (d <= absl::ZeroDuration() || d == absl::InfiniteDuration()) return false;
  absl::Duration rest;
  int64_t seconds = absl::IDivDuration(d, absl::Seconds(1), &rest);
  out->set_seconds(seconds);
  out->set_nanos(static_cast<int32_t>(absl::ToInt64Nanoseconds(rest)));
  return true;
}

}  // namespace

TaskBuilder& TaskBuilder::Needs(const std::string& task) {
  task_->add_needs(task);
  return *this;
}

TaskBuilder& TaskBuilder::Input(const std::string& artifact,
                                const std::string& path) {
  v1::ArtifactInput* input = task_->add_inputs();
  input->set_artifact(artifact);
  input->set_path(path);
  return *this;
}

TaskBuilder& TaskBuilder::Output(const std::string& artifact,
                                 const std::vector<std::string>& paths) {
  v1::ArtifactOutput* output = task_->add_outputs();
  output->set_artifact(artifact);
  for (const std::string& p : paths) output->add_paths(p);
  return *this;
}

TaskBuilder& TaskBuilder::Env(const std::string& name,
                              const std::string& value) {
  v1::EnvVar* var = task_->mutable_run()->add_env();
  var->set_name(name);
  var->set_value(value);
  return *this;
}

TaskBuilder& TaskBuilder::Image(const std::string& image) {
  task_->mutable_run()->set_image(image);
  return *this;
}

TaskBuilder& TaskBuilder::Workdir(const std::string& dir) {
  task_->mutable_run()->set_workdir(dir);
  return *this;
}

TaskBuilder& TaskBuilder::Network(bool enabled) {
  task_->mutable_run()->set_network(enabled);
  return *this;
}

TaskBuilder& TaskBuilder::Retries(int retries) {
  if (retries < 0 || retries > kMaxRetries) {
    errors_->push_back(absl::StrCat("task '", task_->name(), "': retries ",
                                    retries, " is outside 0..", kMaxRetries));
    return *this;
  }
  task_->mutable_hints()->set_retries(static_cast<uint32_t>(retries));
  return *this;
}

TaskBuilder& TaskBuilder::Timeout(absl::Duration timeout) {
  if (!SetDuration(timeout, task_->mutable_hints()->mutable_timeout())) {
    errors_->push_back(absl::StrCat("task '", task_->name(), "': timeout ",
                                    absl::FormatDuration(timeout),
                                    " is not positive and finite"));
  }
  return *this;
}

TaskBuilder& TaskBuilder::Cache(bool enabled) {
  task_->set_cache(enabled);
  return *this;
}

TaskBuilder& TaskBuilder::WhenBranch(const std::string& glob) {
  v1::StringMatch* m = task_->mutable_when()->mutable_branch();
  m->set_kind(v1::StringMatch::GLOB);
  m->set_pattern(glob);
  return *this;
}

TaskBuilder& TaskBuilder::Executor(const std::string& name) {
  task_->set_executor(name);
  return *this;
}

PipelineBuilder::PipelineBuilder(const std::string& name) {
  pipeline_.set_name(name);
}

PipelineBuilder& PipelineBuilder::Param(const std::string& name,
                                        const std::string& default_) {
  v1::Param* p = pipeline_.add_params();
  p->set_name(name);
  p->set_default_(default_);
  return *this;
}

PipelineBuilder& PipelineBuilder::RequiredParam(const std::string& name) {
  pipeline_.add_params()->set_name(name);
  return *this;
}

PipelineBuilder& PipelineBuilder::SecretParam(const std::string& name) {
  v1::Param* p = pipeline_.add_params();
  p->set_name(name);
  p->set_secret(true);
  return *this;
}

PipelineBuilder& PipelineBuilder::KeepGoing() {
  pipeline_.mutable_options()->set_on_failure(v1::CONTINUE);
  return *this;
}

PipelineBuilder& PipelineBuilder::Timeout(absl::Duration timeout) {
  if (!SetDuration(timeout, pipeline_.mutable_options()->mutable_timeout())) {
    errors_.push_back(absl::StrCat("options.timeout ",
                                   absl::FormatDuration(timeout),
                                   " is not positive and finite"));
  }
  return *this;
}

TaskBuilder PipelineBuilder::Run(const std::string& name,
                                 std::vector<std::string> argv) {
  v1::Task* task = pipeline_.add_tasks();
  task->set_name(name);
  for (std::string& arg : argv)
    task->mutable_run()->add_command(std::move(arg));
  return TaskBuilder(task, &errors_);
}

TaskBuilder PipelineBuilder::Stash(const std::string& name,
                                   const std::string& artifact,
                                   const std::string& from) {
  v1::Task* task = pipeline_.add_tasks();
  task->set_name(name);
  task->mutable_stash()->set_artifact(artifact);
  task->mutable_stash()->set_from(from);
  return TaskBuilder(task, &errors_);
}

TaskBuilder PipelineBuilder::Unstash(const std::string& name,
                                     const std::string& artifact,
                                     const std::string& to) {
  v1::Task* task = pipeline_.add_tasks();
  task->set_name(name);
  task->mutable_unstash()->set_artifact(artifact);
  task->mutable_unstash()->set_to(to);
  return TaskBuilder(task, &errors_);
}

TaskBuilder PipelineBuilder::Finally(const std::string& name,
                                     std::vector<std::string> argv) {
  v1::Task* task = pipeline_.add_finally();
  task->set_name(name);
  for (std::string& arg : argv)
    task->mutable_run()->add_command(std::move(arg));
  return TaskBuilder(task, &errors_);
}

absl::StatusOr<v1::Pipeline> PipelineBuilder::Build() const {
  std::vector<std::string> lines = errors_;
  for (const pipeline::Diagnostic& d : pipeline::ValidatePipeline(pipeline_)) {
    lines.push_back(d.ToString());
  }
  if (lines.empty()) return pipeline_;
  return absl::InvalidArgumentError(absl::StrCat(
      "pipeline '", pipeline_.name(), "': ", absl::StrJoin(lines, "; ")));
}

}  // namespace kiln
