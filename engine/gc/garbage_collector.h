// Garbage collection of the content store with retention.
//
// Unpacked sources of submitted runs (<store>/sources/*) are deleted when no
// retained or unfinished run uses them.
//
// Roots (never deleted): the outputs of every run that is unfinished or was
// created within the retention window, the outputs and logs of every
// action-cache entry created within it, and every blob younger than the
// grace period (a concurrent writer may not have recorded it yet), and the
// manifests artifacts of the newest keep_deployments deployment records of
// each environment (and namespace), whatever their age, so that
// `kiln env rollback` can re-apply them. An
// artifact root keeps its archive blob. Everything else is deleted; expired
// action-cache entries are removed with it, except those an unfinished run
// wrote or read (its cache hits): a live run pins its entries and their
// blobs whatever --keep-days says.
//
// When the store is still larger than max_bytes, the window shrinks (halving,
// down to zero days) and collection repeats; roots of unfinished runs and
// fresh blobs are never given up, so the result may stay above max_bytes
// (the report says so).
#ifndef KILN_ENGINE_GC_GARBAGE_COLLECTOR_H_
#define KILN_ENGINE_GC_GARBAGE_COLLECTOR_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "engine/store/store.h"

namespace kiln::gc {

struct GcOptions {
  absl::Duration keep = absl::Hours(24 * 14);
  int64_t max_bytes = 0;  // 0: no size target
  absl::Duration grace = absl::Hours(1);
  bool dry_run = false;
  // Per (environment, namespace): the newest this many deployments keep
  // their manifests artifact (rollback targets). 0: none.
  int keep_deployments = 10;
};

struct GcReport {
  int64_t blobs_before = 0, bytes_before = 0;
  int64_t blobs_deleted = 0, bytes_deleted = 0;
  int64_t cache_entries_deleted = 0;
  int64_t sources_deleted = 0;  // unpacked sources of submitted runs
  absl::Duration keep_used;     // the window finally applied
  bool over_max = false;        // still larger than max_bytes
};

absl::StatusOr<GcReport> CollectGarbage(const store::Store& store,
                                        const GcOptions& options);
// As above, on the store at `store_dir` (opened for the call).
absl::StatusOr<GcReport> CollectGarbage(const std::string& store_dir,
                                        const GcOptions& options);

}  // namespace kiln::gc

#endif  // KILN_ENGINE_GC_GARBAGE_COLLECTOR_H_
