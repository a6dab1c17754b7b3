#include "engine/archive/zstd_stream.h"

#include "absl/strings/str_cat.h"

namespace kiln::archive {
namespace {

absl::Status ZstdError(absl::string_view what, size_t code) {
  return absl::DataLossError(absl::StrCat(what, ": ", ZSTD_getErrorName(code)));
}

}  // namespace

ZstdCompressor::ZstdCompressor(Sink sink, int workers)
    : sink_(std::move(sink)), cctx_(ZSTD_createCCtx()) {
  ZSTD_CCtx_setParameter(cctx_, ZSTD_c_compressionLevel, kLevel);
  ZSTD_CCtx_setParameter(cctx_, ZSTD_c_checksumFlag, 0);
  ZSTD_CCtx_setParameter(cctx_, ZSTD_c_nbWorkers, workers);
  if (workers > 0) ZSTD_CCtx_setParameter(cctx_, ZSTD_c_jobSize, kJobSize);
  out_.resize(ZSTD_CStreamOutSize() * 4);
}

ZstdCompressor::~ZstdCompressor() { ZSTD_freeCCtx(cctx_); }

absl::Status ZstdCompressor::Drive(absl::string_view data,
                                   ZSTD_EndDirective mode) {
  ZSTD_inBuffer in{data.data(), data.size(), 0};
  while (true) {
    ZSTD_outBuffer out{out_.data(), out_.size(), 0};
    size_t remaining = ZSTD_compressStream2(cctx_, &out, &in, mode);
    if (ZSTD_isError(remaining)) {
      return absl::InternalError(
          absl::StrCat("zstd compress: ", ZSTD_getErrorName(remaining)));
    }
    if (out.pos > 0) {
      absl::Status st = sink_(absl::string_view(out_.data(), out.pos));
      if (!st.ok()) return st;
    }
    bool done = mode == ZSTD_e_end ? remaining == 0 : in.pos == in.size;
    if (done) return absl::OkStatus();
  }
}

absl::Status ZstdCompressor::Write(absl::string_view data) {
  return Drive(data, ZSTD_e_continue);
}

absl::Status ZstdCompressor::Finish() { return Drive("", ZSTD_e_end); }

ZstdDecompressSource::ZstdDecompressSource(ByteSource* compressed,
                                           int64_t max_output,
                                           int64_t max_ratio,
                                           int64_t ratio_grace)
    : in_(compressed),
      max_output_(max_output),
      max_ratio_(max_ratio),
      ratio_grace_(ratio_grace),
      dctx_(ZSTD_createDCtx()) {
  ZSTD_DCtx_setParameter(dctx_, ZSTD_d_windowLogMax, 27);
  out_.resize(ZSTD_DStreamOutSize() * 8);
}

ZstdDecompressSource::~ZstdDecompressSource() { ZSTD_freeDCtx(dctx_); }

absl::StatusOr<absl::string_view> ZstdDecompressSource::Next() {
  while (true) {
    if (input_.pos == input_.size && !output_pending_) {
      if (in_eof_) {
        if (!saw_input_) return absl::DataLossError("empty archive stream");
        if (last_hint_ != 0)
          return absl::DataLossError("truncated zstd stream");
        return absl::string_view();
      }
      absl::StatusOr<absl::string_view> chunk = in_->Next();
      if (!chunk.ok()) return chunk.status();
      if (chunk->empty()) {
        in_eof_ = true;
        continue;
      }
      saw_input_ = true;
      input_ = ZSTD_inBuffer{chunk->data(), chunk->size(), 0};
    }
    ZSTD_outBuffer out{out_.data(), out_.size(), 0};
    size_t before = input_.pos;
    size_t hint = ZSTD_decompressStream(dctx_, &out, &input_);
    if (ZSTD_isError(hint)) return ZstdError("corrupt zstd stream", hint);
    consumed_ += static_cast<int64_t>(input_.pos - before);
    last_hint_ = hint;
    // A full output buffer may mean the decoder holds more for us.
    output_pending_ = out.pos == out.size;
    if (out.pos > 0) {
      produced_ += static_cast<int64_t>(out.pos);
      if (produced_ > max_output_) {
        return absl::ResourceExhaustedError(absl::StrCat(
            "archive expands beyond ", max_output_,
            " bytes (the limit on its decompressed size); refused as a "
            "decompression bomb after reading ",
            consumed_, " compressed bytes"));
      }
      if (max_ratio_ > 0 && produced_ > ratio_grace_ &&
          produced_ / max_ratio_ > consumed_) {
        return absl::ResourceExhaustedError(absl::StrCat(
            "archive expands more than ", max_ratio_,
            " times its compressed size (", produced_, " bytes from ",
            consumed_, "); refused as a decompression bomb"));
      }
      return absl::string_view(out_.data(), out.pos);
    }
  }
}

}  // namespace kiln::archive
