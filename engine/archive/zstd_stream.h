// Zstandard streams with fixed parameters, so that equal input always gives
// equal output.
//
// ZstdCompressor: level and worker count are fixed by the caller. With
// workers >= 1 libzstd compresses on its own threads; the frame is cut into
// jobs of a fixed size, which makes the output independent of the number of
// workers and of how the input is split into Write() calls (tested). Output
// with workers == 0 differs from workers >= 1, so kiln always uses >= 1.
// Its libzstd context (with the worker threads it started) is kept for the
// next compressor of the same worker count, a few per count, process-wide,
// when its frame ended and took at most kKeepContextBytes of input.
//
// ZstdDecompressSource: decompresses a ByteSource, at most `max_output`
// bytes (ResourceExhausted beyond: a decompression bomb), window at most
// 128 MiB; a truncated frame or trailing garbage is DataLoss. With
// `max_ratio` > 0, output past `ratio_grace` bytes may be at most max_ratio
// times the compressed bytes consumed so far (ResourceExhausted beyond).
// Both are checked on every output buffer (at most 1 MiB), so a bomb is
// stopped while it streams, before its output is written anywhere.
// Neither is thread-safe.
#ifndef KILN_ENGINE_ARCHIVE_ZSTD_STREAM_H_
#define KILN_ENGINE_ARCHIVE_ZSTD_STREAM_H_

#include <zstd.h>

#include <functional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "engine/archive/byte_source.h"

namespace kiln::archive {

class ZstdCompressor {
 public:
  using Sink = std::function<absl::Status(absl::string_view)>;
  static constexpr int kLevel = 1;
  static constexpr int kJobSize = 4 << 20;
  static constexpr int64_t kKeepContextBytes = 2 << 20;

  ZstdCompressor(Sink sink, int workers);
  ~ZstdCompressor();
  ZstdCompressor(const ZstdCompressor&) = delete;
  ZstdCompressor& operator=(const ZstdCompressor&) = delete;

  absl::Status Write(absl::string_view data);
  // Ends the frame and flushes everything to the sink.
  absl::Status Finish();

  // Contexts kept for compressors of `workers` workers now.
  static int KeptContextsForTesting(int workers);

 private:
  absl::Status Drive(absl::string_view data, ZSTD_EndDirective mode);

  Sink sink_;
  int workers_;
  ZSTD_CCtx* cctx_;   // from a process-wide pool (zstd_stream.cc)
  bool idle_ = true;  // no frame in progress
  int64_t written_ = 0;
  std::string out_;
};

class ZstdDecompressSource : public ByteSource {
 public:
  static constexpr int64_t kDefaultRatioGrace = int64_t{64} << 20;
  ZstdDecompressSource(ByteSource* compressed, int64_t max_output,
                       int64_t max_ratio = 0,
                       int64_t ratio_grace = kDefaultRatioGrace);
  ~ZstdDecompressSource() override;
  absl::StatusOr<absl::string_view> Next() override;

 private:
  ByteSource* in_;
  int64_t max_output_;
  int64_t max_ratio_;
  int64_t ratio_grace_;
  int64_t produced_ = 0;
  int64_t consumed_ = 0;  // compressed bytes fed to the decoder
  ZSTD_DCtx* dctx_;
  ZSTD_inBuffer input_{nullptr, 0, 0};
  size_t last_hint_ = 1;  // 0 after a complete frame
  bool saw_input_ = false;
  bool in_eof_ = false;
  bool output_pending_ = false;
  std::string out_;
};

}  // namespace kiln::archive

#endif  // KILN_ENGINE_ARCHIVE_ZSTD_STREAM_H_
