// StatCache: remembers each file's content digest by its stat, so that
// stashing an unchanged tree again hashes nothing.
//
// One cache file per stashed root directory, in the store:
//   <store>/statcache/<sha256 of the root's absolute path>
// keyed by the file's path relative to that root. A hit needs the same size,
// mtime and ctime (ns), inode, device and mode. An entry is trusted only if
// the file's mtime and ctime were strictly older than the clock when its
// stat was taken (the "racy" rule of git: a file modified again within the
// same timestamp tick would otherwise look unchanged). The file ends with a
// SHA-256 of its contents; a damaged or foreign cache file is ignored (it is
// only a cache). Save() replaces the file atomically and only if something
// changed; with several processes, the last writer wins.
//
// Thread-safe.
#ifndef KILN_ENGINE_CAS_STAT_CACHE_H_
#define KILN_ENGINE_CAS_STAT_CACHE_H_

#include <sys/stat.h>

#include <cstdint>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/types/optional.h"
#include "base/mutex.h"
#include "engine/cas/digest.h"

namespace kiln::cas {

// The parts of a stat that identify a version of a file.
struct FileStat {
  int64_t size = 0;
  int64_t mtime_ns = 0;
  int64_t ctime_ns = 0;
  uint64_t inode = 0;
  uint64_t device = 0;
  uint32_t mode = 0;

  static FileStat From(const struct stat& st);
  bool operator==(const FileStat& o) const {
    return size == o.size && mtime_ns == o.mtime_ns && ctime_ns == o.ctime_ns &&
           inode == o.inode && device == o.device && mode == o.mode;
  }
  bool operator!=(const FileStat& o) const { return !(*this == o); }
};

// The clock file timestamps come from (coarse realtime), in ns. Sample it
// *before* taking the stats that Record() will store.
int64_t FileClockNowNs();

class StatCache {
 public:
  // Loads the cache for `root` (absolute path). Never fails: a missing or
  // unreadable cache is empty.
  static std::unique_ptr<StatCache> Load(const std::string& store_dir,
                                         const std::string& root);

  // The recorded digest of `rel_path` if its stat is unchanged and the
  // entry is not racy.
  absl::optional<Digest> Lookup(const std::string& rel_path,
                                const FileStat& stat);
  // Records a digest; `stat_clock_ns` is FileClockNowNs() sampled before the
  // stat was taken.
  void Record(const std::string& rel_path, const FileStat& stat,
              const Digest& digest, int64_t stat_clock_ns);

  // Writes the cache if anything changed. Entries neither looked up nor
  // recorded since Load() are dropped (files that disappeared).
  absl::Status Save();

  size_t size() const;

 private:
  struct Entry {
    FileStat stat;
    Digest digest;
    int64_t recorded_ns = 0;
    bool used = false;
  };
  StatCache(std::string path, std::string root)
      : path_(std::move(path)), root_(std::move(root)) {}
  void Parse(absl::string_view data) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::string path_;
  const std::string root_;
  mutable kiln::Mutex mu_;
  absl::flat_hash_map<std::string, Entry> entries_ ABSL_GUARDED_BY(mu_);
  bool dirty_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace kiln::cas

#endif  // KILN_ENGINE_CAS_STAT_CACHE_H_
