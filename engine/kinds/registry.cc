// The one place where the built-in kinds are registered. Adding a kind:
// its proto message in the Task oneof, its file (see run.cc), one line here.
#include "engine/kinds/kinds.h"

namespace kiln::kinds {

bool Register(const Kind* kind) {
  pipeline::RegisterKind(kind);
  return true;
}

std::vector<const Kind*> All() {
  std::vector<const Kind*> out;
  for (const pipeline::KindSpec* spec : pipeline::RegisteredKinds()) {
    if (const auto* kind = dynamic_cast<const Kind*>(spec)) {
      out.push_back(kind);
    }
  }
  return out;
}

const Kind* Find(const v1::Task& task) {
  return dynamic_cast<const Kind*>(pipeline::KindOf(task));
}

namespace {

// The order is the order in which the decoder reports two kinds on a task.
[[maybe_unused]] const bool registered =
    Register(&Run()) && Register(&Stash()) && Register(&Unstash()) &&
    Register(&Containerize()) && Register(&Render()) && Register(&Deploy());

}  // namespace
}  // namespace kiln::kinds
