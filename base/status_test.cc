#include "base/status.h"

#include <errno.h>

#include "absl/status/statusor.h"
#include "base/status_macros.h"
#include "gtest/gtest.h"

namespace kiln {
namespace {

TEST(ErrnoStatusTest, MapsErrnoToCodes) {
  struct Case {
    int err;
    absl::StatusCode code;
  } cases[] = {
      {ENOENT, absl::StatusCode::kNotFound},
      {EEXIST, absl::StatusCode::kAlreadyExists},
      {ENOTEMPTY, absl::StatusCode::kAlreadyExists},
      {ENOSPC, absl::StatusCode::kResourceExhausted},
      {EDQUOT, absl::StatusCode::kResourceExhausted},
      {EMFILE, absl::StatusCode::kResourceExhausted},
      {ENFILE, absl::StatusCode::kResourceExhausted},
      {EACCES, absl::StatusCode::kPermissionDenied},
      {EPERM, absl::StatusCode::kPermissionDenied},
      {EIO, absl::StatusCode::kInternal},
      {0, absl::StatusCode::kInternal},
  };
  for (const Case& c : cases) {
    absl::Status s = ErrnoStatus(c.err, "opening /x");
    EXPECT_EQ(s.code(), c.code) << "errno " << c.err << ": " << s;
  }
}

TEST(ErrnoStatusTest, MessageNamesTheCallAndTheError) {
  absl::Status s = ErrnoStatus(ENOENT, "opening /x");
  EXPECT_EQ(s.message(), "opening /x: No such file or directory");
}

absl::Status Fails(bool fail) {
  return fail ? absl::DataLossError("bad") : absl::OkStatus();
}

absl::StatusOr<int> Value(bool fail) {
  if (fail) return absl::AbortedError("no value");
  return 7;
}

absl::StatusOr<int> Chain(bool fail_first, bool fail_second) {
  KILN_RETURN_IF_ERROR(Fails(fail_first));
  KILN_ASSIGN_OR_RETURN(int v, Value(fail_second));
  return v + 1;
}

TEST(StatusMacrosTest, PropagateErrorsAndValues) {
  EXPECT_EQ(Chain(true, false).status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(Chain(false, true).status().code(), absl::StatusCode::kAborted);
  absl::StatusOr<int> ok = Chain(false, false);
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(*ok, 8);
}

}  // namespace
}  // namespace kiln
