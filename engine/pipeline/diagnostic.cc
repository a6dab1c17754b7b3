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

void SourceMap::Record(const std::string& path, int line, int column) {
  marks_.emplace(path, std::make_pair(line, column));
}

bool SourceMap::Lookup(absl::string_view path, int* line, int* column) const {
  while (true) {
    auto it = marks_.find(path);
    if (it != marks_.end()) {
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
