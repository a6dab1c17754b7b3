// ByteSource: a pull-based stream of bytes (an archive blob, a decompressor,
// a string in a test). Not thread-safe.
#ifndef KILN_ENGINE_ARCHIVE_BYTE_SOURCE_H_
#define KILN_ENGINE_ARCHIVE_BYTE_SOURCE_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace kiln::archive {

class ByteSource {
 public:
  virtual ~ByteSource() = default;
  // The next chunk; empty at end of stream. The view stays valid until the
  // next call to Next() or the source's destruction.
  virtual absl::StatusOr<absl::string_view> Next() = 0;
};

// Serves a string in chunks of at most `chunk` bytes.
class StringSource : public ByteSource {
 public:
  explicit StringSource(std::string data, size_t chunk = 1 << 20)
      : data_(std::move(data)), chunk_(chunk) {}
  absl::StatusOr<absl::string_view> Next() override {
    absl::string_view rest = absl::string_view(data_).substr(pos_);
    rest = rest.substr(0, chunk_);
    pos_ += rest.size();
    return rest;
  }

 private:
  std::string data_;
  size_t chunk_;
  size_t pos_ = 0;
};

}  // namespace kiln::archive

#endif  // KILN_ENGINE_ARCHIVE_BYTE_SOURCE_H_
