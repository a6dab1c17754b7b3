#include "base/sha256.h"

#include <cstdio>
#include <random>
#include <string>
#include <vector>

#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/sha.h>

#include "absl/strings/escaping.h"
#include "gtest/gtest.h"

namespace kiln {
namespace {

std::string Hex(const uint8_t* d) {
  return absl::BytesToHexString(
      std::string(reinterpret_cast<const char*>(d), Sha256::kBytes));
}

std::string Ours(const std::string& data) {
  Sha256 h;
  h.Update(data.data(), data.size());
  uint8_t out[Sha256::kBytes];
  h.Final(out);
  return Hex(out);
}

std::string OpenSsl(const std::string& data) {
  uint8_t out[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), out);
  return Hex(out);
}

TEST(Sha256Test, KnownVectors) {
  std::printf("SHA-NI: %s\n", Sha256::Accelerated() ? "yes" : "no");
  // FIPS 180-4 examples and the empty string.
  EXPECT_EQ(Ours(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(Ours("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(Ours("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(Ours(std::string(1000000, 'a')),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Sha256Test, AgreesWithOpenSslOnEveryLengthAroundTheBlockSize) {
  std::mt19937 random(7);
  std::string data(1100, '\0');
  for (char& c : data) c = static_cast<char>(random());
  // Every length up to 1,100 bytes: both padding cases (one final block or
  // two) and every position of the partial block.
  for (size_t n = 0; n <= data.size(); ++n) {
    const std::string part = data.substr(0, n);
    ASSERT_EQ(Ours(part), OpenSsl(part)) << "length " << n;
  }
}

TEST(Sha256Test, PiecesOfAnySizeGiveTheSameDigest) {
  std::mt19937 random(11);
  for (int round = 0; round < 200; ++round) {
    const size_t n = random() % (round < 100 ? 700 : (1 << 20) + 77);
    std::string data(n, '\0');
    for (char& c : data) c = static_cast<char>(random());
    Sha256 h;
    size_t at = 0;
    while (at < n) {
      // Mostly small pieces, sometimes large ones (many blocks at once).
      size_t piece = random() % 4 == 0 ? random() % 5000 : random() % 70;
      if (piece > n - at) piece = n - at;
      h.Update(data.data() + at, piece);
      at += piece;
    }
    uint8_t out[Sha256::kBytes];
    h.Final(out);
    ASSERT_EQ(Hex(out), OpenSsl(data)) << "round " << round << " size " << n;
  }
}

TEST(Sha256Test, FinalResetsForTheNextMessage) {
  Sha256 h;
  h.Update("first message", 13);
  uint8_t first[Sha256::kBytes];
  h.Final(first);
  EXPECT_EQ(Hex(first), OpenSsl("first message"));
  h.Update("abc", 3);
  uint8_t second[Sha256::kBytes];
  h.Final(second);
  EXPECT_EQ(Hex(second), OpenSsl("abc"));
  h.Update("dropped", 7);
  h.Reset();
  h.Final(second);
  EXPECT_EQ(Hex(second), OpenSsl(""));
}

}  // namespace
}  // namespace kiln

namespace kiln {
namespace {

TEST(HexSha256Test, KnownVector) {
  EXPECT_EQ(HexSha256("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

// RFC 4231 test cases 1, 2 and 6 (a key longer than the block).
TEST(HmacSha256Test, Rfc4231Vectors) {
  EXPECT_EQ(HexHmacSha256(std::string(20, '\x0b'), "Hi There"),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
  EXPECT_EQ(HexHmacSha256("Jefe", "what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  EXPECT_EQ(HexHmacSha256(std::string(131, '\xaa'),
                          "Test Using Larger Than Block-Size Key - Hash Key "
                          "First"),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
}

}  // namespace
}  // namespace kiln
