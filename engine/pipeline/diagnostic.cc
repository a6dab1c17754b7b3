#include "engine/pipeline/diagnostic.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace kiln::pipeline {

std::string Diagnostic::ToString() const {
  if (line > 0) {
    return absl::StrCat(file, ":", line, ":", column, ": ", message);
  }
  std::string where = file;
  if (!path.empty())
    where = where.empty() ? path : absl::StrCat(where, ": ", path);
  if (where.empty()) return message;
  return absl::StrCat(where, ": ", message);
}

std::string JoinDiagnostics(const std::vector<Diagnostic>& diagnostics) {
  std::string out;
  for (const Diagnostic& d : diagnostics)
    absl::StrAppend(&out, d.ToString(), "\n");
  return out;
}

absl::Status DiagnosticsToStatus(const std::vector<Diagnostic>& diagnostics) {
  if (diagnostics.empty()) return absl::OkStatus();
  std::string text = JoinDiagnostics(diagnostics);
  text.pop_back();  // trailing newline
  return absl::InvalidArgumentError(text);
}

void SourceMap::Record(absl::string_view path, int line, int column) {
  {
    MutexLock lock(&index_mu_);
    if (indexed_) {
      index_.clear();
      indexed_ = false;
    }
  }
  marks_.push_back(
      Mark{paths_.size(), static_cast<uint32_t>(path.size()), line, column});
  paths_.append(path.data(), path.size());
}

bool SourceMap::indexed() const {
  MutexLock lock(&index_mu_);
  return indexed_;
}

std::shared_ptr<const SourceMap> SourceMap::Deferred(
    std::string file, std::function<std::shared_ptr<const SourceMap>()> build) {
  auto map = std::make_shared<SourceMap>(std::move(file));
  MutexLock lock(&map->index_mu_);
  map->build_ = std::move(build);
  return map;
}

bool SourceMap::Lookup(absl::string_view path, int* line, int* column) const {
  MutexLock lock(&index_mu_);
  if (build_) {
    built_ = build_();
    build_ = nullptr;
  }
  if (built_ != nullptr) return built_->Lookup(path, line, column);
  if (!indexed_) {
    index_.reserve(marks_.size());
    const absl::string_view all(paths_);
    for (const Mark& m : marks_) {
      // emplace keeps the first position of a path recorded twice.
      index_.emplace(all.substr(m.offset, m.size),
                     std::make_pair(m.line, m.column));
    }
    indexed_ = true;
  }
  while (true) {
    auto it = index_.find(path);
    if (it != index_.end()) {
      *line = it->second.first;
      *column = it->second.second;
      return true;
    }
    if (path.empty()) return false;
    // Drop the last component: ".name" or "[i]".
    size_t cut = path.find_last_of(".[");
    path = cut == absl::string_view::npos ? absl::string_view()
                                          : path.substr(0, cut);
  }
}

Diagnostic MakeDiagnostic(const SourceMap* map, std::string path,
                          std::string message) {
  Diagnostic d;
  d.path = std::move(path);
  d.message = std::move(message);
  if (map != nullptr) {
    d.file = map->file();
    map->Lookup(d.path, &d.line, &d.column);
  }
  return d;
}

std::string Index(absl::string_view path, size_t i) {
  return absl::StrCat(path, "[", i, "]");
}

std::string Field(absl::string_view path, absl::string_view name) {
  if (path.empty()) return std::string(name);
  return absl::StrCat(path, ".", name);
}

}  // namespace kiln::pipeline
