// Builds tar+zstd archives with arbitrary (also hostile) entries for tests,
// using libarchive's writer: hardlinks, devices, FIFOs, setuid bits, "..",
// absolute paths -- whatever an attacker could put in an archive.
#ifndef KILN_TESTS_ARCHIVE_ARCHIVE_BUILDER_H_
#define KILN_TESTS_ARCHIVE_ARCHIVE_BUILDER_H_

#include <sys/types.h>

#include <string>
#include <vector>

namespace kiln::testing {

struct RawEntry {
  std::string path;
  mode_t type;  // AE_IFREG, AE_IFDIR, AE_IFLNK, AE_IFCHR, AE_IFBLK, AE_IFIFO
  int mode = 0644;
  std::string content;   // regular files
  std::string symlink;   // AE_IFLNK target
  std::string hardlink;  // non-empty: a hardlink entry to this path
  long long size = -1;   // header size; -1 means content.size()
};

// An uncompressed pax tar stream of `entries`, in order.
std::string BuildTar(const std::vector<RawEntry>& entries);
// zstd-compressed (the artifact transport).
std::string Zstd(const std::string& bytes);

}  // namespace kiln::testing

#endif  // KILN_TESTS_ARCHIVE_ARCHIVE_BUILDER_H_
