// Diagnostics about a pipeline and the source map that positions them.
//
// A Diagnostic names a place in a pipeline by its field path (e.g.
// "tasks[2].needs[0]", "finally[0].when.any[1].branch") and, when the
// pipeline came from a file, by FILE:LINE:COL. The loader records the
// position of every YAML node it converts under its field path in a
// SourceMap; later checks (validation, substitution) look their path up.
// Recording is an append to two flat arrays; the lookup table is built on
// the first Lookup (a valid pipeline is never looked up: no diagnostic).
#ifndef KILN_ENGINE_PIPELINE_DIAGNOSTIC_H_
#define KILN_ENGINE_PIPELINE_DIAGNOSTIC_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "base/mutex.h"

namespace kiln::pipeline {

struct Diagnostic {
  std::string file;  // "" for a pipeline built in code
  int line = 0;      // 1-based; 0 when unknown
  int column = 0;
  std::string path;  // field path, e.g. "tasks[2].needs[0]"; may be ""
  std::string message;

  // "FILE:LINE:COL: message" when positioned; otherwise "FILE: PATH: message"
  // (or "PATH: message" without a file).
  std::string ToString() const;
};

// Every diagnostic on its own line.
std::string JoinDiagnostics(const std::vector<Diagnostic>& diagnostics);

// InvalidArgument carrying every diagnostic (OK when empty).
absl::Status DiagnosticsToStatus(const std::vector<Diagnostic>& diagnostics);

// Field path -> source position. Record is not thread-safe (the loader
// fills the map, then shares it const); const use (Lookup) is.
class SourceMap {
 public:
  explicit SourceMap(std::string file = "") : file_(std::move(file)) {}
  // A map of `file` whose positions `build` computes on the first Lookup
  // (a pipeline loaded from the decode cache: positions are needed only
  // for a diagnostic). Lookup then answers from the map `build` returned.
  static std::shared_ptr<const SourceMap> Deferred(
      std::string file,
      std::function<std::shared_ptr<const SourceMap>()> build);
  SourceMap(const SourceMap&) = delete;
  SourceMap& operator=(const SourceMap&) = delete;

  const std::string& file() const { return file_; }
  // The first position recorded for a path is the one Lookup returns.
  void Record(absl::string_view path, int line, int column);

  // Position of `path`, or of its nearest recorded ancestor path
  // ("tasks[1].run.command[0]" falls back to "tasks[1].run", "tasks[1]").
  // Returns false if none is recorded.
  bool Lookup(absl::string_view path, int* line, int* column) const;

  // Recorded positions (a path recorded twice counts twice).
  size_t size() const { return marks_.size(); }
  // Whether the lookup table is built (for tests of the laziness).
  bool indexed() const;

 private:
  struct Mark {
    size_t offset;  // of the path in paths_
    uint32_t size;
    int line;
    int column;
  };
  std::string file_;
  // Deferred(): built under index_mu_ on the first Lookup, then answers.
  mutable std::function<std::shared_ptr<const SourceMap>()> build_
      ABSL_GUARDED_BY(index_mu_);
  mutable std::shared_ptr<const SourceMap> built_ ABSL_GUARDED_BY(index_mu_);
  std::string paths_;  // every recorded path, back to back
  std::vector<Mark> marks_;
  // Built from marks_ on the first Lookup; keys point into paths_ (Record
  // after a Lookup drops it: paths_ may move).
  mutable Mutex index_mu_;
  mutable bool indexed_ ABSL_GUARDED_BY(index_mu_) = false;
  mutable absl::flat_hash_map<absl::string_view, std::pair<int, int>> index_
      ABSL_GUARDED_BY(index_mu_);
};

// A diagnostic at `path`, positioned through `map` when it is non-null.
Diagnostic MakeDiagnostic(const SourceMap* map, std::string path,
                          std::string message);

// Field path helpers: Index("tasks", 2) == "tasks[2]",
// Field("tasks[2]", "needs") == "tasks[2].needs".
std::string Index(absl::string_view path, size_t i);
std::string Field(absl::string_view path, absl::string_view name);

}  // namespace kiln::pipeline

#endif  // KILN_ENGINE_PIPELINE_DIAGNOSTIC_H_
