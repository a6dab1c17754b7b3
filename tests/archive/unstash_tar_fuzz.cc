// Fuzzes the tar layer of safe extraction directly (no zstd in front, so
// mutations reach the tar parser and the entry checks), with small caps.
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <string>

#include "engine/archive/safe_extract.h"
#include "engine/cas/file_io.h"

namespace {

const std::string& Base() {
  static const std::string* base = [] {
    const char* tmp = getenv("TEST_TMPDIR");
    std::string dir = std::string(tmp ? tmp : "/tmp") + "/kiln-tar-fuzz-XXXXXX";
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
  std::string out = Base() + "/out";
  if (mkdir(out.c_str(), 0700) != 0) std::abort();
  int fd = open(out.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) std::abort();
  kiln::archive::ExtractLimits limits;
  limits.max_total_bytes = 1 << 20;
  limits.max_entries = 64;
  limits.max_path_length = 512;
  kiln::archive::StringSource source(
      std::string(reinterpret_cast<const char*>(data), size), 1024);
  (void)kiln::archive::ExtractTarAt(&source, fd, limits);
  close(fd);
  // Nothing may have been created next to the output directory.
  if (kiln::cas::RemoveTree(out).ok() == false) std::abort();
  return 0;
}
