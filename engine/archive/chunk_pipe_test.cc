#include "engine/archive/chunk_pipe.h"

#include <string>
#include <thread>

#include "gtest/gtest.h"

namespace kiln::archive {
namespace {

TEST(ChunkPipeTest, DeliversEveryByteInOrder) {
  ChunkPipe pipe(/*chunk_size=*/4096, /*depth=*/2);
  std::string sent;
  std::thread writer([&] {
    for (int i = 0; i < 3000; ++i) {
      std::string piece(static_cast<size_t>(i % 977), static_cast<char>(i));
      sent += piece;
      ASSERT_TRUE(pipe.Write(piece).ok());
    }
    pipe.Close(absl::OkStatus());
  });
  std::string got;
  while (true) {
    auto chunk = pipe.Next();
    ASSERT_TRUE(chunk.ok()) << chunk.status();
    if (chunk->empty()) break;
    EXPECT_LE(chunk->size(), 4096u);
    got.append(chunk->data(), chunk->size());
  }
  writer.join();
  EXPECT_EQ(got, sent);
}

TEST(ChunkPipeTest, WriterErrorReachesTheReaderAfterTheData) {
  ChunkPipe pipe(16, 4);
  std::thread writer([&] {
    ASSERT_TRUE(pipe.Write("0123456789abcdef").ok());
    pipe.Close(absl::FailedPreconditionError("file changed"));
  });
  auto first = pipe.Next();
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(*first, "0123456789abcdef");
  auto second = pipe.Next();
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition);
  writer.join();
}

TEST(ChunkPipeTest, AbandonedReaderUnblocksTheWriter) {
  ChunkPipe pipe(8, 1);
  absl::Status writer_status;
  std::thread writer([&] {
    std::string lots(1 << 16, 'x');
    writer_status = pipe.Write(lots);  // blocks: depth 1, nobody reads
    pipe.Close(writer_status);
  });
  ASSERT_TRUE(pipe.Next().ok());
  pipe.Abandon(absl::ResourceExhaustedError("disk full"));
  writer.join();
  EXPECT_EQ(writer_status.code(), absl::StatusCode::kResourceExhausted);
}

}  // namespace
}  // namespace kiln::archive
