#include "base/heap_warmer.h"

#include <malloc.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace kiln {
namespace {

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool kSanitized = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
constexpr bool kSanitized = true;
#else
constexpr bool kSanitized = false;
#endif
#else
constexpr bool kSanitized = false;
#endif

constexpr size_t kBlock = 8 << 20;

// How many of the whole pages inside [p, p + n) are resident.
size_t ResidentPages(const void* p, size_t n) {
  const uintptr_t page = 4096;
  uintptr_t from = (reinterpret_cast<uintptr_t>(p) + page - 1) & ~(page - 1);
  uintptr_t to = (reinterpret_cast<uintptr_t>(p) + n) & ~(page - 1);
  std::vector<unsigned char> vec((to - from) / page);
  if (mincore(reinterpret_cast<void*>(from), to - from, vec.data()) != 0) {
    return 0;
  }
  size_t resident = 0;
  for (unsigned char v : vec) resident += v & 1;
  return resident;
}

class HeapWarmerTest : public testing::Test {
 protected:
  void SetUp() override {
    // As kiln's main sets them: blocks this large come from the heap.
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    mallopt(M_TOP_PAD, 1 << 20);
  }
};

TEST_F(HeapWarmerTest, FreshHeapPagesBecomeResidentWithoutBeingTouched) {
  if (kSanitized) {
    HeapWarmer warmer;
    EXPECT_FALSE(warmer.active()) << "a sanitizer's heap is not the break's";
    return;
  }
  // Without the warmer, a fresh block is not resident: malloc writes only
  // its header (the check below would pass for nothing otherwise).
  void* before = std::malloc(kBlock);
  ASSERT_NE(before, nullptr);
  EXPECT_LT(ResidentPages(before, kBlock), kBlock / 4096 / 2);

  HeapWarmer warmer;
  ASSERT_TRUE(warmer.active()) << "Linux >= 5.14 has MADV_POPULATE_WRITE";
  void* after = std::malloc(kBlock);
  ASSERT_NE(after, nullptr);
  const size_t pages = kBlock / 4096 - 1;
  absl::Time deadline = absl::Now() + absl::Seconds(20);
  while ((ResidentPages(before, kBlock) < pages ||
          ResidentPages(after, kBlock) < pages) &&
         absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(1));
  }
  EXPECT_GE(ResidentPages(before, kBlock), pages);
  EXPECT_GE(ResidentPages(after, kBlock), pages);
  EXPECT_GE(warmer.populated_bytes(), 2 * kBlock - 2 * 4096);
  std::free(after);
  std::free(before);
}

TEST_F(HeapWarmerTest, AStoppedWarmerLeavesNewPagesAlone) {
  HeapWarmer warmer;
  if (!warmer.active()) {
    EXPECT_TRUE(kSanitized);
    return;
  }
  warmer.Stop();
  warmer.Stop();  // idempotent
  const uint64_t before = warmer.populated_bytes();
  void* block = std::malloc(kBlock);
  ASSERT_NE(block, nullptr);
  absl::SleepFor(absl::Milliseconds(50));
  EXPECT_EQ(warmer.populated_bytes(), before);
  std::free(block);
}

TEST_F(HeapWarmerTest, ContentIsKeptAndStopIsPrompt) {
  std::vector<char*> blocks;
  std::optional<HeapWarmer> warmer;
  warmer.emplace();
  for (int i = 0; i < 16; ++i) {
    char* b = static_cast<char*>(std::malloc(1 << 20));
    ASSERT_NE(b, nullptr);
    std::memset(b, 'a' + i, 1 << 20);
    blocks.push_back(b);
  }
  absl::SleepFor(absl::Milliseconds(20));
  for (int i = 0; i < 16; ++i) {
    for (size_t j = 0; j < (1 << 20); j += 4093) {
      ASSERT_EQ(blocks[i][j], 'a' + i) << i << " " << j;
    }
    std::free(blocks[i]);
  }
  absl::Time start = absl::Now();
  warmer.reset();
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
}

}  // namespace
}  // namespace kiln
