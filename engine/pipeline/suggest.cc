#include "engine/pipeline/suggest.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace kiln::pipeline {

int EditDistance(absl::string_view a, absl::string_view b) {
  // Optimal string alignment: Levenshtein plus adjacent transpositions.
  constexpr size_t kMax = 256;
  a = a.substr(0, kMax);
  b = b.substr(0, kMax);
  size_t w = b.size() + 1;
  std::vector<int> d((a.size() + 1) * w);
  auto at = [&](size_t i, size_t j) -> int& { return d[i * w + j]; };
  for (size_t i = 0; i <= a.size(); ++i) at(i, 0) = static_cast<int>(i);
  for (size_t j = 0; j <= b.size(); ++j) at(0, j) = static_cast<int>(j);
  for (size_t i = 1; i <= a.size(); ++i) {
    for (size_t j = 1; j <= b.size(); ++j) {
      int cost = a[i - 1] == b[j - 1] ? 0 : 1;
      at(i, j) = std::min(
          {at(i - 1, j) + 1, at(i, j - 1) + 1, at(i - 1, j - 1) + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        at(i, j) = std::min(at(i, j), at(i - 2, j - 2) + 1);
      }
    }
  }
  return at(a.size(), b.size());
}

std::string ClosestMatch(absl::string_view word,
                         const std::vector<std::string>& candidates) {
  if (word.size() > 256) return "";
  int limit = std::clamp<int>(static_cast<int>(word.size()) / 3, 1, 3);
  std::string best;
  int best_distance = limit + 1;
  for (const std::string& c : candidates) {
    int d = EditDistance(word, c);
    if (d < best_distance &&
        d < static_cast<int>(std::max(word.size(), c.size()))) {
      best = c;
      best_distance = d;
    }
  }
  return best;
}

std::string DidYouMean(absl::string_view word,
                       const std::vector<std::string>& candidates) {
  std::string best = ClosestMatch(word, candidates);
  if (best.empty()) return "";
  return absl::StrCat(" (did you mean '", best, "'?)");
}

}  // namespace kiln::pipeline
