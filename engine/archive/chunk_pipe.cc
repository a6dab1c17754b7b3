#include "engine/archive/chunk_pipe.h"

namespace kiln::archive {

absl::Status ChunkPipe::Push(std::string chunk) {
  kiln::MutexLock lock(&mu_);
  auto room = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
    return abandoned_ || ready_.size() < depth_;
  };
  mu_.Await(room);
  if (abandoned_) return abandon_status_;
  ready_.push_back(std::move(chunk));
  if (!spare_.empty()) {
    filling_ = std::move(spare_.front());
    spare_.pop_front();
    filling_.clear();
  }
  return absl::OkStatus();
}

absl::Status ChunkPipe::Write(absl::string_view data) {
  while (!data.empty()) {
    if (filling_.capacity() < chunk_size_) filling_.reserve(chunk_size_);
    size_t n = std::min(data.size(), chunk_size_ - filling_.size());
    filling_.append(data.data(), n);
    data.remove_prefix(n);
    if (filling_.size() == chunk_size_) {
      std::string full = std::move(filling_);
      filling_ = std::string();
      absl::Status st = Push(std::move(full));
      if (!st.ok()) return st;
    }
  }
  return absl::OkStatus();
}

void ChunkPipe::Close(absl::Status status) {
  if (!filling_.empty() && status.ok()) {
    absl::Status st = Push(std::move(filling_));
    if (!st.ok()) status = st;
  }
  filling_ = std::string();
  kiln::MutexLock lock(&mu_);
  closed_ = true;
  close_status_ = status;
}

absl::StatusOr<absl::string_view> ChunkPipe::Next() {
  kiln::MutexLock lock(&mu_);
  if (!current_.empty() && spare_.size() < 2)
    spare_.push_back(std::move(current_));
  current_ = std::string();
  auto available = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
    return !ready_.empty() || closed_;
  };
  mu_.Await(available);
  if (!ready_.empty()) {
    current_ = std::move(ready_.front());
    ready_.pop_front();
    return absl::string_view(current_);
  }
  if (!close_status_.ok()) return close_status_;
  return absl::string_view();
}

void ChunkPipe::Abandon(absl::Status status) {
  kiln::MutexLock lock(&mu_);
  abandoned_ = true;
  abandon_status_ = status.ok() ? absl::CancelledError("reader gone") : status;
}

}  // namespace kiln::archive
