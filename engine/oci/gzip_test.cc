#include "engine/oci/gzip.h"

#include <libdeflate.h>

#include <random>
#include <string>

#include "gtest/gtest.h"

namespace kiln::oci {
namespace {

// Decompresses every member of a multi-member gzip stream.
bool Gunzip(const std::string& in, std::string* out, int* members) {
  libdeflate_decompressor* d = libdeflate_alloc_decompressor();
  size_t pos = 0;
  *members = 0;
  out->clear();
  std::string buf(ParallelGzip::kChunkBytes, '\0');
  bool ok = true;
  while (pos < in.size()) {
    size_t used = 0, produced = 0;
    if (libdeflate_gzip_decompress_ex(d, in.data() + pos, in.size() - pos,
                                      buf.data(), buf.size(), &used,
                                      &produced) != LIBDEFLATE_SUCCESS) {
      ok = false;
      break;
    }
    out->append(buf.data(), produced);
    pos += used;
    ++*members;
  }
  libdeflate_free_decompressor(d);
  return ok;
}

std::string Compress(const std::string& data, int workers, size_t piece) {
  std::string out;
  ParallelGzip gz(
      [&out](absl::string_view d) {
        out.append(d.data(), d.size());
        return absl::OkStatus();
      },
      workers);
  for (size_t i = 0; i < data.size(); i += piece) {
    EXPECT_TRUE(gz.Write(absl::string_view(data).substr(i, piece)).ok());
  }
  EXPECT_TRUE(gz.Finish().ok());
  return out;
}

std::string Sample(size_t size) {
  std::mt19937 rng(7);
  std::string s(size, '\0');
  for (size_t i = 0; i < size; ++i) {
    // Half compressible text, half noise.
    s[i] = (i / 4096) % 2 ? static_cast<char>(rng()) : "kiln layer "[i % 11];
  }
  return s;
}

TEST(ParallelGzipTest, OutputDoesNotDependOnWorkersOrWriteSizes) {
  const std::string data = Sample(5 * ParallelGzip::kChunkBytes + 12345);
  const std::string reference = Compress(data, 0, data.size());
  EXPECT_EQ(Compress(data, 1, 1000), reference);
  EXPECT_EQ(Compress(data, 3, 65536), reference);
  EXPECT_EQ(Compress(data, 8, ParallelGzip::kChunkBytes), reference);
  std::string back;
  int members = 0;
  ASSERT_TRUE(Gunzip(reference, &back, &members));
  EXPECT_EQ(back, data);
  EXPECT_EQ(members, 6);  // one per chunk
  EXPECT_LT(reference.size(), data.size());
}

TEST(ParallelGzipTest, EmptyInputIsOneValidMember) {
  std::string out = Compress("", 2, 1);
  std::string back = "x";
  int members = 0;
  ASSERT_TRUE(Gunzip(out, &back, &members));
  EXPECT_EQ(members, 1);
  EXPECT_EQ(back, "");
  // Header: magic, deflate, no flags, mtime 0 (nothing of the host).
  ASSERT_GE(out.size(), 10u);
  EXPECT_EQ(out.substr(0, 4), std::string("\x1f\x8b\x08\x00", 4));
  EXPECT_EQ(out.substr(4, 4), std::string(4, '\0'));
}

TEST(ParallelGzipTest, SinkErrorsStopTheStream) {
  int calls = 0;
  ParallelGzip gz(
      [&calls](absl::string_view) {
        ++calls;
        return absl::InternalError("disk full");
      },
      2);
  const std::string data = Sample(6 * ParallelGzip::kChunkBytes);
  absl::Status s = absl::OkStatus();
  for (size_t i = 0; i < data.size() && s.ok(); i += 100000) {
    s = gz.Write(absl::string_view(data).substr(i, 100000));
  }
  if (s.ok()) s = gz.Finish();
  EXPECT_EQ(s.code(), absl::StatusCode::kInternal);
  EXPECT_EQ(calls, 1);
  EXPECT_FALSE(gz.Finish().ok());
}

}  // namespace
}  // namespace kiln::oci
