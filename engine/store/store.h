// store::Store — one kiln store directory and everything in it, each part
// opened once. The engine, the GC and the CLI's offline verbs go through a
// Store instead of opening the parts by path.
//
// Layout under dir():
//   cas/               content-addressed blobs (cas::ContentStore)
//   artifacts/         artifact index: tree digest -> archive blob
//   statcache/         stat cache of stashed directories
//   runs.db            the run store (RunStore); params.key seals the
//                      secret params it records
//   action_cache.db    the action cache (ActionCache)
//   logs/<run>/...     attempt log files (AttemptLogFile)
//   leases/            run ownership locks (RunLease)
//   secret.key         HMAC key for secrets in cache keys (HmacKey)
//   sources/           sources of submitted runs, unpacked (SourcesDir)
//   work/<run>/        task workspaces
//   images/            image manifests/configs and the unpacked layer
//                      cache (image::ImageStore, opened by the engine)
//
// Thread-safety: as thread-safe as its parts (all of them are).
#ifndef KILN_ENGINE_STORE_STORE_H_
#define KILN_ENGINE_STORE_STORE_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "engine/cas/artifact_store.h"
#include "engine/cas/content_store.h"
#include "engine/store/action_cache.h"
#include "engine/store/run_store.h"

namespace kiln::store {

class Store {
 public:
  // Opens (creating if needed) the store at `dir`, made absolute and
  // normalized.
  static absl::StatusOr<std::unique_ptr<Store>> Open(const std::string& dir);

  // Whether `dir` holds a run store (runs.db). Creates nothing.
  static bool HasRunStore(const std::string& dir);

  // The absolute store directory, without a trailing slash.
  const std::string& dir() const { return dir_; }
  RunStore& runs() const { return *runs_; }
  ActionCache& cache() const { return *cache_; }
  cas::ArtifactStore& artifacts() const { return *artifacts_; }
  // The blob store the artifact store writes to.
  const cas::ContentStore& blobs() const { return artifacts_->blobs(); }

  // The store's HMAC key for secrets in cache keys: 32 random bytes,
  // created once (owner-only) and shared by every process on the store. A
  // damaged key is replaced with a warning (key_file.h).
  absl::StatusOr<std::string> HmacKey() const;
  // Where the sources of submitted runs are unpacked (not created here).
  std::string SourcesDir() const { return dir_ + "/sources"; }
  // Where attempt `attempt` of `task` in `run_id` logs (log_file.h).
  std::string AttemptLogPath(const std::string& run_id, const std::string& task,
                             uint32_t attempt) const;
  // Removes what engine processes that died left in the scratch
  // directories: half-extracted artifacts and inputs being merged
  // (cas::TempName entries in work/, work/<run>/ and sources/). Entries of
  // live processes are kept. Best effort.
  void SweepDeadTemps() const;

 private:
  Store(std::string dir, std::unique_ptr<RunStore> runs,
        std::unique_ptr<ActionCache> cache,
        std::unique_ptr<cas::ArtifactStore> artifacts);

  const std::string dir_;
  std::unique_ptr<RunStore> runs_;
  std::unique_ptr<ActionCache> cache_;
  std::unique_ptr<cas::ArtifactStore> artifacts_;
};

}  // namespace kiln::store

#endif  // KILN_ENGINE_STORE_STORE_H_
