// `kiln run FILE`: runs a pipeline in this process, with a live progress
// view: on the local sandbox, or as pods with `--executor kubernetes`
// (engine/cli/kube_executor.h; docs/kubernetes-executor.md, "Usage"). Exit 0:
// the run succeeded; 1: it failed (or was cancelled); 2: usage or pipeline
// errors.
#include <malloc.h>
#include <signal.h>
#include <sys/stat.h>

#include <atomic>
#include <cstdio>
#include <future>
#include <optional>
#include <set>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "base/heap_warmer.h"
#include "base/trace.h"
#include "engine/cas/store_dir.h"
#include "engine/cli/args.h"
#include "engine/cli/git_trigger.h"
#include "engine/cli/kube_executor.h"
#include "engine/cli/local_engine.h"
#include "engine/cli/pipeline_limits.h"
#include "engine/cli/progress.h"
#include "engine/cli/registry_flags.h"
#include "engine/cli/trigger_flags.h"
#include "engine/cli/verb.h"
#include "engine/oci/registry/registry.h"
#include "engine/pipeline/diagnostic.h"
#include "engine/pipeline/kind_spec.h"
#include "engine/pipeline/loader.h"

namespace kiln::cli {
namespace {

// A local run has nobody to ask for approval: every gate (Task.approval)
// must be approved up front with --approve TASK. Prints why and returns
// false otherwise (nothing has run).
bool ApproveInAdvance(const std::vector<std::string>& approve,
                      RunRequest* request) {
  std::set<std::string> wanted(approve.begin(), approve.end());
  bool ok = true;
  for (int i = 0; i < request->pipeline.tasks_size(); ++i) {
    const v1::Task& t = request->pipeline.tasks(i);
    if (!t.has_approval()) continue;
    if (wanted.erase(t.name()) > 0) {
      request->approved_in_advance[t.name()] = "local (--approve)";
      continue;
    }
    ok = false;
    std::fprintf(
        stderr, "%s\n",
        pipeline::MakeDiagnostic(
            request->source_map.get(),
            pipeline::Field(pipeline::Index("tasks", i), "approval"),
            absl::StrCat("task ", t.name(),
                         " waits for approval, which a local run cannot ask "
                         "for: pass --approve ",
                         t.name(),
                         " to approve it for this run, or submit the run to "
                         "a kiln server (kiln submit) and decide with kiln "
                         "approve"))
            .ToString()
            .c_str());
  }
  for (const std::string& name : wanted) {
    ok = false;
    std::fprintf(stderr,
                 "kiln: --approve %s: the pipeline has no task %s with an "
                 "approval gate\n",
                 name.c_str(), name.c_str());
  }
  return ok;
}

// Whether running `pipeline` certainly makes HTTP requests (a notification,
// or a task whose kind says so: a registry push, a deploy).
bool MakesRequests(const v1::Pipeline& pipeline) {
  if (pipeline.notify_size() > 0) return true;
  for (const v1::Task& t : pipeline.tasks()) {
    const pipeline::KindSpec* kind = pipeline::KindOf(t);
    if (kind != nullptr && kind->MakesRequests(t)) return true;
  }
  return false;
}

// Turns SIGINT/SIGTERM into cancellation: the first is graceful (`finally`
// still runs), the second immediate. Signals are blocked in every thread
// and taken by this watcher with sigtimedwait.
class SignalWatcher {
 public:
  explicit SignalWatcher(RunHandle* run) : run_(run) {
    thread_ = std::thread([this] { Watch(); });
  }
  ~SignalWatcher() {
    stop_ = true;
    // Wakes the watcher at once instead of at its next poll.
    pthread_kill(thread_.native_handle(), SIGUSR2);
    thread_.join();
  }
  static void BlockSignals() {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGUSR2);
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
  }

 private:
  void Watch() {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGUSR2);
    int count = 0;
    while (!stop_) {
      timespec ts{0, 100 * 1000 * 1000};
      int sig = sigtimedwait(&set, nullptr, &ts);
      if (sig <= 0 || sig == SIGUSR2) continue;
      ++count;
      std::fprintf(stderr, "\nkiln: %s — %s\n",
                   sig == SIGINT ? "interrupted" : "terminated",
                   count == 1 ? "stopping (finally tasks still run; "
                                "interrupt again to stop them too)"
                              : "stopping now");
      run_->Cancel(count == 1 ? "interrupted" : "interrupted twice");
    }
  }
  RunHandle* run_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// Decoding YAML builds a tree several times the pipeline's size (~40 MB
// for 10,000 tasks) and frees it, and the pipeline's messages were
// allocated among its nodes: one heap kept those pages resident for the
// whole run (a 10,000-task cold run's heap stayed ~25 MB above a rerun's,
// whose decoding is read from the store). The pipeline is rebuilt from its
// bytes after the tree's pages are given back. A decoding read from the
// store frees little, and trimming it would only fault pages in again.
bool CompactDecodedPipeline(v1::Pipeline* pipeline) {
  std::string bytes;
  if (!pipeline->SerializeToString(&bytes)) return false;
  v1::Pipeline().Swap(pipeline);  // the scattered messages are freed
  malloc_trim(4 << 20);
  return pipeline->ParseFromString(bytes);
}

int RunVerb(const std::vector<std::string>& argv) {
  // One heap for every thread, its fresh pages faulted in on another core
  // before they are used (base/heap_warmer.h): a 10,000-task no-op touches
  // ~8,500 new pages, each fault 5-20 us on a VM; per-thread arenas touched
  // ~1,200 more. The warmer populates all of the heap's spare top, so that
  // top is kept at 4 MiB (main's 16 MiB, populated, added ~10 MB of RSS).
  mallopt(M_ARENA_MAX, 1);
  mallopt(M_TOP_PAD, 4 << 20);
  HeapWarmer heap_warmer;
  Args args(
      "kiln run FILE [--param k=v]... [--branch B] [--message M] [--event E] "
      "[--jobs N] [--store DIR] [--keep-going] [--json] [--resume RUN] "
      "[--executor NAME] [--profile FILE] [--approve TASK]...\n"
      "         [--executor kubernetes --kube-agent-image REF@sha256:DIGEST\n"
      "          [--kubeconfig F] [--kube-context C] [--namespace N]\n"
      "          [--agent-listen HOST:PORT] [--agent-endpoint HOST:PORT]\n"
      "          [--agent-tls-cert C --agent-tls-key K [--agent-ca CA]]]");
  AddTriggerFlags(&args);
  args.Flag("jobs",
            "task commands running at once (default 2; a finished command's "
            "outputs are stored without holding a slot)");
  args.Flag("executor",
            "the default executor of tasks and pipelines that name none: "
            "local-sandbox (default) or kubernetes (tasks run as pods; "
            "docs/kubernetes-executor.md)");
  args.Flag("store", "store directory (default $KILN_STORE or ~/.cache/kiln)");
  args.Bool("keep-going",
            "continue after a task fails (run what does not depend on it)");
  args.Bool("json", "print one JSON event per line on stdout");
  args.Flag("resume", "continue the recorded, unfinished run RUN");
  args.Repeated("approve",
                "approve the approval gate of TASK for this run (a local run "
                "has nobody to ask: a gate not approved so is refused before "
                "anything runs)");
  args.Flag("profile",
            "write a trace of the run to FILE (Chrome trace-event JSON: open "
            "it in ui.perfetto.dev or chrome://tracing; docs/profile.md)");
  AddRegistryFlags(&args);
  AddPipelineLimitFlags(&args);
  AddKubeFlags(&args);
  int code;
  if (!args.Parse(argv, &code)) return code;
  absl::StatusOr<KubeFlags> kube_flags = ReadKubeFlags(args);
  if (!kube_flags.ok()) {
    return args.UsageError(std::string(kube_flags.status().message()));
  }
  absl::StatusOr<pipeline::LoadOptions> limits = PipelineLimitsFromFlags(args);
  if (!limits.ok()) {
    return args.UsageError(std::string(limits.status().message()));
  }
  // Decoded pipelines are kept in the store (LoadOptions::decode_cache_dir):
  // a rerun of an unchanged file does not decode its YAML again.
  if (absl::StatusOr<std::string> store =
          cas::ResolveStoreDir(args.Get("store"));
      store.ok()) {
    limits->decode_cache_dir = *store + "/pipelines";
  }
  bool resume = args.Has("resume");
  if (resume ? args.positionals().size() > 1 : args.positionals().size() != 1) {
    return args.UsageError("expected one pipeline FILE");
  }
  int64_t jobs = 2;
  if (absl::Status s = args.IntFlag("jobs", 1, kMaxJobs, &jobs); !s.ok()) {
    return args.UsageError(std::string(s.message()));
  }
  auto trigger = TriggerFromFlags(args);
  if (!trigger.ok())
    return args.UsageError(std::string(trigger.status().message()));

  std::shared_ptr<TraceRecorder> trace;
  std::string profile_path = args.Get("profile");
  if (args.Has("profile")) {
    if (profile_path.empty()) return args.UsageError("--profile needs a FILE");
    // Refused before anything runs: a profile that cannot be written.
    size_t slash = profile_path.rfind('/');
    std::string parent = slash == std::string::npos ? "."
                         : slash == 0               ? "/"
                                      : profile_path.substr(0, slash);
    struct stat st;
    if (stat(parent.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
      return args.UsageError(absl::StrCat("--profile ", profile_path, ": ",
                                          parent, " is not a directory"));
    }
    trace = std::make_shared<TraceRecorder>();
  }
  const int run_track = trace != nullptr ? trace->Track("kiln run") : 0;

  RunRequest request;
  // Lives until the run ends: with --rev it holds the exported source.
  std::optional<GitSource> git;
  // Without --rev the file to load is the one given and git only fills the
  // trigger; libgit2's start-up (its libraries, mbedtls reading the system's
  // CA bundle) and the status take 10-30 ms here, as long as the rest of a
  // warm run, so they run on a thread while the file is loaded and the
  // store opened. The answer is awaited before anything
  // reads the trigger (the changelog, Submit); a git error still stops the
  // run before any task.
  v1::Trigger git_trigger = *trigger;
  std::future<absl::StatusOr<GitSource>> pending_git;
  std::future<void> http_ready;
  auto await_git = [&]() -> bool {
    if (!pending_git.valid()) return true;
    absl::StatusOr<GitSource> resolved = pending_git.get();
    if (!resolved.ok()) {
      std::fprintf(stderr, "kiln: %s\n",
                   std::string(resolved.status().message()).c_str());
      return false;
    }
    git.emplace(*std::move(resolved));
    request.trigger = git_trigger;
    return true;
  };
  if (!resume) {
    const std::string file = args.positionals()[0];
    // The changelog is filled below, once the store says where the last
    // successful run was.
    auto resolve = [&args, file, &git_trigger]() {
      SignalWatcher::BlockSignals();  // as in every thread (SignalWatcher)
      return GitSource::Resolve(args, file, &git_trigger,
                                GitSource::Changelog::kLeave);
    };
    if (args.Get("rev").empty()) {
      pending_git = std::async(std::launch::async, resolve);
    } else {
      // --rev: the file to load is in the export, made first.
      pending_git = std::async(std::launch::deferred, resolve);
      if (!await_git()) return kExitUsage;
    }
    ScopedSpan load_span(trace.get(), run_track, "load pipeline");
    pipeline::LoadedPipeline loaded =
        pipeline::LoadPipelineFile(git ? git->pipeline_file() : file, *limits);
    load_span.End();
    if (!loaded.ok()) {
      for (const auto& d : loaded.errors) {
        std::fprintf(stderr, "%s\n", d.ToString().c_str());
      }
      return kExitUsage;
    }
    if (!loaded.from_cache) {
      ScopedSpan compact_span(trace.get(), run_track, "compact pipeline");
      if (!CompactDecodedPipeline(&loaded.pipeline)) {
        std::fprintf(stderr, "kiln: %s: cannot copy the decoded pipeline\n",
                     loaded.file.c_str());
        return kExitFailed;
      }
    }
    request.pipeline = std::move(loaded.pipeline);
    request.source_dir = loaded.base_dir;
    request.source_map = loaded.source_map;
    request.validation = loaded.validation;
    request.keep_going = args.Has("keep-going");
    // Loading libcurl and its TLS library and initialising them take ~8 ms;
    // a pipeline that will make requests has them done on a thread now,
    // while git and the store are busy, instead of in its first request.
    if (MakesRequests(request.pipeline)) {
      http_ready = std::async(std::launch::async, [] {
        SignalWatcher::BlockSignals();
        oci::registry::PrepareHttp();
      });
    }
    if (!ApproveInAdvance(args.GetAll("approve"), &request)) return kExitUsage;
  }

  SignalWatcher::BlockSignals();
  // The kubernetes executor is checked (cluster reachable, namespace there)
  // before the engine exists: a misconfiguration fails before any task.
  std::unique_ptr<KubeExecutorWiring> kube;
  if (kube_flags->enabled) {
    auto prepared = KubeExecutorWiring::Prepare(*kube_flags);
    if (!prepared.ok()) {
      std::fprintf(stderr, "kiln: %s\n",
                   std::string(prepared.status().message()).c_str());
      return kExitFailed;
    }
    kube = *std::move(prepared);
  }
  LocalEngineOptions local;
  if (kube != nullptr) local.more_executors.push_back(kube->executor());
  local.store_flag = args.Get("store");
  local.jobs = static_cast<int>(jobs);
  local.default_executor = args.Get("executor");
  if (!kube_flags->kubeconfig.empty()) {
    local.kubeconfig_paths = {kube_flags->kubeconfig};
  }
  local.kube_context = kube_flags->context;
  ReadRegistryFlags(args, &local);
  local.trace = trace;
  ScopedSpan open_span(trace.get(), run_track, "open store");
  auto engine = MakeLocalEngine(local);
  open_span.End();
  if (!engine.ok()) {
    std::fprintf(stderr, "kiln: %s\n",
                 std::string(engine.status().message()).c_str());
    return kExitFailed;
  }
  // The agents' blob endpoint serves the engine's store: it stops first.
  struct StopFirst {
    KubeExecutorWiring* kube;
    ~StopFirst() {
      if (kube != nullptr) kube->Stop();
    }
  } stop_kube{kube.get()};
  if (kube != nullptr) {
    if (absl::Status s = StartKubernetes(kube.get(), engine->get(), "");
        !s.ok()) {
      std::fprintf(stderr, "kiln: %s\n", std::string(s.message()).c_str());
      return kExitFailed;
    }
  }
  {
    ScopedSpan git_span(trace.get(), run_track, "await git");
    if (!await_git()) return kExitUsage;
  }
  // Outside a git work tree there is no changelog and nothing to look up.
  if (git && git->in_work_tree()) {
    // The changelog starts after the newest successful run's revision.
    absl::StatusOr<std::string> last = (*engine)->LastSucceededRevision(
        request.pipeline.name(), request.trigger.branch());
    std::string since = last.ok() ? *last : "";
    if (absl::Status s = git->FillChangelog(since, &request.trigger); !s.ok()) {
      std::fprintf(stderr, "kiln: the changelog: %s\n",
                   std::string(s.message()).c_str());
      return kExitFailed;
    }
  }
  ScopedSpan submit_span(trace.get(), run_track,
                         resume ? "resume" : "submit (validate, plan, record)");
  auto run = resume ? (*engine)->Resume(args.Get("resume"))
                    : (*engine)->Submit(std::move(request));
  submit_span.End();
  if (!run.ok()) {
    std::fprintf(stderr, "%s\n", std::string(run.status().message()).c_str());
    return run.status().code() == absl::StatusCode::kInvalidArgument
               ? kExitUsage
               : kExitFailed;
  }
  ProgressView view(args.Has("json") ? ProgressView::Mode::kJson
                                     : ProgressView::Mode::kAuto);
  if (!args.Has("json")) {
    std::string note =
        git && !git->note().empty() ? absl::StrCat(" (", git->note(), ")") : "";
    std::fprintf(stderr, "kiln: run %s%s%s\n", (*run)->id().c_str(),
                 resume ? " (resumed)" : "", note.c_str());
  }
  // The warmer serves loading, planning and a replay, which allocate small
  // pieces; a task's first event ends it: executing tasks allocates blocks
  // touched only in part (compression contexts, transfer buffers), which
  // it would make resident in full (a 2,000-task cold run's peak RSS
  // doubled). A replay's events come after its work, made in reused
  // messages.
  int sub = (*run)->Subscribe(0, [&view, &heap_warmer](const v1::RunEvent& e) {
    if (e.has_task_state()) heap_warmer.Stop();
    view.OnEvent(e);
  });
  std::shared_ptr<const v1::Run> result;
  {
    SignalWatcher watcher(run->get());
    // JSON lines carried every task's state: only the end is needed (a
    // replayed run is then never rebuilt task by task).
    result = args.Has("json") ? (*run)->WaitSummary() : (*run)->WaitShared();
  }
  (*run)->Unsubscribe(sub);
  view.Finish(*result);
  // The process ends with this verb: the final run is not freed (for
  // 10,000 tasks, freeing it one status at a time was ~4 % of a no-op,
  // serial after its last task). A global holds it, so it is no leak.
  static const auto* const kept_until_exit =
      new std::shared_ptr<const v1::Run>(result);
  (void)kept_until_exit;
  if (trace != nullptr) {
    if (absl::Status s = trace->WriteFile(profile_path); !s.ok()) {
      std::fprintf(stderr, "kiln: writing the profile: %s\n",
                   std::string(s.message()).c_str());
      return kExitFailed;
    }
    if (!args.Has("json")) {
      std::fprintf(stderr, "kiln: profile written to %s (%zu spans)\n",
                   profile_path.c_str(), trace->span_count());
    }
  }
  return result->state() == v1::RUN_SUCCEEDED ? kExitOk : kExitFailed;
}

}  // namespace

KILN_CLI_VERB(run, "run",
              "run a pipeline in this process (local sandbox, or pods with "
              "--executor kubernetes)",
              RunVerb);

}  // namespace kiln::cli
