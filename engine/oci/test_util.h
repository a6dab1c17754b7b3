// Helpers for the engine/oci tests: temporary trees, running tools, and
// reading layout files.
#ifndef KILN_ENGINE_OCI_TEST_UTIL_H_
#define KILN_ENGINE_OCI_TEST_UTIL_H_

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"

namespace kiln::oci::testing {

inline std::string TempDir(const std::string& name) {
  const char* base = std::getenv("TEST_TMPDIR");
  std::string dir =
      absl::StrCat(base ? base : "/tmp", "/oci_", name, "_", getpid());
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

inline void WriteFile(const std::string& path, const std::string& text,
                      mode_t mode = 0644) {
  std::filesystem::create_directories(
      std::filesystem::path(path).parent_path());
  { std::ofstream(path, std::ios::binary | std::ios::trunc) << text; }
  chmod(path.c_str(), mode);
}

inline std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)),
                     std::istreambuf_iterator<char>());
}

// Runs `command` with /bin/sh; returns its exit status and stdout+stderr.
inline int RunCommand(const std::string& command, std::string* output) {
  std::string full = absl::StrCat(command, " 2>&1");
  FILE* p = popen(full.c_str(), "r");
  if (p == nullptr) return -1;
  char buf[4096];
  size_t n;
  output->clear();
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) output->append(buf, n);
  int status = pclose(p);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

inline int OpenDir(const std::string& path) {
  return open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

}  // namespace kiln::oci::testing

#endif  // KILN_ENGINE_OCI_TEST_UTIL_H_
