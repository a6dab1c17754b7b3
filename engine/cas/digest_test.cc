#include "engine/cas/digest.h"

#include <algorithm>
#include <string>

#include "gtest/gtest.h"

namespace kiln::cas {
namespace {

constexpr char kEmpty[] =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
constexpr char kAbc[] =
    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

TEST(DigestTest, KnownVectors) {
  EXPECT_EQ(Digest::Of("").Hex(), kEmpty);
  Digest abc = Digest::Of("abc");
  EXPECT_EQ(abc.Hex(), kAbc);
  EXPECT_EQ(abc.size(), 3);
  EXPECT_EQ(abc.ToString(), std::string("sha256:") + kAbc);
}

TEST(DigestTest, StreamingEqualsOneShot) {
  Sha256 h;
  h.Update("a");
  h.Update("");
  h.Update("bc");
  Digest d = h.Finish();
  EXPECT_EQ(d, Digest::Of("abc"));
  EXPECT_EQ(d.size(), 3);
  // Finish resets the hasher.
  EXPECT_EQ(h.Finish().Hex(), kEmpty);
}

// FIPS 180-4's two-block message and its million 'a's, the latter fed in
// uneven pieces that straddle the 64-byte blocks.
TEST(DigestTest, LongVectorsInPieces) {
  EXPECT_EQ(
      Digest::Of("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")
          .Hex(),
      "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  Sha256 h;
  const std::string a(1000, 'a');
  size_t left = 1000000;
  for (size_t piece = 1; left > 0; piece = piece * 7 % 997 + 1) {
    size_t n = std::min(piece, left);
    h.Update(a.data(), n);
    left -= n;
  }
  Digest d = h.Finish();
  EXPECT_EQ(d.Hex(),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  EXPECT_EQ(d.size(), 1000000);
}

TEST(DigestTest, ParseRoundTrip) {
  auto d = Digest::Parse(std::string("sha256:") + kAbc);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(*d, Digest::Of("abc"));
  EXPECT_EQ(d->size(), Digest::kUnknownSize);
  EXPECT_EQ(d->ToString(), std::string("sha256:") + kAbc);
}

TEST(DigestTest, ParseRejectsMalformed) {
  EXPECT_FALSE(Digest::Parse(kAbc).ok());  // no prefix
  EXPECT_FALSE(Digest::Parse("sha256:abc").ok());
  EXPECT_FALSE(Digest::Parse("md5:" + std::string(kAbc)).ok());
  std::string upper = std::string("sha256:") + kAbc;
  upper[10] = 'A';
  EXPECT_FALSE(Digest::Parse(upper).ok());
  std::string junk = std::string("sha256:") + kAbc;
  junk[70] = 'g';
  EXPECT_FALSE(Digest::Parse(junk).ok());
  EXPECT_FALSE(Digest::Parse(std::string("sha256:") + kAbc + "0").ok());
}

}  // namespace
}  // namespace kiln::cas
