#include "executors/local_sandbox/line_splitter.h"

#include <utility>

namespace kiln {
namespace sandbox {

LineSplitter::LineSplitter(size_t max_line_bytes, LineCallback on_line)
    : max_line_bytes_(max_line_bytes), on_line_(std::move(on_line)) {}

void LineSplitter::Feed(absl::string_view bytes) {
  while (!bytes.empty()) {
    size_t newline = bytes.find('\n');
    absl::string_view piece =
        newline == absl::string_view::npos ? bytes : bytes.substr(0, newline);
    // Emit full-size chunks of an over-long line as they complete.
    while (partial_.size() + piece.size() >= max_line_bytes_ &&
           !(partial_.size() + piece.size() == max_line_bytes_ &&
             newline != absl::string_view::npos)) {
      size_t take = max_line_bytes_ - partial_.size();
      partial_.append(piece.data(), take);
      on_line_(partial_);
      partial_.clear();
      piece.remove_prefix(take);
    }
    if (newline == absl::string_view::npos) {
      partial_.append(piece.data(), piece.size());
      return;
    }
    partial_.append(piece.data(), piece.size());
    on_line_(partial_);
    partial_.clear();
    bytes.remove_prefix(newline + 1);
  }
}

void LineSplitter::Finish() {
  if (partial_.empty()) return;
  on_line_(partial_);
  partial_.clear();
}

}  // namespace sandbox
}  // namespace kiln
