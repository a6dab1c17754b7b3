// For the racy_* servers of tsan_check_test.sh: each prints "tsan=1" (or
// "tsan=0") first, so the check refuses to pass in a build without
// ThreadSanitizer.
#ifndef KILN_ENGINE_SERVICE_TESTING_TSAN_BUILD_H_
#define KILN_ENGINE_SERVICE_TESTING_TSAN_BUILD_H_

#include <cstdio>

namespace kiln::testing {

inline void PrintTsanBuild() {
  bool tsan = false;
#if defined(__SANITIZE_THREAD__)
  tsan = true;
#endif
#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
  tsan = true;
#endif
#endif
  std::printf("tsan=%d\n", tsan ? 1 : 0);
  std::fflush(stdout);
}

}  // namespace kiln::testing

#endif  // KILN_ENGINE_SERVICE_TESTING_TSAN_BUILD_H_
