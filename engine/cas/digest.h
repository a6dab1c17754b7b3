// A content digest: SHA-256 of some bytes plus their length.
//
// Text form: "sha256:" followed by 64 lowercase hex digits. The size is kept
// beside the hash (it is not part of the text form); a digest parsed from
// text has size kUnknownSize. Equality and ordering look at the hash only.
//
// Sha256 hashes a stream with OpenSSL's SHA-256 block functions (SHA-NI when
// the CPU has it). Not thread-safe; use one per thread.
#ifndef KILN_ENGINE_CAS_DIGEST_H_
#define KILN_ENGINE_CAS_DIGEST_H_

#include <array>
#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "base/sha256.h"

namespace kiln::cas {

class Digest {
 public:
  static constexpr int64_t kUnknownSize = -1;
  static constexpr size_t kHashBytes = 32;

  Digest() { hash_.fill(0); }
  Digest(const std::array<uint8_t, kHashBytes>& hash, int64_t size)
      : hash_(hash), size_(size) {}

  // Parses "sha256:<64 lowercase hex>". InvalidArgument otherwise.
  static absl::StatusOr<Digest> Parse(absl::string_view text);
  // Parses just the 64 hex digits.
  static absl::StatusOr<Digest> ParseHex(absl::string_view hex);
  // The digest of `bytes` (hashes them).
  static Digest Of(absl::string_view bytes);

  std::string Hex() const;       // 64 lowercase hex digits
  std::string ToString() const;  // "sha256:<hex>"
  int64_t size() const { return size_; }
  void set_size(int64_t size) { size_ = size; }
  const std::array<uint8_t, kHashBytes>& hash() const { return hash_; }

  friend bool operator==(const Digest& a, const Digest& b) {
    return a.hash_ == b.hash_;
  }
  friend bool operator!=(const Digest& a, const Digest& b) { return !(a == b); }
  friend bool operator<(const Digest& a, const Digest& b) {
    return a.hash_ < b.hash_;
  }
  template <typename H>
  friend H AbslHashValue(H h, const Digest& d) {
    return H::combine(std::move(h), d.hash_);
  }

 private:
  std::array<uint8_t, kHashBytes> hash_;
  int64_t size_ = kUnknownSize;
};

// Streaming SHA-256. Update() any number of times, then Finish() once.
class Sha256 {
 public:
  Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void Update(const void* data, size_t size) {
    hash_.Update(data, size);
    bytes_ += static_cast<int64_t>(size);
  }
  void Update(absl::string_view bytes) { Update(bytes.data(), bytes.size()); }
  // Returns the digest of everything passed to Update(); the size is the
  // number of bytes hashed. Resets the hasher for reuse.
  Digest Finish();

 private:
  kiln::Sha256 hash_;  // base/sha256.h: SHA-NI, or OpenSSL
  int64_t bytes_ = 0;
};

}  // namespace kiln::cas

#endif  // KILN_ENGINE_CAS_DIGEST_H_
