// Client verbs over `kiln serve`: submit, watch, cancel, retry, written
// against cli::Client (kiln_client.h).
//
// Each takes --server ADDR (default: the local store's socket,
// unix:STORE/kiln.sock, with the store from --store / $KILN_STORE /
// ~/.cache/kiln), --token-file F (a bare token or a `TOKEN ROLE` line) and
// --tls-ca PEM. Watching prints plain lines on stdout: one per run or task
// state change, and each log line prefixed by its task. Exit codes: 0 the
// run succeeded (or the request did), 1 it failed, 2 usage.
#include "engine/service/client.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <optional>
#include <random>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "engine/cas/store_dir.h"
#include "engine/cli/args.h"
#include "engine/cli/client_connect.h"
#include "engine/cli/git_trigger.h"
#include "engine/cli/kiln_client.h"
#include "engine/cli/progress.h"
#include "engine/cli/trigger_flags.h"
#include "engine/cli/verb.h"
#include "engine/pipeline/loader.h"
#include "engine/service/listen_address.h"

namespace kiln::cli {
namespace {

int Fail(const absl::Status& status) {
  std::fprintf(stderr, "kiln: %s\n", std::string(status.message()).c_str());
  return kExitFailed;
}

std::string StateName(const google::protobuf::EnumDescriptor* type, int value,
                      absl::string_view prefix) {
  const google::protobuf::EnumValueDescriptor* v =
      type->FindValueByNumber(value);
  if (v == nullptr) return absl::StrCat(value);
  return std::string(absl::StripPrefix(v->name(), prefix));
}

// One plain line per event.
void PrintEvent(const v1::RunEvent& event) {
  if (event.has_run_state()) {
    const v1::RunStateChanged& s = event.run_state();
    std::printf("run %s%s%s\n",
                StateName(v1::RunState_descriptor(), s.state(), "RUN_").c_str(),
                s.reason().empty() ? "" : ": ", s.reason().c_str());
  } else if (event.has_task_state()) {
    const v1::TaskStateChanged& s = event.task_state();
    std::string state =
        StateName(v1::TaskState_descriptor(), s.state(), "TASK_");
    std::string detail;
    if (s.attempt() > 0) absl::StrAppend(&detail, " attempt ", s.attempt());
    if (s.state() == v1::TASK_FAILED) {
      absl::StrAppend(&detail, " exit ", s.exit_code());
    }
    if (!s.reason().empty()) absl::StrAppend(&detail, ": ", s.reason());
    std::printf("task %s %s%s\n", s.task().c_str(), state.c_str(),
                detail.c_str());
  } else if (event.has_log()) {
    std::printf("%s| %s\n", event.log().task().c_str(),
                event.log().text().c_str());
  } else if (event.has_notification()) {
    std::printf("%s\n", NotificationLine(event.notification()).c_str());
  }
  std::fflush(stdout);
}

// Follows a run to its end with `follow` (which watches, given where to
// send events, and says which run it was): on a terminal the live progress
// view of `kiln run`, otherwise plain lines (PrintEvent).
int FollowToEnd(
    Client& client,
    const std::function<absl::StatusOr<v1::RunState>(
        const Client::EventHandler&, std::string* run_id)>& follow) {
  const char* term = std::getenv("TERM");
  bool live = isatty(STDERR_FILENO) && std::getenv("NO_COLOR") == nullptr &&
              !(term != nullptr && std::strcmp(term, "dumb") == 0);
  std::string run_id;
  if (!live) {
    absl::StatusOr<v1::RunState> state = follow(PrintEvent, &run_id);
    if (!state.ok()) return Fail(state.status());
    return *state == v1::RUN_SUCCEEDED ? kExitOk : kExitFailed;
  }
  // Made at the first event: a call refused before its run starts (or
  // waiting in the server's start queue) draws no progress frame.
  std::optional<ProgressView> view;
  absl::StatusOr<v1::RunState> state = follow(
      [&view](const v1::RunEvent& e) {
        if (!view) view.emplace(ProgressView::Mode::kLive);
        view->OnEvent(e);
      },
      &run_id);
  if (!state.ok()) return Fail(state.status());
  if (view && !run_id.empty()) {
    if (absl::StatusOr<v1::Run> run = client.GetRun(run_id); run.ok()) {
      view->Finish(*run);
    }
  }
  return *state == v1::RUN_SUCCEEDED ? kExitOk : kExitFailed;
}

int WatchToEnd(Client& client, const std::string& run_id) {
  return FollowToEnd(
      client, [&](const Client::EventHandler& on_event, std::string* id) {
        *id = run_id;
        return client.Watch(run_id, 0, on_event);
      });
}

std::string RandomKey() {
  std::random_device random;
  return absl::StrFormat("%08x%08x%08x%08x", random(), random(), random(),
                         random());
}

int SubmitVerb(const std::vector<std::string>& argv) {
  Args args(
      "kiln submit FILE [--param k=v]... [--branch B] [--message M] "
      "[--event E] [--watch] [--server ADDR] [--token-file F]\n\n"
      "Uploads the pipeline's directory as the `source` artifact and starts "
      "a run on the server; prints the run id.");
  AddTriggerFlags(&args);
  AddClientFlags(&args);
  args.Bool("watch", "follow the run to its end");
  args.Bool("keep-going", "continue after a task fails");
  args.Flag("idempotency-key",
            "a retried submit with the same key starts no second run");
  int code;
  if (!args.Parse(argv, &code)) return code;
  if (args.positionals().size() != 1) {
    return args.UsageError("expected one pipeline FILE");
  }
  auto trigger = TriggerFromFlags(args);
  if (!trigger.ok()) {
    return args.UsageError(std::string(trigger.status().message()));
  }
  auto git = GitSource::Resolve(args, args.positionals()[0], &*trigger);
  if (!git.ok()) return args.UsageError(std::string(git.status().message()));
  const std::string& file = git->pipeline_file();
  pipeline::LoadedPipeline loaded = pipeline::LoadPipelineFile(file);
  if (!loaded.ok()) {
    for (const auto& d : loaded.errors) {
      std::fprintf(stderr, "%s\n", d.ToString().c_str());
    }
    return kExitUsage;
  }
  std::ifstream in(file, std::ios::binary);
  std::stringstream yaml;
  yaml << in.rdbuf();

  // Stash the pipeline's directory in the local store, upload its archive.
  absl::StatusOr<std::string> store = cas::ResolveStoreDir(args.Get("store"));
  if (!store.ok()) return Fail(store.status());
  auto client = ConnectClient(args);
  if (!client.ok()) return Fail(client.status());
  absl::StatusOr<UploadedSource> source =
      (*client)->UploadSource(loaded.base_dir);
  if (!source.ok()) return Fail(source.status());

  SubmitSpec spec;
  spec.yaml = yaml.str();
  spec.filename = args.positionals()[0];
  spec.source = *source;
  spec.trigger = *trigger;
  spec.idempotency_key = args.Get("idempotency-key", RandomKey());
  spec.keep_going = args.Has("keep-going");
  auto refused = [](const absl::Status& s) {
    std::fprintf(stderr, "%s\n", std::string(s.message()).c_str());
    return absl::IsInvalidArgument(s) ? kExitUsage : kExitFailed;
  };
  auto print_id = [](const std::string& id) {
    std::printf("%s\n", id.c_str());
    std::fflush(stdout);
  };
  if (!args.Has("watch")) {
    absl::StatusOr<std::string> run_id = (*client)->Submit(spec);
    if (!run_id.ok()) return refused(run_id.status());
    print_id(*run_id);
    return kExitOk;
  }
  // Started and followed in one call; the id is printed before any event.
  bool started = false;
  absl::Status not_started;
  int followed = FollowToEnd(
      **client, [&](const Client::EventHandler& on_event, std::string* id) {
        absl::StatusOr<v1::RunState> state = (*client)->SubmitAndWatch(
            spec,
            [&](const std::string& run_id) {
              started = true;
              *id = run_id;
              print_id(run_id);
            },
            on_event);
        if (!state.ok() && !started) {
          not_started = state.status();
          return absl::StatusOr<v1::RunState>(v1::RUN_FAILED);
        }
        return state;
      });
  if (!not_started.ok()) return refused(not_started);
  return followed;
}

int WatchVerb(const std::vector<std::string>& argv) {
  Args args(
      "kiln watch RUN [--server ADDR] [--token-file F]\n\n"
      "Follows a run's events until it ends (resuming after disconnects); "
      "exit 0 if it succeeded.");
  AddClientFlags(&args);
  int code;
  if (!args.Parse(argv, &code)) return code;
  if (args.positionals().size() != 1) return args.UsageError("expected RUN");
  auto client = ConnectClient(args);
  if (!client.ok()) return Fail(client.status());
  return WatchToEnd(**client, args.positionals()[0]);
}

int CancelVerb(const std::vector<std::string>& argv) {
  Args args("kiln cancel RUN [--reason R] [--server ADDR] [--token-file F]");
  AddClientFlags(&args);
  args.Flag("reason", "recorded with the cancellation");
  int code;
  if (!args.Parse(argv, &code)) return code;
  if (args.positionals().size() != 1) return args.UsageError("expected RUN");
  auto client = ConnectClient(args);
  if (!client.ok()) return Fail(client.status());
  const std::string& run_id = args.positionals()[0];
  if (absl::Status s = (*client)->Cancel(run_id, args.Get("reason")); !s.ok()) {
    return Fail(s);
  }
  std::printf("cancelling %s\n", run_id.c_str());
  return kExitOk;
}

int RetryVerb(const std::vector<std::string>& argv) {
  Args args(
      "kiln retry RUN [--watch] [--server ADDR] [--token-file F]\n\n"
      "Starts a new run like RUN; what succeeded is reused from the cache. "
      "Prints the new run id.");
  AddClientFlags(&args);
  args.Bool("watch", "follow the new run to its end");
  int code;
  if (!args.Parse(argv, &code)) return code;
  if (args.positionals().size() != 1) return args.UsageError("expected RUN");
  auto client = ConnectClient(args);
  if (!client.ok()) return Fail(client.status());
  absl::StatusOr<std::string> run_id = (*client)->Retry(args.positionals()[0]);
  if (!run_id.ok()) return Fail(run_id.status());
  std::printf("%s\n", run_id->c_str());
  std::fflush(stdout);
  if (!args.Has("watch")) return kExitOk;
  return WatchToEnd(**client, *run_id);
}

}  // namespace
}  // namespace kiln::cli

KILN_CLI_VERB(submit, "submit", "submit a pipeline run to a kiln server",
              kiln::cli::SubmitVerb);
KILN_CLI_VERB(watch, "watch", "follow a run on a kiln server",
              kiln::cli::WatchVerb);
KILN_CLI_VERB(cancel, "cancel", "cancel a run on a kiln server",
              kiln::cli::CancelVerb);
KILN_CLI_VERB(retry, "retry", "retry a finished run on a kiln server",
              kiln::cli::RetryVerb);
