#include "engine/oci/gzip.h"

#include <libdeflate.h>

#include <utility>

namespace kiln::oci {

bool GzipMember(absl::string_view in, std::string* out) {
  // One compressor per thread: libdeflate compressors are not shareable,
  // and allocating one per chunk would dominate small chunks.
  struct Holder {
    libdeflate_compressor* c =
        libdeflate_alloc_compressor(ParallelGzip::kLevel);
    ~Holder() {
      if (c != nullptr) libdeflate_free_compressor(c);
    }
  };
  thread_local Holder holder;
  if (holder.c == nullptr) return false;
  size_t bound = libdeflate_gzip_compress_bound(holder.c, in.size());
  out->resize(bound);
  size_t n = libdeflate_gzip_compress(holder.c, in.data(), in.size(),
                                      out->data(), out->size());
  if (n == 0) return false;  // cannot happen with the bound; be explicit
  out->resize(n);
  return true;
}

ParallelGzip::ParallelGzip(Sink sink, int workers)
    : sink_(std::move(sink)), workers_(workers < 0 ? 0 : workers) {
  buffer_.reserve(kChunkBytes);
  for (int i = 0; i < workers_; ++i) {
    threads_.emplace_back([this] { WorkerLoop(); });
  }
}

ParallelGzip::~ParallelGzip() {
  {
    MutexLock lock(&mu_);
    stop_ = true;
  }
  for (std::thread& t : threads_) t.join();
}

void ParallelGzip::WorkerLoop() {
  for (;;) {
    std::shared_ptr<Job> job;
    {
      MutexLock lock(&mu_);
      auto next = [this]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
        for (const auto& j : jobs_) {
          if (!j->started) return j;
        }
        return std::shared_ptr<Job>();
      };
      mu_.Await([&]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
        return stop_ || next() != nullptr;
      });
      if (stop_) return;
      job = next();
      job->started = true;
    }
    std::string out;
    bool ok = GzipMember(job->in, &out);
    MutexLock lock(&mu_);
    job->out = std::move(out);
    job->in.clear();
    job->in.shrink_to_fit();
    job->failed = !ok;
    job->done = true;
  }
}

absl::Status ParallelGzip::EmitFront() {
  std::shared_ptr<Job> job;
  {
    MutexLock lock(&mu_);
    job = jobs_.front();
    mu_.Await([&]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return job->done; });
    jobs_.pop_front();
  }
  if (job->failed) {
    return absl::ResourceExhaustedError(
        "gzip: libdeflate could not allocate a compressor");
  }
  return sink_(job->out);
}

absl::Status ParallelGzip::Submit(size_t max_pending) {
  ++submitted_;
  auto job = std::make_shared<Job>();
  job->in = std::move(buffer_);
  buffer_.clear();
  buffer_.reserve(kChunkBytes);
  if (workers_ == 0) {
    if (!GzipMember(job->in, &job->out)) {
      return absl::ResourceExhaustedError(
          "gzip: libdeflate could not allocate a compressor");
    }
    return sink_(job->out);
  }
  size_t pending;
  {
    MutexLock lock(&mu_);
    jobs_.push_back(std::move(job));
    pending = jobs_.size();
  }
  while (pending > max_pending) {
    absl::Status s = EmitFront();
    if (!s.ok()) return s;
    --pending;
  }
  return absl::OkStatus();
}

absl::Status ParallelGzip::Write(absl::string_view data) {
  if (!error_.ok()) return error_;
  if (finished_) return absl::FailedPreconditionError("gzip: write after end");
  const size_t max_pending = 2 * static_cast<size_t>(workers_);
  while (!data.empty()) {
    size_t take = std::min(kChunkBytes - buffer_.size(), data.size());
    buffer_.append(data.data(), take);
    data.remove_prefix(take);
    if (buffer_.size() == kChunkBytes) {
      absl::Status s = Submit(max_pending);
      if (!s.ok()) return error_ = s;
    }
  }
  return absl::OkStatus();
}

absl::Status ParallelGzip::Finish() {
  if (!error_.ok()) return error_;
  if (finished_) return absl::FailedPreconditionError("gzip: finished twice");
  finished_ = true;
  // The last partial chunk; an empty stream still gets one (empty) member.
  if (!buffer_.empty() || submitted_ == 0) {
    absl::Status s = Submit(0);
    if (!s.ok()) return error_ = s;
  }
  for (;;) {
    {
      MutexLock lock(&mu_);
      if (jobs_.empty()) break;
    }
    absl::Status s = EmitFront();
    if (!s.ok()) return error_ = s;
  }
  return absl::OkStatus();
}

}  // namespace kiln::oci
