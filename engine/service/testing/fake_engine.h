// FakeEngine: a kiln::Engine for service tests that runs no commands.
//
// It keeps real stores (RunStore, ActionCache, ContentStore under
// store_dir) and "runs" a pipeline by recording, for every task in order,
// TASK_RUNNING, `log_lines` log lines in the attempt's log file, and
// TASK_SUCCEEDED — or TASK_FAILED (exit 1) for a `run` task whose command's
// first word is "false". Subscribe() replays the run store's events and
// follows new ones, so watchers see exactly what the store holds.
//
// Like the real engine, it holds a run's lease (run_lease.h) while it
// executes the run, so GetRun's owner_gone is as for a real engine.
//
// Hold() pauses every run before its next task until Release(); Shutdown()
// stops runs where they are and leaves them unfinished, so a new FakeEngine
// on the same store can ResumeUnfinished() them (restart tests).
//
// Thread-safety: as kiln::Engine (every method thread-safe).
#ifndef KILN_ENGINE_SERVICE_TESTING_FAKE_ENGINE_H_
#define KILN_ENGINE_SERVICE_TESTING_FAKE_ENGINE_H_

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <thread>

#include "base/mutex.h"
#include "engine/engine.h"
#include "engine/store/run_lease.h"

namespace kiln::service::testing {

struct FakeEngineOptions {
  std::string store_dir;
  absl::Duration step = absl::Milliseconds(5);  // between a task's events
  int log_lines = 3;
};

class FakeEngine : public Engine {
 public:
  static absl::StatusOr<std::unique_ptr<FakeEngine>> Create(
      FakeEngineOptions options);
  ~FakeEngine() override;

  void Hold();
  void Release();
  // While submits are held, Submit waits (before it records anything) until
  // they are released or the engine shuts down; submits_waiting() counts
  // the calls waiting, submit_calls() every call.
  void HoldSubmits();
  void ReleaseSubmits();
  int submits_waiting() const { return submits_waiting_.load(); }
  int submit_calls() const { return submit_calls_.load(); }
  // How many subscriptions (Subscribe calls on any of its run handles) were
  // made: a test waits for a watcher to follow live events.
  int subscribe_calls() const { return subscribe_calls_.load(); }
  void CountSubscribe() { ++subscribe_calls_; }

  absl::StatusOr<std::shared_ptr<RunHandle>> Submit(
      RunRequest request) override;
  absl::StatusOr<std::shared_ptr<RunHandle>> Resume(
      const std::string& run_id) override;
  absl::StatusOr<ResumeReport> ResumeUnfinished() override;
  absl::StatusOr<std::shared_ptr<RunHandle>> Retry(
      const std::string& run_id) override;
  absl::StatusOr<std::shared_ptr<RunHandle>> Find(
      const std::string& run_id) override;
  absl::StatusOr<v1::Run> GetRun(const std::string& run_id) override;
  absl::Status Cancel(const std::string& run_id,
                      const std::string& reason) override;
  // The fake executes no gates: FailedPrecondition.
  absl::StatusOr<v1::ApprovalStatus> DecideApproval(
      const std::string& run_id, const std::string& task, bool approve,
      const std::string& principal, const std::string& comment) override;
  void Shutdown(absl::Duration grace) override;
  // The facade's queries and transfers (engine.h) read this store.
  store::Store& store() const override { return *store_; }

 private:
  struct Runner {
    // The run's lease (run_lease.h), as the real engine holds it while it
    // executes the run; taken over by Execute.
    std::unique_ptr<store::RunLease> lease;
    std::thread thread;
    std::atomic<bool> cancel{false};
    std::string reason;  // written before `cancel` is set
  };
  FakeEngine(FakeEngineOptions options, std::unique_ptr<store::Store> store);

  // Starts executing a recorded run on its own thread, holding `lease`
  // (taken here if null; a run another owner holds is left alone).
  void StartRunner(const std::string& run_id,
                   std::unique_ptr<store::RunLease> lease = nullptr);
  void Execute(const std::string& run_id, Runner* runner);
  // Waits while held; false if the run should stop (cancel or shutdown).
  bool WaitWhileHeld(Runner* runner);

  const FakeEngineOptions options_;
  const std::unique_ptr<store::Store> store_;
  store::RunStore* const runs_;  // store_->runs()
  Mutex mu_;
  std::map<std::string, std::unique_ptr<Runner>> runners_ ABSL_GUARDED_BY(mu_);
  bool held_ ABSL_GUARDED_BY(mu_) = false;
  bool submits_held_ ABSL_GUARDED_BY(mu_) = false;
  std::atomic<int> submits_waiting_{0};
  std::atomic<int> submit_calls_{0};
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::atomic<int> subscribe_calls_{0};
};

}  // namespace kiln::service::testing

#endif  // KILN_ENGINE_SERVICE_TESTING_FAKE_ENGINE_H_
