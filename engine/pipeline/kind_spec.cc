#include "engine/pipeline/kind_spec.h"

#include <cstdio>
#include <cstdlib>

#include "absl/strings/str_split.h"

namespace kiln::pipeline {
namespace {

std::vector<const KindSpec*>* Kinds() {
  static auto* kinds = new std::vector<const KindSpec*>();
  return kinds;
}

}  // namespace

bool NamesRoot(const std::string& path) {
  for (absl::string_view part : absl::StrSplit(path, '/')) {
    if (!part.empty() && part != ".") return false;
  }
  return true;
}

// Registration happens at static initialisation, before any thread runs;
// lookups afterwards are read-only.
void RegisterKind(const KindSpec* kind) {
  for (const KindSpec* k : *Kinds()) {
    if (k->name() == kind->name() || k->kind_case() == kind->kind_case()) {
      std::fprintf(stderr, "kiln: task kind '%s' registered twice\n",
                   kind->name().c_str());
      std::abort();
    }
  }
  Kinds()->push_back(kind);
}

const std::vector<const KindSpec*>& RegisteredKinds() { return *Kinds(); }

const KindSpec* FindKind(v1::Task::KindCase kind_case) {
  for (const KindSpec* k : *Kinds()) {
    if (k->kind_case() == kind_case) return k;
  }
  return nullptr;
}

const KindSpec* FindKind(absl::string_view name) {
  for (const KindSpec* k : *Kinds()) {
    if (k->name() == name) return k;
  }
  return nullptr;
}

}  // namespace kiln::pipeline
