// Turns a byte stream into lines for an OutputSink: splits at '\n', strips
// it, splits lines longer than `max_line_bytes`, and delivers a final
// unterminated line on Finish(). Not thread-safe; one per stream.
#ifndef KILN_EXECUTORS_LOCAL_SANDBOX_LINE_SPLITTER_H_
#define KILN_EXECUTORS_LOCAL_SANDBOX_LINE_SPLITTER_H_

#include <cstddef>
#include <functional>
#include <string>

#include "absl/strings/string_view.h"

namespace kiln {
namespace sandbox {

class LineSplitter {
 public:
  using LineCallback = std::function<void(absl::string_view line)>;
  // REQUIRES: max_line_bytes > 0.
  LineSplitter(size_t max_line_bytes, LineCallback on_line);

  void Feed(absl::string_view bytes);
  // Delivers what is left (an unterminated last line), if anything.
  void Finish();

 private:
  size_t max_line_bytes_;
  LineCallback on_line_;
  std::string partial_;
};

}  // namespace sandbox
}  // namespace kiln

#endif  // KILN_EXECUTORS_LOCAL_SANDBOX_LINE_SPLITTER_H_
