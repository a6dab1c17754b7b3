#include "engine/cas/stat_cache.h"

#include <string.h>
#include <time.h>

#include "absl/strings/str_cat.h"
#include "engine/cas/file_io.h"

namespace kiln::cas {
namespace {

constexpr absl::string_view kMagic = "kiln.statcache.v1\n";

template <typename T>
void Put(std::string* out, T value) {
  out->append(reinterpret_cast<const char*>(&value), sizeof(value));
}

template <typename T>
bool Take(absl::string_view* in, T* value) {
  if (in->size() < sizeof(T)) return false;
  memcpy(value, in->data(), sizeof(T));
  in->remove_prefix(sizeof(T));
  return true;
}

}  // namespace

FileStat FileStat::From(const struct stat& st) {
  FileStat f;
  f.size = st.st_size;
  f.mtime_ns = int64_t{st.st_mtim.tv_sec} * 1000000000 + st.st_mtim.tv_nsec;
  f.ctime_ns = int64_t{st.st_ctim.tv_sec} * 1000000000 + st.st_ctim.tv_nsec;
  f.inode = st.st_ino;
  f.device = st.st_dev;
  f.mode = st.st_mode;
  return f;
}

int64_t FileClockNowNs() {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME_COARSE, &ts);
  return int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

std::unique_ptr<StatCache> StatCache::Load(const std::string& store_dir,
                                           const std::string& root) {
  std::string dir = absl::StrCat(store_dir, "/statcache");
  std::string path = absl::StrCat(dir, "/", Digest::Of(root).Hex());
  std::unique_ptr<StatCache> cache(new StatCache(path, root));
  absl::StatusOr<std::string> data = ReadSmallFile(path);
  kiln::MutexLock lock(&cache->mu_);
  if (data.ok()) cache->Parse(*data);
  return cache;
}

void StatCache::Parse(absl::string_view data) {
  // Layout: magic, u32 root length, root, records..., 32-byte SHA-256 of
  // everything before it.
  if (data.size() < kMagic.size() + Digest::kHashBytes) return;
  absl::string_view body = data.substr(0, data.size() - Digest::kHashBytes);
  if (memcmp(Digest::Of(body).hash().data(), data.data() + body.size(),
             Digest::kHashBytes) != 0) {
    return;
  }
  if (body.substr(0, kMagic.size()) != kMagic) return;
  body.remove_prefix(kMagic.size());
  uint32_t root_len;
  if (!Take(&body, &root_len) || body.size() < root_len ||
      body.substr(0, root_len) != root_) {
    return;
  }
  body.remove_prefix(root_len);
  absl::flat_hash_map<std::string, Entry> parsed;
  while (!body.empty()) {
    uint32_t len;
    if (!Take(&body, &len) || body.size() < len) return;
    std::string rel(body.substr(0, len));
    body.remove_prefix(len);
    Entry e;
    std::array<uint8_t, Digest::kHashBytes> hash;
    if (!Take(&body, &e.stat.size) || !Take(&body, &e.stat.mtime_ns) ||
        !Take(&body, &e.stat.ctime_ns) || !Take(&body, &e.stat.inode) ||
        !Take(&body, &e.stat.device) || !Take(&body, &e.stat.mode) ||
        !Take(&body, &hash) || !Take(&body, &e.recorded_ns)) {
      return;
    }
    e.digest = Digest(hash, e.stat.size);
    parsed[std::move(rel)] = e;
  }
  entries_ = std::move(parsed);
}

absl::optional<Digest> StatCache::Lookup(const std::string& rel_path,
                                         const FileStat& stat) {
  kiln::MutexLock lock(&mu_);
  auto it = entries_.find(rel_path);
  if (it == entries_.end()) return absl::nullopt;
  Entry& e = it->second;
  e.used = true;
  if (e.stat != stat) return absl::nullopt;
  if (e.stat.mtime_ns >= e.recorded_ns || e.stat.ctime_ns >= e.recorded_ns) {
    return absl::nullopt;  // racy: may have changed within the same tick
  }
  return e.digest;
}

void StatCache::Record(const std::string& rel_path, const FileStat& stat,
                       const Digest& digest, int64_t stat_clock_ns) {
  kiln::MutexLock lock(&mu_);
  Entry& e = entries_[rel_path];
  if (e.used && e.stat == stat && e.digest == digest &&
      e.recorded_ns == stat_clock_ns) {
    return;
  }
  e.stat = stat;
  e.digest = digest;
  e.digest.set_size(stat.size);
  e.recorded_ns = stat_clock_ns;
  e.used = true;
  dirty_ = true;
}

absl::Status StatCache::Save() {
  kiln::MutexLock lock(&mu_);
  for (auto it = entries_.begin(); it != entries_.end();) {
    if (!it->second.used) {
      entries_.erase(it++);
      dirty_ = true;
    } else {
      ++it;
    }
  }
  if (!dirty_) return absl::OkStatus();
  std::string out(kMagic);
  Put(&out, static_cast<uint32_t>(root_.size()));
  out += root_;
  for (const auto& [rel, e] : entries_) {
    Put(&out, static_cast<uint32_t>(rel.size()));
    out += rel;
    Put(&out, e.stat.size);
    Put(&out, e.stat.mtime_ns);
    Put(&out, e.stat.ctime_ns);
    Put(&out, e.stat.inode);
    Put(&out, e.stat.device);
    Put(&out, e.stat.mode);
    out.append(reinterpret_cast<const char*>(e.digest.hash().data()),
               Digest::kHashBytes);
    Put(&out, e.recorded_ns);
  }
  Digest sum = Digest::Of(out);
  out.append(reinterpret_cast<const char*>(sum.hash().data()),
             Digest::kHashBytes);
  size_t slash = path_.rfind('/');
  absl::Status st = MakeDirs(path_.substr(0, slash));
  if (!st.ok()) return st;
  st = WriteFileAtomically(path_, out);
  if (st.ok()) dirty_ = false;
  return st;
}

size_t StatCache::size() const {
  kiln::MutexLock lock(&mu_);
  return entries_.size();
}

}  // namespace kiln::cas
