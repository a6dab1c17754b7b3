#include "tests/archive/archive_builder.h"

#include <archive.h>
#include <archive_entry.h>
#include <zstd.h>

#include <cstdlib>

namespace kiln::testing {
namespace {

la_ssize_t Append(struct archive*, void* out, const void* buf, size_t n) {
  static_cast<std::string*>(out)->append(static_cast<const char*>(buf), n);
  return static_cast<la_ssize_t>(n);
}

}  // namespace

std::string BuildTar(const std::vector<RawEntry>& entries) {
  std::string out;
  struct archive* a = archive_write_new();
  archive_write_set_format_pax_restricted(a);
  archive_write_set_bytes_in_last_block(a, 1);
  archive_write_open(a, &out, nullptr, Append, nullptr);
  for (const RawEntry& e : entries) {
    struct archive_entry* entry = archive_entry_new();
    archive_entry_set_pathname(entry, e.path.c_str());
    archive_entry_set_filetype(entry, e.type);
    archive_entry_set_perm(entry, e.mode);
    if (e.type == AE_IFCHR || e.type == AE_IFBLK) {
      archive_entry_set_rdevmajor(entry, 1);
      archive_entry_set_rdevminor(entry, 3);
    }
    if (!e.symlink.empty()) archive_entry_set_symlink(entry, e.symlink.c_str());
    if (!e.hardlink.empty()) {
      archive_entry_set_hardlink(entry, e.hardlink.c_str());
    }
    long long size =
        e.size >= 0 ? e.size : static_cast<long long>(e.content.size());
    if (e.type == AE_IFREG) archive_entry_set_size(entry, size);
    if (archive_write_header(a, entry) != ARCHIVE_OK) {
      std::abort();  // a test bug, not a condition under test
    }
    if (!e.content.empty()) {
      archive_write_data(a, e.content.data(), e.content.size());
    }
    archive_entry_free(entry);
  }
  archive_write_close(a);
  archive_write_free(a);
  return out;
}

std::string Zstd(const std::string& bytes) {
  std::string out(ZSTD_compressBound(bytes.size()), '\0');
  size_t n =
      ZSTD_compress(out.data(), out.size(), bytes.data(), bytes.size(), 1);
  out.resize(n);
  return out;
}

}  // namespace kiln::testing
