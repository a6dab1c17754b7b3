#include "engine/kinds/kind_env.h"

#include <algorithm>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"

namespace kiln::kinds {

SecretMask::SecretMask(const std::map<std::string, std::string>& secrets) {
  for (const auto& [name, value] : secrets) {
    if (value.size() < 3) continue;  // too short to mask meaningfully
    forms_.push_back(value);
    forms_.push_back(absl::Base64Escape(value));
    forms_.push_back(absl::WebSafeBase64Escape(value));
    std::string json = absl::StrReplaceAll(
        value, {{"\\", "\\\\"}, {"\"", "\\\""}, {"\n", "\\n"}});
    forms_.push_back(json);
    for (absl::string_view line : absl::StrSplit(value, '\n')) {
      if (line.size() >= 3) forms_.emplace_back(line);
    }
  }
  // Longest first, so a secret containing another is masked whole.
  std::sort(forms_.begin(), forms_.end(),
            [](const std::string& a, const std::string& b) {
              return a.size() > b.size();
            });
}

std::string SecretMask::Mask(std::string line) const {
  for (const std::string& s : forms_) {
    if (line.find(s) != std::string::npos) {
      line = absl::StrReplaceAll(line, {{s, "***"}});
    }
  }
  return line;
}

KindEnv::KindEnv(TaskRunnerContext ctx)
    : ctx_(std::move(ctx)), mask_(ctx_.secrets) {}

absl::StatusOr<std::string> KindEnv::ArtifactDigest(
    const std::string& artifact,
    const std::map<std::string, v1::TaskStatus>& finished) const {
  if (artifact == "source" && !ctx_.source_digest.empty()) {
    return ctx_.source_digest;
  }
  for (const auto& [name, status] : finished) {
    auto it = status.outputs().find(artifact);
    if (it != status.outputs().end()) return it->second;
  }
  return absl::NotFoundError(absl::StrCat(
      "artifact '", artifact, "' was not produced by any task this one needs"));
}

std::string KindEnv::SourcePath(const std::string& relative) const {
  std::string root = ctx_.source_dir.empty() ? "." : ctx_.source_dir;
  return relative.empty() ? root : absl::StrCat(root, "/", relative);
}

void KindEnv::Warn(const std::string& task, int attempt,
                   const std::string& text) const {
  if (!ctx_.emit) return;
  v1::RunEvent e;
  auto* log = e.mutable_log();
  log->set_task(task);
  log->set_attempt(attempt);
  log->set_stream(v1::LogLine::STDERR);
  log->set_text(absl::StrCat("kiln: ", mask_.Mask(text)));
  ctx_.emit(std::move(e));
}

}  // namespace kiln::kinds
