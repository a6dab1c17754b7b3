// RunLease: one run, one owner. The process executing a run holds an
// exclusive open-file-description lock (F_OFD_SETLK) on
// <store_dir>/leases/<run>.lock for as long as it executes the run. The
// kernel drops the lock when the owner exits, however it exits (SIGKILL
// included), so a lock that can be taken means the run has no live owner
// and may be taken over (resumed); a lock that is held means another
// process (or another engine in this process) executes the run.
//
// The file holds the owner's pid (for messages only; the lock decides).
// The owner removes the file when the run is final.
//
// A new run is recorded before its id is known, so its creator cannot
// lease it first. The creation lock closes that window: creators hold it
// shared from recording the run until they hold its lease; takers (Resume)
// hold it exclusive while they try a lease, and probes (IsLeased) shared,
// so nobody mistakes a run being created for an abandoned one.
//
// Thread-safety: a RunLease is used by one thread at a time; the static
// functions are thread-safe.
#ifndef KILN_ENGINE_STORE_RUN_LEASE_H_
#define KILN_ENGINE_STORE_RUN_LEASE_H_

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace kiln::store {

// A held lock on a file (released by the destructor).
class FileLock {
 public:
  ~FileLock();
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;

 private:
  friend class RunLease;
  explicit FileLock(int fd) : fd_(fd) {}
  int fd_;
};

class RunLease {
 public:
  // Takes the lease on `run_id`. FailedPrecondition, naming the owner's pid,
  // if a live owner holds it; Unavailable if the lock file cannot be used.
  static absl::StatusOr<std::unique_ptr<RunLease>> Acquire(
      const std::string& store_dir, absl::string_view run_id);

  // Whether a live owner holds the lease (without taking it).
  static absl::StatusOr<bool> IsLeased(const std::string& store_dir,
                                       absl::string_view run_id);

  // The creation lock (see above): shared for creators and probes,
  // exclusive for takers. Blocks while the other kind is held (briefly).
  static absl::StatusOr<std::unique_ptr<FileLock>> LockCreation(
      const std::string& store_dir, bool exclusive);

  // Releases the lease, leaving the lock file (the run is not over).
  ~RunLease();
  // The run is final: removes the lock file, then releases.
  void ReleaseFinished();

  RunLease(const RunLease&) = delete;
  RunLease& operator=(const RunLease&) = delete;

 private:
  RunLease(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}
  std::string path_;
  int fd_;
};

// "<store_dir>/leases": created with mode 0700 by Acquire and LockCreation.
std::string LeaseDir(const std::string& store_dir);

}  // namespace kiln::store

#endif  // KILN_ENGINE_STORE_RUN_LEASE_H_
