// What an artifact archive holds, read from its tar headers alone: file
// contents are skipped, nothing is written anywhere. Used to describe a
// task's outputs (`kiln artifacts`, Kiln.ListArtifacts) without extracting
// them. The stream is untrusted like any archive: it is bounded by the
// same ExtractLimits as an extraction (entries, content bytes, path length,
// zstd expansion) and a corrupt stream is DataLoss.
//
// Thread-safe (no shared state).
#ifndef KILN_ENGINE_ARCHIVE_ARCHIVE_SUMMARY_H_
#define KILN_ENGINE_ARCHIVE_ARCHIVE_SUMMARY_H_

#include <cstdint>
#include <memory>

#include "absl/status/statusor.h"
#include "engine/archive/byte_source.h"
#include "engine/archive/safe_extract.h"

namespace kiln::archive {

struct ArchiveSummary {
  int64_t files = 0;       // regular files
  int64_t file_bytes = 0;  // their content
  int64_t directories = 0;
  int64_t symlinks = 0;
};

// Counts the entries of a zstd-compressed tar stream. An entry type an
// extraction would refuse (device, FIFO, hardlink...) is InvalidArgument,
// as it is for an extraction.
absl::StatusOr<ArchiveSummary> SummarizeArchive(ByteSource* zstd_tar,
                                                const ExtractLimits& limits);

// A zstd-compressed tar stream decompressed, bounded as an extraction
// would bound it (max_total_bytes of content plus headers, the expansion
// ratio); past a bound Next() fails ResourceExhausted.
std::unique_ptr<ByteSource> DecompressArchive(
    std::unique_ptr<ByteSource> zstd_tar, const ExtractLimits& limits);

}  // namespace kiln::archive

#endif  // KILN_ENGINE_ARCHIVE_ARCHIVE_SUMMARY_H_
