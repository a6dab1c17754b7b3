// What kiln::Engine's store queries return (engine.h): a store's
// statistics and the explanation of a task's cache key. Plain data, so the
// CLI prints them without reaching the stores.
#ifndef KILN_ENGINE_ENGINE_QUERIES_H_
#define KILN_ENGINE_ENGINE_QUERIES_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "engine/cas/digest.h"
#include "engine/store/action_cache.h"
#include "kiln/v1/run.pb.h"

namespace kiln {

// What a store holds (Engine::StoreStats).
struct StoreStats {
  int64_t blobs = 0;
  int64_t blob_bytes = 0;
  // Indexed artifacts; 0 when the index cannot be listed.
  int64_t artifacts = 0;
  int64_t runs = 0;
  std::map<v1::RunState, int64_t> runs_by_state;
};

// A task's output artifact as the run recorded it and the store holds it
// (Engine::ListArtifacts).
struct ArtifactInfo {
  std::string task;
  std::string name;  // the artifact's name in the pipeline
  cas::Digest tree;  // its identity
  // False: the run recorded the artifact but the store no longer holds it
  // (collected by gc); the fields below are then unset.
  bool stored = false;
  cas::Digest archive;  // the stored archive; size() is its byte count
  int64_t files = 0;    // regular files in the tree
  int64_t file_bytes = 0;
  int64_t directories = 0;
  int64_t symlinks = 0;
};

// Why a task of a recorded run hit or missed the action cache
// (Engine::ExplainCacheKey): its key, the key's inputs as the cache recorded
// them, and against the latest earlier run of the same pipeline whose entry
// for the task is still cached, what changed.
struct CacheExplanation {
  enum class Verdict {
    // The task has no cache key in the run: it did not reach execution, its
    // kind is never memoized, or it says `cache: false`.
    kNoKey,
    // The task was CACHED: its key matched an entry.
    kHit,
    // A miss, and no earlier run of the pipeline has a cached entry for it.
    kNoEarlierRun,
    // A miss whose key's inputs were not recorded (the task did not
    // succeed); `previous_*` name the earlier entry.
    kNotRecorded,
    // A miss although the key equals the earlier run's (that entry was
    // missing or unusable when the task ran, e.g. collected outputs).
    kSameKey,
    // A miss because the key changed: `changes` (earlier -> now).
    kChanged,
  };
  Verdict verdict = Verdict::kNoKey;
  std::string run_id;
  std::string task;
  std::string pipeline_name;
  v1::TaskState state = v1::TASK_STATE_UNSPECIFIED;
  std::string key;  // "" for kNoKey
  // The run that recorded the entry `key` names now ("" if none is cached).
  std::string recorded_by_run;
  // The inputs of `key` as recorded (empty when nothing is cached for it).
  std::vector<store::KeyComponent> inputs;
  // The earlier run compared with (kNotRecorded, kSameKey, kChanged).
  std::string previous_run;
  std::string previous_key;
  std::vector<store::KeyComponent> previous_inputs;
  std::vector<store::ComponentChange> changes;  // kChanged only
  // The key came from `image: host`: it covers the command's argv[0]
  // binary and /etc/os-release, not the tools the command reaches.
  bool host_tools_untracked = false;
};

}  // namespace kiln

#endif  // KILN_ENGINE_ENGINE_QUERIES_H_
