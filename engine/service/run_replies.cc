#include "engine/service/run_replies.h"

#include <algorithm>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"

namespace kiln::service {
namespace {

constexpr size_t kMaxTextBytes = 64 << 10;

void Shorten(std::string* text) {
  if (text->size() > kMaxTextBytes) {
    text->resize(kMaxTextBytes);
    text->append("... [truncated]");
  }
}

}  // namespace

void RedactSecrets(const v1::Pipeline& pipeline, v1::Run* run) {
  std::vector<std::string> values;
  auto* params = run->mutable_trigger()->mutable_params();
  for (const v1::Param& p : pipeline.params()) {
    if (!p.secret()) continue;
    auto it = params->find(p.name());
    if (it != params->end()) {
      if (!it->second.empty()) values.push_back(it->second);
      it->second = kRedacted;
    } else if (p.has_default_() && !p.default_().empty()) {
      values.push_back(p.default_());
    }
  }
  if (values.empty()) return;
  for (v1::TaskStatus& task : *run->mutable_tasks()) {
    for (auto& [key, value] : *task.mutable_results()) {
      for (const std::string& secret : values) {
        if (value.find(secret) != std::string::npos) {
          value = absl::StrReplaceAll(value, {{secret, kRedacted}});
        }
      }
    }
    for (const std::string& secret : values) {
      if (task.reason().find(secret) != std::string::npos) {
        task.set_reason(
            absl::StrReplaceAll(task.reason(), {{secret, kRedacted}}));
      }
    }
  }
}

void RedactSecretDefaults(v1::Pipeline* pipeline) {
  for (v1::Param& p : *pipeline->mutable_params()) {
    if (p.secret() && p.has_default_()) p.set_default_(kRedacted);
  }
}

void FitRun(v1::Run* run, size_t max_bytes) {
  if (run->ByteSizeLong() <= max_bytes) return;
  run->clear_tasks();
  run->set_tasks_omitted(true);
  if (run->ByteSizeLong() <= max_bytes) return;
  Shorten(run->mutable_reason());
  v1::Trigger* trigger = run->mutable_trigger();
  Shorten(trigger->mutable_commit_message());
  for (auto& [key, value] : *trigger->mutable_params()) Shorten(&value);
  if (run->ByteSizeLong() > max_bytes) trigger->clear_params();
}

void SummarizeRun(v1::Run* run, size_t max_bytes) {
  run->clear_tasks();
  run->set_tasks_omitted(true);
  FitRun(run, max_bytes);
}

absl::StatusOr<v1::GetRunTasksResponse> PageTasks(const v1::Run& run,
                                                  int page_size,
                                                  const std::string& page_token,
                                                  size_t max_bytes) {
  if (page_size <= 0) page_size = 100;
  page_size = std::min(page_size, 1000);
  int start = 0;
  if (!page_token.empty() && (!absl::SimpleAtoi(page_token, &start) ||
                              start < 0 || start > run.tasks_size())) {
    return absl::InvalidArgumentError(
        absl::StrCat("GetRunTasks: bad page token '", page_token, "'"));
  }
  v1::GetRunTasksResponse page;
  size_t bytes = 0;
  int i = start;
  for (; i < run.tasks_size() && i - start < page_size; ++i) {
    v1::TaskStatus task = run.tasks(i);
    size_t size = task.ByteSizeLong() + 8;
    if (size > max_bytes) {
      task.clear_results();
      task.clear_outputs();
      Shorten(task.mutable_reason());
      task.set_reason(absl::StrCat(task.reason(),
                                   " [results and outputs too large to list]"));
      size = task.ByteSizeLong() + 8;
    }
    if (i > start && bytes + size > max_bytes) break;
    bytes += size;
    *page.add_tasks() = std::move(task);
  }
  if (i < run.tasks_size()) page.set_next_page_token(absl::StrCat(i));
  return page;
}

}  // namespace kiln::service
