// Archive summaries and bounded decompression (archive_summary.h).
#include "engine/archive/archive_summary.h"

#include <archive.h>
#include <archive_entry.h>

#include <cerrno>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "engine/archive/zstd_stream.h"

namespace kiln::archive {
namespace {

// The most a stream may decompress to under `limits`: content plus the
// headers and padding of max_entries entries (as ExtractArchiveAt).
int64_t MaxStream(const ExtractLimits& limits) {
  return limits.max_total_bytes + limits.max_entries * 3072 +
         (int64_t{1} << 20);
}

// Owns the compressed source its decompressor reads.
class OwningDecompressSource : public ByteSource {
 public:
  OwningDecompressSource(std::unique_ptr<ByteSource> compressed,
                         const ExtractLimits& limits)
      : compressed_(std::move(compressed)),
        zstd_(compressed_.get(), MaxStream(limits), limits.max_expansion_ratio,
              limits.expansion_grace_bytes) {}
  absl::StatusOr<absl::string_view> Next() override { return zstd_.Next(); }

 private:
  std::unique_ptr<ByteSource> compressed_;
  ZstdDecompressSource zstd_;
};

struct ReadContext {
  ByteSource* source;
  absl::Status status;  // the source's own error, if it failed
};

la_ssize_t ReadCallback(struct archive* a, void* opaque, const void** buf) {
  auto* ctx = static_cast<ReadContext*>(opaque);
  absl::StatusOr<absl::string_view> chunk = ctx->source->Next();
  if (!chunk.ok()) {
    ctx->status = chunk.status();
    archive_set_error(a, EIO, "%s",
                      std::string(chunk.status().message()).c_str());
    return -1;
  }
  *buf = chunk->data();
  return static_cast<la_ssize_t>(chunk->size());
}

// Adds one header to `out`, enforcing the limits.
absl::Status Count(struct archive_entry* entry, const ExtractLimits& limits,
                   int64_t* entries, ArchiveSummary* out) {
  const char* raw_path = archive_entry_pathname(entry);
  std::string path = raw_path != nullptr ? raw_path : "";
  if (++*entries > limits.max_entries) {
    return absl::ResourceExhaustedError(
        absl::StrCat("archive has more than ", limits.max_entries, " entries"));
  }
  if (path.size() > limits.max_path_length) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "archive entry path longer than ", limits.max_path_length));
  }
  if (archive_entry_hardlink(entry) != nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("archive entry \"", path, "\" is a hardlink"));
  }
  switch (archive_entry_filetype(entry)) {
    case AE_IFREG: {
      const int64_t size = archive_entry_size(entry);
      if (size < 0 || size > limits.max_total_bytes - out->file_bytes) {
        return absl::ResourceExhaustedError(absl::StrCat(
            "archive holds more than ", limits.max_total_bytes, " bytes"));
      }
      ++out->files;
      out->file_bytes += size;
      return absl::OkStatus();
    }
    case AE_IFDIR:
      ++out->directories;
      return absl::OkStatus();
    case AE_IFLNK:
      ++out->symlinks;
      return absl::OkStatus();
    default:
      return absl::InvalidArgumentError(absl::StrCat(
          "archive entry \"", path, "\" is not a file, directory or symlink"));
  }
}

}  // namespace

std::unique_ptr<ByteSource> DecompressArchive(
    std::unique_ptr<ByteSource> zstd_tar, const ExtractLimits& limits) {
  return std::make_unique<OwningDecompressSource>(std::move(zstd_tar), limits);
}

absl::StatusOr<ArchiveSummary> SummarizeArchive(ByteSource* zstd_tar,
                                                const ExtractLimits& limits) {
  ZstdDecompressSource tar(zstd_tar, MaxStream(limits),
                           limits.max_expansion_ratio,
                           limits.expansion_grace_bytes);
  struct archive* a = archive_read_new();
  if (a == nullptr) return absl::ResourceExhaustedError("archive_read_new");
  archive_read_support_format_tar(a);
  ReadContext ctx{&tar, absl::OkStatus()};
  absl::Status st;
  if (archive_read_open(a, &ctx, nullptr, ReadCallback, nullptr) !=
      ARCHIVE_OK) {
    const char* msg = archive_error_string(a);
    st = absl::DataLossError(
        absl::StrCat("not a tar archive: ", msg ? msg : "?"));
  }
  ArchiveSummary out;
  int64_t entries = 0;
  while (st.ok()) {
    struct archive_entry* entry = nullptr;
    int r = archive_read_next_header(a, &entry);
    if (r == ARCHIVE_EOF) break;
    if (r < ARCHIVE_WARN) {
      const char* msg = archive_error_string(a);
      st = absl::DataLossError(
          absl::StrCat("corrupt tar stream: ", msg ? msg : "?"));
      break;
    }
    st = Count(entry, limits, &entries, &out);
    if (st.ok() && archive_read_data_skip(a) < ARCHIVE_WARN) {
      const char* msg = archive_error_string(a);
      st = absl::DataLossError(
          absl::StrCat("corrupt tar stream: ", msg ? msg : "?"));
    }
  }
  if (!ctx.status.ok()) st = ctx.status;  // the precise cause
  archive_read_free(a);
  if (!st.ok()) return st;
  // Read to the end, so a blob source verifies its hash and trailing
  // garbage after the tar is noticed by the decompressor.
  while (true) {
    absl::StatusOr<absl::string_view> rest = tar.Next();
    if (!rest.ok()) return rest.status();
    if (rest->empty()) break;
  }
  return out;
}

}  // namespace kiln::archive
