// "Did you mean" suggestions by edit distance.
#ifndef KILN_ENGINE_PIPELINE_SUGGEST_H_
#define KILN_ENGINE_PIPELINE_SUGGEST_H_

#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace kiln::pipeline {

// Edit distance (insert, delete, substitute, swap two adjacent; each 1).
// Inputs longer than 256 bytes are compared by their first 256 bytes.
int EditDistance(absl::string_view a, absl::string_view b);

// The candidate closest to `word` if it is close enough to be a plausible
// typo (distance <= len/3 clamped to [1, 3], never the whole
// word; words over 256 bytes get none), else "".
std::string ClosestMatch(absl::string_view word,
                         const std::vector<std::string>& candidates);

// " (did you mean 'x'?)" or "" when nothing is close.
std::string DidYouMean(absl::string_view word,
                       const std::vector<std::string>& candidates);

}  // namespace kiln::pipeline

#endif  // KILN_ENGINE_PIPELINE_SUGGEST_H_
