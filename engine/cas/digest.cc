#include "engine/cas/digest.h"

#include "absl/strings/str_cat.h"

namespace kiln::cas {
namespace {

constexpr absl::string_view kPrefix = "sha256:";

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;  // uppercase is rejected: the text form is canonical
}

}  // namespace

absl::StatusOr<Digest> Digest::ParseHex(absl::string_view hex) {
  if (hex.size() != 2 * kHashBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("digest must have 64 hex digits, got ", hex.size()));
  }
  std::array<uint8_t, kHashBytes> hash;
  for (size_t i = 0; i < kHashBytes; ++i) {
    int hi = HexValue(hex[2 * i]);
    int lo = HexValue(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) {
      return absl::InvalidArgumentError(
          "digest must be lowercase hex digits [0-9a-f]");
    }
    hash[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return Digest(hash, kUnknownSize);
}

absl::StatusOr<Digest> Digest::Parse(absl::string_view text) {
  if (text.substr(0, kPrefix.size()) != kPrefix) {
    return absl::InvalidArgumentError(
        absl::StrCat("digest must look like sha256:<64 hex>, got \"",
                     text.substr(0, 80), "\""));
  }
  return ParseHex(text.substr(kPrefix.size()));
}

Digest Digest::Of(absl::string_view bytes) {
  Sha256 h;
  h.Update(bytes);
  return h.Finish();
}

std::string Digest::Hex() const {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out(2 * kHashBytes, '0');
  for (size_t i = 0; i < kHashBytes; ++i) {
    out[2 * i] = kDigits[hash_[i] >> 4];
    out[2 * i + 1] = kDigits[hash_[i] & 0xf];
  }
  return out;
}

std::string Digest::ToString() const { return absl::StrCat(kPrefix, Hex()); }

Sha256::Sha256() = default;

Digest Sha256::Finish() {
  std::array<uint8_t, Digest::kHashBytes> hash;
  hash_.Final(hash.data());
  Digest d(hash, bytes_);
  bytes_ = 0;
  return d;
}

}  // namespace kiln::cas
