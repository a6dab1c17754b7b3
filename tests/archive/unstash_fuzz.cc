// Fuzzes safe extraction: arbitrary bytes as a tar+zstd artifact archive,
// extracted into a private temp directory with small caps, then removed.
#include <stdlib.h>
#include <sys/stat.h>

#include <cstdint>
#include <cstdio>
#include <string>

#include "engine/archive/safe_extract.h"
#include "engine/cas/file_io.h"

namespace {

const std::string& Base() {
  static const std::string* base = [] {
    const char* tmp = getenv("TEST_TMPDIR");
    std::string dir =
        std::string(tmp ? tmp : "/tmp") + "/kiln-unstash-fuzz-XXXXXX";
    if (mkdtemp(dir.data()) == nullptr) {
      std::perror("mkdtemp");
      std::abort();
    }
    return new std::string(dir);
  }();
  return *base;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  kiln::archive::ExtractOptions options;
  options.prefetch = false;
  options.limits.max_total_bytes = 1 << 20;
  options.limits.max_entries = 64;
  options.limits.max_path_length = 512;
  std::string target = Base() + "/out";
  auto result = kiln::archive::ExtractArchive(
      std::make_unique<kiln::archive::StringSource>(
          std::string(reinterpret_cast<const char*>(data), size), 4096),
      target, options);
  // Whatever happened, nothing may be left next to the target on failure.
  if (!result.ok()) {
    struct stat st;
    if (lstat(target.c_str(), &st) == 0) std::abort();
  }
  kiln::cas::RemoveTree(target).IgnoreError();
  return 0;
}
