#include "engine/archive/hash_worker.h"

#include <algorithm>
#include <utility>

namespace kiln::archive {

HashWorker::HashWorker(size_t batch_bytes, size_t max_pending_bytes)
    : batch_bytes_(std::max<size_t>(batch_bytes, 4096)),
      max_batches_(std::max<size_t>(1, max_pending_bytes / batch_bytes_)) {
  filling_.bytes.reserve(batch_bytes_);
  thread_ = std::thread([this] { Run(); });
}

HashWorker::~HashWorker() {
  {
    kiln::MutexLock lock(&mu_);
    stop_ = true;
    closing_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

void HashWorker::Begin() {
  End();  // a file left open ends here
  file_open_ = true;
}

void HashWorker::Update(absl::string_view data) {
  while (!data.empty()) {
    size_t room = batch_bytes_ - filling_.bytes.size();
    if (room == 0) {
      Flush();
      continue;
    }
    size_t n = std::min(room, data.size());
    filling_.segments.push_back(Segment{filling_.bytes.size(), n, false});
    filling_.bytes.append(data.data(), n);
    data.remove_prefix(n);
  }
}

void HashWorker::End() {
  if (!file_open_) return;
  // An empty segment ends the file (also an empty one, or one whose last
  // byte went out in an earlier batch).
  filling_.segments.push_back(Segment{filling_.bytes.size(), 0, true});
  file_open_ = false;
  // Many small files share a batch; the segment list is bounded too.
  if (filling_.segments.size() >= 4096) Flush();
}

void HashWorker::Flush() {
  if (filling_.segments.empty()) return;
  Batch next;
  kiln::MutexLock lock(&mu_);
  auto room = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
    return stop_ || ready_.size() < max_batches_;
  };
  mu_.Await(room);
  if (!spare_.empty()) {
    next = std::move(spare_.back());
    spare_.pop_back();
  }
  ready_.push_back(std::move(filling_));
  filling_ = std::move(next);
  filling_.bytes.clear();
  filling_.segments.clear();
  if (filling_.bytes.capacity() < batch_bytes_) {
    filling_.bytes.reserve(batch_bytes_);
  }
}

std::vector<cas::Digest> HashWorker::Finish() {
  if (finished_) return {};
  finished_ = true;
  End();
  Flush();
  {
    kiln::MutexLock lock(&mu_);
    closing_ = true;
  }
  thread_.join();
  return std::move(digests_);
}

void HashWorker::Run() {
  cas::Sha256 hasher;
  while (true) {
    Batch batch;
    {
      kiln::MutexLock lock(&mu_);
      auto work = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
        return stop_ || closing_ || !ready_.empty();
      };
      mu_.Await(work);
      if (stop_ || ready_.empty()) return;
      batch = std::move(ready_.front());
      ready_.pop_front();
    }
    for (const Segment& s : batch.segments) {
      if (s.length > 0) {
        hasher.Update(
            absl::string_view(batch.bytes.data() + s.offset, s.length));
      }
      if (s.ends) digests_.push_back(hasher.Finish());
    }
    kiln::MutexLock lock(&mu_);
    if (spare_.size() < 2) spare_.push_back(std::move(batch));
  }
}

}  // namespace kiln::archive
