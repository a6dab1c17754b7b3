// SHA-256 (FIPS 180-4), for the content store, task keys and kustomize's
// name hashes.
//
// On x86-64 CPUs with the SHA extensions (SHA-NI: Intel since Ice Lake and
// Goldmont, AMD since Zen) the blocks are compressed here, with the
// SHA256RNDS2/MSG1/MSG2 instructions; elsewhere by OpenSSL's SHA256_*
// functions (its assembly for the CPU at hand). The result is the same bit
// for bit (sha256_test checks every path against OpenSSL). Why not OpenSSL
// always: it is ~60 % of the dynamic loader's work at every start of
// `kiln` (symbol bindings and relocations; bench/README.md, B8), and kiln's
// binary binds it lazily (base/lazy), so a process that only hashes — a
// render, a warm run — does not load it at all.
#ifndef KILN_BASE_SHA256_H_
#define KILN_BASE_SHA256_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace kiln {

class Sha256 {
 public:
  static constexpr size_t kBytes = 32;

  Sha256() { Reset(); }
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void Update(const void* data, size_t size);
  // Writes the digest of everything passed to Update() and resets.
  void Final(uint8_t out[kBytes]);
  void Reset();

  // True when this process compresses blocks with SHA-NI (decided once).
  static bool Accelerated();

 private:
  // SHA-NI: the eight state words, the partial block and the length;
  // otherwise OpenSSL's SHA256_CTX (sha256.cc checks that it fits).
  alignas(16) unsigned char ctx_[112];
};

// The SHA-256 of `data`, in lowercase hex.
std::string HexSha256(std::string_view data);

// HMAC-SHA256 (RFC 2104) of `data` under `key`, in lowercase hex.
std::string HexHmacSha256(std::string_view key, std::string_view data);

}  // namespace kiln

#endif  // KILN_BASE_SHA256_H_
