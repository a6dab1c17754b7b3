// ActionCache: a task's cache key -> the result recorded when it last ran,
// in SQLite at <store_dir>/action_cache.db (durability as in sqlite.h).
//
// Besides the result, each entry keeps the key's components — the ordered
// (name, value digest) pairs the key was hashed from — and the pipeline and
// task it came from, so `kiln cache explain` can diff a missed key against
// the task's latest recorded one (DiffKeyComponents).
//
// Put is last-writer-wins: a key determines its result, so concurrent
// writers of one key record equivalent results; the newest entry's log and
// run references are kept.
//
// It is only a cache: a damaged action_cache.db (not a database, truncated,
// corrupt pages) never blocks a run. When opening or any operation reports
// corruption (DataLoss), the file (with its -wal and -shm) is moved aside to
// action_cache.db.damaged-<unix seconds>, a warning goes to stderr, an empty
// cache is created in its place and the operation is retried once.
//
// Several processes may open one cache at once. Thread-safety: all methods
// are thread-safe (one connection guarded by a mutex).
#ifndef KILN_ENGINE_STORE_ACTION_CACHE_H_
#define KILN_ENGINE_STORE_ACTION_CACHE_H_

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/optional.h"
#include "base/mutex.h"
#include "engine/store/sqlite.h"

namespace kiln::store {

struct KeyComponent {
  std::string name;          // e.g. "kind", "env.PATH", "input.source"
  std::string value_digest;  // digest (or short literal) of the value
  bool operator==(const KeyComponent& o) const {
    return name == o.name && value_digest == o.value_digest;
  }
};

// The archive blob of an output artifact, as the process that recorded the
// entry found it verified in its artifact store (the index entry named it
// and the blob's by-archive record named the artifact).
struct OutputArchive {
  std::string digest;  // "sha256:<hex>"
  int64_t size = 0;    // bytes
  bool operator==(const OutputArchive& o) const {
    return digest == o.digest && size == o.size;
  }
};

struct ActionResult {
  std::string key;  // filled in by Lookup / LatestForTask
  int32_t exit_code = 0;
  std::map<std::string, std::string> outputs;  // artifact -> "sha256:..."
  // artifact -> its archive, for outputs whose archive was verified when
  // the entry was recorded (schema 2; absent in older entries). Lets a hit
  // check that its outputs are present with two stats per output.
  std::map<std::string, OutputArchive> archives;
  std::map<std::string, std::string> results;  // result key -> value
  std::string log_digest;  // the log in the CAS ("sha256:..."), may be ""
  std::string log_path;    // the log file it was recorded from, may be ""
  absl::Time created = absl::InfinitePast();  // Put: InfinitePast means now
  std::string pipeline_name;
  std::string task_name;
  std::string run_id;
  std::vector<KeyComponent> components;  // in key order
};

// Entries a garbage collector must keep whatever their age: those a live
// (unfinished) run wrote (by run id) or read (by key, once the run recorded
// it), and every entry of the live run's (pipeline, task) pairs, which
// covers the hits a run has read but not recorded yet.
struct CachePins {
  std::set<std::string> keys;
  std::set<std::string> run_ids;
  std::set<std::pair<std::string, std::string>> tasks;  // (pipeline, task)
};

class ActionCache {
 public:
  // Opens or creates <store_dir>/action_cache.db (creating store_dir).
  // FailedPrecondition if a newer kiln wrote it.
  static absl::StatusOr<std::unique_ptr<ActionCache>> Open(
      const std::string& store_dir);

  // The entry for `key`, or nullopt on a miss. Components are loaded only
  // when asked (a no-op rerun looks up every task; it needs no components).
  absl::StatusOr<absl::optional<ActionResult>> Lookup(
      absl::string_view key, bool with_components = false);

  // Lookup of many keys in one read transaction (one snapshot): the result
  // for keys[i] at [i], nullopt on a miss. Without components. An invalid
  // key is InvalidArgument for the whole call.
  absl::StatusOr<std::vector<absl::optional<ActionResult>>> LookupMany(
      const std::vector<std::string>& keys);

  // The epoch (schema 4): changes whenever a recorded entry is deleted,
  // replaced or altered, by any process (a new entry leaves it), and never
  // returns to an earlier value. A
  // result read after the epoch was E is still the entry while the epoch
  // is E.
  absl::StatusOr<int64_t> Epoch();

  // Records `result` under `key`, replacing any entry (last writer wins).
  // InvalidArgument for a key that is empty, longer than 256 bytes, or not
  // printable ASCII without spaces.
  absl::Status Put(absl::string_view key, const ActionResult& result);

  // The most recently created entry of this pipeline's task, with its
  // components; nullopt if the task was never recorded.
  absl::StatusOr<absl::optional<ActionResult>> LatestForTask(
      absl::string_view pipeline_name, absl::string_view task_name);

  // Every digest (outputs and logs) referenced by entries created at or
  // after `since` or pinned by `pins`, sorted and without duplicates: what a
  // CAS garbage collector must keep for the cache.
  absl::StatusOr<std::vector<std::string>> ReferencedDigests(
      absl::Time since, const CachePins& pins = {});

  // Deletes entries created before `before`, except pinned ones; returns
  // how many.
  absl::StatusOr<int64_t> RemoveOlderThan(absl::Time before,
                                          const CachePins& pins = {});

  // How many entries RemoveOlderThan(before, pins) would remove (GC dry
  // run).
  absl::StatusOr<int64_t> CountOlderThan(absl::Time before,
                                         const CachePins& pins = {});

  // How many times this object replaced a damaged database (for tests).
  int recoveries() const;

  ~ActionCache();

 private:
  ActionCache(std::string store_dir, std::unique_ptr<Database> db);
  // Moves the damaged database aside and opens an empty one.
  absl::Status RecoverLocked(const absl::Status& cause)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Runs `op` (under mu_); on DataLoss recovers and runs it once more.
  template <typename Op>
  std::invoke_result_t<Op&> WithRecovery(Op op)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status PutLocked(absl::string_view key, const ActionResult& result,
                         absl::Time created) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<std::set<std::string>> PinnedKeysLocked(const CachePins& pins)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Keys of the entries created before `before` that `pins` does not hold.
  absl::StatusOr<std::vector<std::string>> ExpiredKeysLocked(
      absl::Time before, const CachePins& pins)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<absl::optional<ActionResult>> LoadLocked(absl::string_view key,
                                                          bool with_components)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::string store_dir_;
  mutable kiln::Mutex mu_;
  std::unique_ptr<Database> db_ ABSL_GUARDED_BY(mu_);
  int recoveries_ ABSL_GUARDED_BY(mu_) = 0;
};

// How one component differs between an old (recorded) and a new key.
struct ComponentChange {
  enum class Kind { kChanged, kAdded, kRemoved };
  Kind kind;
  std::string name;
  std::string old_digest;  // "" when added
  std::string new_digest;  // "" when removed
};

// The changes from `old_key` to `new_key`, matching components by name (in
// new_key's order, then removed ones in old_key's order). Empty: the same
// components. A name repeated within one key is matched occurrence by
// occurrence.
std::vector<ComponentChange> DiffKeyComponents(
    const std::vector<KeyComponent>& old_key,
    const std::vector<KeyComponent>& new_key);

}  // namespace kiln::store

#endif  // KILN_ENGINE_STORE_ACTION_CACHE_H_
