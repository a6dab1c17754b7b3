// Secrets: named values the server holds for git fetches and webhook
// verification (`kiln serve --secrets-dir DIR`), one file per secret (the
// file's name is the secret's name, its bytes the value, one trailing
// newline dropped) — the layout of a mounted Kubernetes Secret.
//
// The directory must not be accessible by group or others; files are read
// without following links, at most 64 KiB each and 1024 of them. A value
// is never put in a Status message (only its name is).
//
// Thread-safety: immutable after Load.
#ifndef KILN_ENGINE_SOURCE_SECRETS_H_
#define KILN_ENGINE_SOURCE_SECRETS_H_

#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace kiln::source {

class Secrets {
 public:
  Secrets() = default;
  // Reads every regular file of `dir` (dot files skipped).
  static absl::StatusOr<Secrets> Load(const std::string& dir);
  // For tests and embedders.
  void Set(std::string name, std::string value) {
    values_[std::move(name)] = std::move(value);
  }

  // NotFound naming the secret (never a value) when there is none.
  absl::StatusOr<std::string> Get(absl::string_view name) const;
  bool empty() const { return values_.empty(); }

 private:
  std::map<std::string, std::string, std::less<>> values_;
};

}  // namespace kiln::source

#endif  // KILN_ENGINE_SOURCE_SECRETS_H_
