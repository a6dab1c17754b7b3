// Branch globs: `*` any run of characters except '/', `**` any run including
// '/', `?` one character except '/', `[abc]`, `[a-z]`, `[!a-z]` or `[^a-z]`
// one character (never '/') in / not in the class, `\x` a literal x. The
// whole text must match. Matching is O(pattern * text), no backtracking.
#ifndef KILN_ENGINE_PIPELINE_GLOB_H_
#define KILN_ENGINE_PIPELINE_GLOB_H_

#include <string>

#include "absl/strings/string_view.h"

namespace kiln::pipeline {

// "" if `pattern` is a well-formed glob, else what is wrong with it.
std::string CheckGlob(absl::string_view pattern);

// Whether `text` matches `pattern`; a malformed pattern matches nothing.
bool GlobMatch(absl::string_view pattern, absl::string_view text);

}  // namespace kiln::pipeline

#endif  // KILN_ENGINE_PIPELINE_GLOB_H_
