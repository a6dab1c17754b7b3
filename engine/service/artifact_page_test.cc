// PageArtifacts: ListArtifacts' paging (sizes, tokens, refusals).
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/service/kiln_service.h"
#include "gtest/gtest.h"

namespace kiln::service {
namespace {

std::vector<ArtifactInfo> Make(int n) {
  std::vector<ArtifactInfo> out;
  for (int i = 0; i < n; ++i) {
    ArtifactInfo a;
    a.task = absl::StrCat("t", i / 2);
    a.name = absl::StrCat("a", i % 2);
    out.push_back(a);
  }
  return out;
}

std::vector<std::string> Names(const std::vector<ArtifactInfo>& list) {
  std::vector<std::string> out;
  for (const ArtifactInfo& a : list) out.push_back(a.task + "/" + a.name);
  return out;
}

TEST(PageArtifactsTest, PagesCoverTheListExactlyOnce) {
  const std::vector<ArtifactInfo> all = Make(7);
  std::vector<ArtifactInfo> seen;
  std::string token;
  int pages = 0;
  do {
    absl::StatusOr<ArtifactPage> page = PageArtifacts(all, 3, token);
    ASSERT_TRUE(page.ok()) << page.status();
    ASSERT_LE(page->artifacts.size(), 3u);
    seen.insert(seen.end(), page->artifacts.begin(), page->artifacts.end());
    token = page->next_page_token;
    ASSERT_LT(++pages, 10);
  } while (!token.empty());
  EXPECT_EQ(pages, 3);
  EXPECT_EQ(Names(seen), Names(all));
}

TEST(PageArtifactsTest, DefaultSizeAndTheLastPageHasNoToken) {
  absl::StatusOr<ArtifactPage> page = PageArtifacts(Make(1500), 0, "");
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(page->artifacts.size(), 1000u);
  EXPECT_FALSE(page->next_page_token.empty());
  page = PageArtifacts(Make(4), 4, "");
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(page->artifacts.size(), 4u);
  EXPECT_TRUE(page->next_page_token.empty());
  page = PageArtifacts({}, 0, "");
  ASSERT_TRUE(page.ok());
  EXPECT_TRUE(page->artifacts.empty());
}

TEST(PageArtifactsTest, AnArtifactRecordedLaterStillComesAfterTheToken) {
  std::vector<ArtifactInfo> first = Make(4);
  absl::StatusOr<ArtifactPage> page = PageArtifacts(first, 2, "");
  ASSERT_TRUE(page.ok());
  std::vector<ArtifactInfo> grown = Make(6);  // two more recorded since
  page = PageArtifacts(grown, 2, page->next_page_token);
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(Names(page->artifacts),
            (std::vector<std::string>{"t1/a0", "t1/a1"}));
}

TEST(PageArtifactsTest, Refusals) {
  EXPECT_EQ(PageArtifacts(Make(2), -1, "").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(PageArtifacts(Make(2), 5001, "").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(PageArtifacts(Make(2), 1, "not base64 !").status().code(),
            absl::StatusCode::kInvalidArgument);
  // A well-formed token of another listing.
  absl::StatusOr<ArtifactPage> other = PageArtifacts(Make(9), 8, "");
  ASSERT_TRUE(other.ok());
  absl::Status stale =
      PageArtifacts(Make(2), 1, other->next_page_token).status();
  EXPECT_EQ(stale.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(stale.message()).find("names no artifact"),
            std::string::npos);
}

}  // namespace
}  // namespace kiln::service
