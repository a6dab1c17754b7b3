#include "engine/archive/prefetch_source.h"

namespace kiln::archive {

PrefetchSource::PrefetchSource(std::unique_ptr<ByteSource> inner, size_t depth)
    : inner_(std::move(inner)), depth_(depth < 1 ? 1 : depth) {
  thread_ = std::thread([this] { Run(); });
}

PrefetchSource::~PrefetchSource() {
  {
    kiln::MutexLock lock(&mu_);
    stop_ = true;
  }
  thread_.join();
}

void PrefetchSource::Run() {
  while (true) {
    std::string buf;
    {
      kiln::MutexLock lock(&mu_);
      auto room = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
        return stop_ || ready_.size() < depth_;
      };
      mu_.Await(room);
      if (stop_) return;
      if (!free_.empty()) {
        buf = std::move(free_.front());
        free_.pop_front();
      }
    }
    absl::StatusOr<absl::string_view> chunk = inner_->Next();
    kiln::MutexLock lock(&mu_);
    if (!chunk.ok() || chunk->empty()) {
      final_status_ = chunk.ok() ? absl::OkStatus() : chunk.status();
      finished_ = true;
      return;
    }
    buf.assign(chunk->data(), chunk->size());
    ready_.push_back(std::move(buf));
  }
}

absl::StatusOr<absl::string_view> PrefetchSource::Next() {
  kiln::MutexLock lock(&mu_);
  if (!current_.empty()) free_.push_back(std::move(current_));
  current_.clear();
  auto available = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
    return !ready_.empty() || finished_;
  };
  mu_.Await(available);
  if (!ready_.empty()) {
    current_ = std::move(ready_.front());
    ready_.pop_front();
    return absl::string_view(current_);
  }
  if (!final_status_.ok()) return final_status_;
  return absl::string_view();
}

}  // namespace kiln::archive
