#include "base/sha256.h"

#include <cstring>

// SHA256_Init/Update/Final rather than EVP: OpenSSL 3 deprecates them, but
// EVP's first use sets up the library context, reads openssl.cnf and loads
// the default provider (1-2 ms per process), and both reach the same block
// functions.
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/sha.h>

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#define KILN_SHA256_NI 1
#endif

namespace kiln {
namespace {

static_assert(sizeof(SHA256_CTX) <= 112 && alignof(SHA256_CTX) <= 16,
              "Sha256::ctx_ must hold a SHA256_CTX");

// The SHA-NI path's state, in ctx_.
struct State {
  uint32_t h[8];      // a..h
  uint64_t bytes;     // hashed so far
  uint8_t block[64];  // the partial block: bytes % 64 of them
};
static_assert(sizeof(State) <= 112, "Sha256::ctx_ must hold a State");

constexpr uint32_t kInit[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                               0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};

#if defined(KILN_SHA256_NI)

alignas(16) constexpr uint32_t kRound[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1,
    0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3,
    0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
    0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147,
    0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
    0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
    0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
    0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
    0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

bool CpuHasShaNi() {
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return false;
  const bool ssse3 = c & (1u << 9), sse41 = c & (1u << 19);
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
  const bool sha = b & (1u << 29);
  return ssse3 && sse41 && sha;
}

// Compresses `blocks` 64-byte blocks into h[0..7] (a..h).
__attribute__((target("sha,sse4.1"))) void CompressShaNi(uint32_t h[8],
                                                         const uint8_t* data,
                                                         size_t blocks) {
  // SHA256RNDS2 works on the state as two registers, {A,B,E,F} and
  // {C,D,G,H}, A and C in the highest lane.
  const __m128i byte_swap =
      _mm_set_epi64x(0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL);
  __m128i abcd = _mm_loadu_si128(reinterpret_cast<const __m128i*>(h));
  __m128i efgh = _mm_loadu_si128(reinterpret_cast<const __m128i*>(h + 4));
  abcd = _mm_shuffle_epi32(abcd, 0xB1);              // b a d c
  efgh = _mm_shuffle_epi32(efgh, 0x1B);              // h g f e
  __m128i abef = _mm_alignr_epi8(abcd, efgh, 8);     // f e b a
  __m128i cdgh = _mm_blend_epi16(efgh, abcd, 0xF0);  // h g d c

  for (; blocks > 0; --blocks, data += 64) {
    const __m128i abef_in = abef, cdgh_in = cdgh;
    __m128i w[4];  // the schedule's last 16 words, four to a register
    for (int i = 0; i < 4; ++i) {
      w[i] = _mm_shuffle_epi8(
          _mm_loadu_si128(reinterpret_cast<const __m128i*>(data + 16 * i)),
          byte_swap);
    }
#pragma GCC unroll 16
    for (int g = 0; g < 16; ++g) {  // four rounds each
      __m128i& now = w[g & 3];
      if (g >= 4) {
        // W[t] = s1(W[t-2]) + W[t-7] + s0(W[t-15]) + W[t-16] for four t:
        // now holds W[t-16..]; MSG1 adds s0 of the next register's words.
        const __m128i& prev1 = w[(g + 3) & 3];  // W[t-4..t-1]
        const __m128i& prev2 = w[(g + 2) & 3];  // W[t-8..t-5]
        now = _mm_sha256msg1_epu32(now, w[(g + 1) & 3]);
        now = _mm_add_epi32(now, _mm_alignr_epi8(prev1, prev2, 4));
        now = _mm_sha256msg2_epu32(now, prev1);
      }
      __m128i wk = _mm_add_epi32(
          now,
          _mm_load_si128(reinterpret_cast<const __m128i*>(kRound + 4 * g)));
      cdgh = _mm_sha256rnds2_epu32(cdgh, abef, wk);
      wk = _mm_shuffle_epi32(wk, 0x0E);
      abef = _mm_sha256rnds2_epu32(abef, cdgh, wk);
    }
    abef = _mm_add_epi32(abef, abef_in);
    cdgh = _mm_add_epi32(cdgh, cdgh_in);
  }

  __m128i feba = _mm_shuffle_epi32(abef, 0x1B);  // a b e f
  __m128i dchg = _mm_shuffle_epi32(cdgh, 0xB1);  // g h c d
  _mm_storeu_si128(reinterpret_cast<__m128i*>(h),
                   _mm_blend_epi16(feba, dchg, 0xF0));  // a b c d
  _mm_storeu_si128(reinterpret_cast<__m128i*>(h + 4),
                   _mm_alignr_epi8(dchg, feba, 8));  // e f g h
}

#else

bool CpuHasShaNi() { return false; }
void CompressShaNi(uint32_t*, const uint8_t*, size_t) {}

#endif

State* AsState(unsigned char* ctx) { return reinterpret_cast<State*>(ctx); }
SHA256_CTX* AsOpenSsl(unsigned char* ctx) {
  return reinterpret_cast<SHA256_CTX*>(ctx);
}

}  // namespace

bool Sha256::Accelerated() {
  // Decided once (a function-local static, so also for hashers made by
  // other files' static initializers): every hasher of the process takes
  // the same path, and a Sha256's storage is always what Reset() set up.
  static const bool sha_ni = CpuHasShaNi();
  return sha_ni;
}

void Sha256::Reset() {
  if (!Accelerated()) {
    SHA256_Init(AsOpenSsl(ctx_));
    return;
  }
  State* s = AsState(ctx_);
  std::memcpy(s->h, kInit, sizeof(kInit));
  s->bytes = 0;
}

void Sha256::Update(const void* data, size_t size) {
  if (!Accelerated()) {
    SHA256_Update(AsOpenSsl(ctx_), data, size);
    return;
  }
  State* s = AsState(ctx_);
  const uint8_t* p = static_cast<const uint8_t*>(data);
  size_t have = s->bytes % 64;
  s->bytes += size;
  if (have > 0) {  // fill the partial block first
    const size_t take = size < 64 - have ? size : 64 - have;
    std::memcpy(s->block + have, p, take);
    p += take;
    size -= take;
    if (have + take < 64) return;
    CompressShaNi(s->h, s->block, 1);
  }
  if (size >= 64) {
    CompressShaNi(s->h, p, size / 64);
    p += size / 64 * 64;
    size %= 64;
  }
  if (size > 0) std::memcpy(s->block, p, size);
}

void Sha256::Final(uint8_t out[kBytes]) {
  if (!Accelerated()) {
    SHA256_Final(out, AsOpenSsl(ctx_));
    SHA256_Init(AsOpenSsl(ctx_));
    return;
  }
  State* s = AsState(ctx_);
  const uint64_t bits = s->bytes * 8;
  size_t have = s->bytes % 64;
  s->block[have++] = 0x80;
  if (have > 56) {
    std::memset(s->block + have, 0, 64 - have);
    CompressShaNi(s->h, s->block, 1);
    have = 0;
  }
  std::memset(s->block + have, 0, 56 - have);
  for (int i = 0; i < 8; ++i) {
    s->block[56 + i] = static_cast<uint8_t>(bits >> (56 - 8 * i));
  }
  CompressShaNi(s->h, s->block, 1);
  for (int i = 0; i < 8; ++i) {
    out[4 * i] = static_cast<uint8_t>(s->h[i] >> 24);
    out[4 * i + 1] = static_cast<uint8_t>(s->h[i] >> 16);
    out[4 * i + 2] = static_cast<uint8_t>(s->h[i] >> 8);
    out[4 * i + 3] = static_cast<uint8_t>(s->h[i]);
  }
  Reset();
}

namespace {

std::string HexOfDigest(const uint8_t (&digest)[Sha256::kBytes]) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(2 * Sha256::kBytes);
  for (uint8_t b : digest) {
    hex.push_back(kHex[b >> 4]);
    hex.push_back(kHex[b & 15]);
  }
  return hex;
}

}  // namespace

std::string HexHmacSha256(std::string_view key, std::string_view data) {
  constexpr size_t kBlock = 64;
  uint8_t k[kBlock] = {};
  Sha256 h;
  if (key.size() > kBlock) {
    h.Update(key.data(), key.size());
    h.Final(k);
  } else {
    memcpy(k, key.data(), key.size());
  }
  uint8_t pad[kBlock];
  uint8_t inner[Sha256::kBytes];
  for (size_t i = 0; i < kBlock; ++i) pad[i] = k[i] ^ 0x36;
  h.Update(pad, kBlock);
  h.Update(data.data(), data.size());
  h.Final(inner);
  for (size_t i = 0; i < kBlock; ++i) pad[i] = k[i] ^ 0x5c;
  uint8_t out[Sha256::kBytes];
  h.Update(pad, kBlock);
  h.Update(inner, sizeof(inner));
  h.Final(out);
  return HexOfDigest(out);
}

std::string HexSha256(std::string_view data) {
  Sha256 h;
  h.Update(data.data(), data.size());
  uint8_t out[Sha256::kBytes];
  h.Final(out);
  return HexOfDigest(out);
}

}  // namespace kiln
