#include "engine/archive/zstd_stream.h"

#include <vector>

#include "absl/strings/str_cat.h"
#include "base/mutex.h"

namespace kiln::archive {
namespace {

absl::Status ZstdError(absl::string_view what, size_t code) {
  return absl::DataLossError(absl::StrCat(what, ": ", ZSTD_getErrorName(code)));
}

// Compression contexts kept between compressors, per worker count. A
// context with workers >= 1 starts its worker threads (and allocates their
// tables) on its first frame and keeps them until it is freed: made per
// archive, that was two thread starts and exits per stashed output. A kept
// context is reset to a new session, with its parameters, before reuse; it
// serves one compressor at a time (each context keeps its own threads: a
// thread pool shared by several contexts raced inside libzstd 1.5.4).
class ContextPool {
 public:
  static constexpr int kMaxPooledWorkers = 8;
  static constexpr size_t kKeptPerWorkerCount = 4;

  static bool Pooled(int workers) {
    return workers >= 0 && workers <= kMaxPooledWorkers;
  }

  static ContextPool& Get() {
    static ContextPool* pool = new ContextPool;  // never destroyed
    return *pool;
  }

  ZSTD_CCtx* Take(int workers) {
    if (Pooled(workers)) {
      MutexLock lock(&mu_);
      std::vector<ZSTD_CCtx*>& kept = kept_[workers];
      if (!kept.empty()) {
        ZSTD_CCtx* cctx = kept.back();
        kept.pop_back();
        return cctx;
      }
    }
    ZSTD_CCtx* cctx = ZSTD_createCCtx();
    ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel,
                           ZstdCompressor::kLevel);
    ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, 0);
    ZSTD_CCtx_setParameter(cctx, ZSTD_c_nbWorkers, workers);
    if (workers > 0) {
      ZSTD_CCtx_setParameter(cctx, ZSTD_c_jobSize, ZstdCompressor::kJobSize);
    }
    return cctx;
  }

  // `cctx` came from Take(workers). `keep`: no frame is in progress (none
  // was begun, or the last one ended) and the context compressed little. A
  // context left mid-frame (an error, an abandoned archive) is freed, which
  // waits for its jobs: libzstd 1.5.4's session reset does not, and a job
  // still running then crashed the next frame's (tested). One that
  // compressed much is freed too: its buffers (job-sized, per worker) stay
  // touched, and a thread start is nothing next to that much compression.
  void Give(ZSTD_CCtx* cctx, int workers, bool keep) {
    if (!keep || !Pooled(workers) ||
        ZSTD_isError(ZSTD_CCtx_reset(cctx, ZSTD_reset_session_only))) {
      ZSTD_freeCCtx(cctx);
      return;
    }
    {
      MutexLock lock(&mu_);
      std::vector<ZSTD_CCtx*>& kept = kept_[workers];
      if (kept.size() < kKeptPerWorkerCount) {
        kept.push_back(cctx);
        return;
      }
    }
    ZSTD_freeCCtx(cctx);
  }

  int Kept(int workers) {
    if (!Pooled(workers)) return 0;
    MutexLock lock(&mu_);
    return static_cast<int>(kept_[workers].size());
  }

 private:
  Mutex mu_;
  std::vector<ZSTD_CCtx*> kept_[kMaxPooledWorkers + 1] ABSL_GUARDED_BY(mu_);
};

}  // namespace

ZstdCompressor::ZstdCompressor(Sink sink, int workers)
    : sink_(std::move(sink)),
      workers_(workers),
      cctx_(ContextPool::Get().Take(workers)) {
  out_.resize(ZSTD_CStreamOutSize() * 4);
}

ZstdCompressor::~ZstdCompressor() {
  ContextPool::Get().Give(cctx_, workers_,
                          idle_ && written_ <= kKeepContextBytes);
}

int ZstdCompressor::KeptContextsForTesting(int workers) {
  return ContextPool::Get().Kept(workers);
}

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
  idle_ = false;
  written_ += static_cast<int64_t>(data.size());
  return Drive(data, ZSTD_e_continue);
}

absl::Status ZstdCompressor::Finish() {
  idle_ = false;
  absl::Status st = Drive("", ZSTD_e_end);
  idle_ = st.ok();  // Drive returns OK at the end only once the frame ended
  return st;
}

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
