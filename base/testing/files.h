// Files for tests: a fresh scratch directory per test, and whole-file
// writes and reads. Test-only; failures surface in the assertions that
// read what was (not) written.
#ifndef KILN_BASE_TESTING_FILES_H_
#define KILN_BASE_TESTING_FILES_H_

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

namespace kiln::test_files {

// An empty directory $TEST_TMPDIR/<prefix><name>_<pid> (under /tmp outside
// Bazel), emptied first if an earlier run left it.
inline std::string TempDir(const std::string& prefix, const std::string& name) {
  const char* base = std::getenv("TEST_TMPDIR");
  std::string dir = std::string(base != nullptr ? base : "/tmp") + "/" +
                    prefix + name + "_" + std::to_string(getpid());
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

// Writes `text` to `path` (replacing it), creating missing parents.
inline void WriteFile(const std::string& path, const std::string& text) {
  std::filesystem::create_directories(
      std::filesystem::path(path).parent_path());
  std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
}

// The whole file; "" when it cannot be read.
inline std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)),
                     std::istreambuf_iterator<char>());
}

}  // namespace kiln::test_files

#endif  // KILN_BASE_TESTING_FILES_H_
