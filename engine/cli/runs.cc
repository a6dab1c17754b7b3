// `kiln runs` and `kiln logs`: read the runs of the local store directory
// through kiln::Engine (Engine::OpenStore). They only read; the default store
// that does not exist yet has no runs and is not created, but a store named by
// --store or $KILN_STORE must be an existing directory.
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "engine/cas/store_dir.h"
#include "engine/cli/args.h"
#include "engine/cli/client_connect.h"
#include "engine/cli/kiln_client.h"
#include "engine/cli/verb.h"
#include "engine/engine.h"
#include "engine/store/log_file.h"
#include "kiln/v1/run.pb.h"
#include "kiln/v1/service.grpc.pb.h"
#include "nlohmann/json.hpp"

namespace kiln::cli {
namespace {

// "succeeded" for RUN_SUCCEEDED.
std::string RunStateName(v1::RunState state) {
  return absl::AsciiStrToLower(
      absl::StripPrefix(v1::RunState_Name(state), "RUN_"));
}

// The state to show: an unfinished run whose owner died is not running.
std::string DisplayState(const v1::Run& run) {
  if (run.owner_gone()) return "interrupted (owner gone)";
  return RunStateName(run.state());
}

// Accepts "failed", "FAILED" or "RUN_FAILED".
bool ParseRunState(const std::string& text, v1::RunState* state) {
  std::string upper = absl::AsciiStrToUpper(text);
  if (!absl::StartsWith(upper, "RUN_")) upper = "RUN_" + upper;
  return v1::RunState_Parse(upper, state) &&
         *state != v1::RUN_STATE_UNSPECIFIED;
}

absl::Time FromTimestamp(const google::protobuf::Timestamp& ts) {
  return absl::FromUnixSeconds(ts.seconds()) + absl::Nanoseconds(ts.nanos());
}

// The run's wall time: until finished, or until now while unfinished.
absl::Duration RunDuration(const v1::Run& run, absl::Time now) {
  absl::Time end = run.has_finished() ? FromTimestamp(run.finished()) : now;
  return std::max(absl::ZeroDuration(), end - FromTimestamp(run.created()));
}

std::string HumanDuration(absl::Duration d) {
  int64_t seconds = absl::ToInt64Seconds(d);
  if (seconds < 60) {
    return absl::StrFormat("%.1fs", absl::ToDoubleSeconds(d));
  }
  if (seconds < 3600) {
    return absl::StrFormat("%dm%02ds", seconds / 60, seconds % 60);
  }
  return absl::StrFormat("%dh%02dm", seconds / 3600, (seconds % 3600) / 60);
}

struct TaskCounts {
  int total = 0, ok = 0, failed = 0, skipped = 0, cached = 0;
};

TaskCounts CountTasks(const v1::Run& run) {
  TaskCounts c;
  for (const v1::TaskStatus& t : run.tasks()) {
    ++c.total;
    switch (t.state()) {
      case v1::TASK_SUCCEEDED:
        ++c.ok;
        break;
      case v1::TASK_FAILED:
      case v1::TASK_TIMED_OUT:
      case v1::TASK_CANCELLED:
        ++c.failed;
        break;
      case v1::TASK_SKIPPED:
        ++c.skipped;
        break;
      case v1::TASK_CACHED:
        ++c.cached;
        break;
      default:
        break;
    }
  }
  return c;
}

// Opens the store read-mostly: a missing store is reported, not created.
// Returns nullptr (with *exit_code set) when there is nothing to open.
std::unique_ptr<Engine> OpenStore(const std::string& flag, bool missing_is_ok,
                                  int* exit_code) {
  absl::StatusOr<std::string> dir = cas::ResolveStoreDir(flag);
  if (!dir.ok()) {
    std::fprintf(stderr, "kiln: %s\n",
                 std::string(dir.status().message()).c_str());
    *exit_code = kExitFailed;
    return nullptr;
  }
  // A store named explicitly (--store or $KILN_STORE) must be a directory:
  // a typo or a file is an error, not an empty history.
  const char* env_store = std::getenv("KILN_STORE");
  const bool named = !flag.empty() || (env_store != nullptr && *env_store);
  struct stat st;
  if (stat(dir->c_str(), &st) != 0) {
    if (named || errno != ENOENT) {
      std::fprintf(stderr, "kiln: store directory %s: %s\n", dir->c_str(),
                   std::strerror(errno));
      *exit_code = kExitFailed;
      return nullptr;
    }
  } else if (!S_ISDIR(st.st_mode)) {
    std::fprintf(stderr, "kiln: store %s is not a directory\n", dir->c_str());
    *exit_code = kExitFailed;
    return nullptr;
  }
  if (!Engine::HasRunStore(*dir)) {
    if (missing_is_ok) {
      std::fprintf(stderr, "kiln: no runs recorded in %s\n", dir->c_str());
      *exit_code = kExitOk;
    } else {
      std::fprintf(stderr, "kiln: no run store in %s\n", dir->c_str());
      *exit_code = kExitFailed;
    }
    return nullptr;
  }
  absl::StatusOr<std::unique_ptr<Engine>> opened = Engine::OpenStore(*dir);
  if (!opened.ok()) {
    std::fprintf(stderr, "kiln: %s\n", opened.status().ToString().c_str());
    *exit_code = kExitFailed;
    return nullptr;
  }
  return std::move(*opened);
}

std::string LocalTime(const google::protobuf::Timestamp& ts) {
  return absl::FormatTime("%Y-%m-%d %H:%M:%S", FromTimestamp(ts),
                          absl::LocalTimeZone());
}

// RFC 3339 in UTC with a "Z", as few fraction digits as needed.
std::string Utc(absl::Time t) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E*SZ", t, absl::UTCTimeZone());
}

std::string Rfc3339(const google::protobuf::Timestamp& ts) {
  return Utc(FromTimestamp(ts));
}

// "succeeded" for TASK_SUCCEEDED.
std::string TaskStateName(v1::TaskState state) {
  return absl::AsciiStrToLower(
      absl::StripPrefix(v1::TaskState_Name(state), "TASK_"));
}

// The summary fields of a run, as `kiln runs --json` prints them.
nlohmann::json RunJson(const v1::Run& run, absl::Time now) {
  TaskCounts c = CountTasks(run);
  nlohmann::json item = {
      {"id", run.id()},
      {"pipeline", run.pipeline_name()},
      {"state", run.owner_gone() ? std::string("interrupted")
                                 : RunStateName(run.state())},
      {"owner_gone", run.owner_gone()},
      {"reason", run.reason()},
      {"created", Rfc3339(run.created())},
      {"duration_seconds", absl::ToDoubleSeconds(RunDuration(run, now))},
      {"tasks",
       {{"total", c.total},
        {"succeeded", c.ok},
        {"failed", c.failed},
        {"skipped", c.skipped},
        {"cached", c.cached}}}};
  item["finished"] = run.has_finished()
                         ? nlohmann::json(Rfc3339(run.finished()))
                         : nlohmann::json(nullptr);
  return item;
}

// `kiln runs RUN`: one run with its tasks and their outputs.
int ShowRun(const v1::Run& run, bool json) {
  const absl::Time now = absl::Now();
  if (json) {
    nlohmann::json item = RunJson(run, now);
    nlohmann::json tasks = nlohmann::json::array();
    for (const v1::TaskStatus& t : run.tasks()) {
      // Sorted by name (the proto map's order is not stable).
      std::map<std::string, std::string> outputs(t.outputs().begin(),
                                                 t.outputs().end());
      std::map<std::string, std::string> results(t.results().begin(),
                                                 t.results().end());
      nlohmann::json task = {
          {"name", t.name()},         {"state", TaskStateName(t.state())},
          {"attempts", t.attempts()}, {"exit_code", t.exit_code()},
          {"reason", t.reason()},     {"cache_key", t.cache_key()},
          {"outputs", outputs},       {"results", results}};
      task["started"] = t.has_started() ? nlohmann::json(Rfc3339(t.started()))
                                        : nlohmann::json(nullptr);
      task["finished"] = t.has_finished()
                             ? nlohmann::json(Rfc3339(t.finished()))
                             : nlohmann::json(nullptr);
      if (t.has_approval()) {
        const v1::ApprovalStatus& a = t.approval();
        task["approval"] = {{"message", a.message()},
                            {"decided", a.decided()},
                            {"approved", a.approved()},
                            {"principal", a.principal()},
                            {"comment", a.comment()}};
        task["approval"]["waiting_since"] =
            a.has_waiting_since() ? nlohmann::json(Rfc3339(a.waiting_since()))
                                  : nlohmann::json(nullptr);
        task["approval"]["deadline"] =
            a.has_deadline() ? nlohmann::json(Rfc3339(a.deadline()))
                             : nlohmann::json(nullptr);
      }
      tasks.push_back(std::move(task));
    }
    item["task_list"] = std::move(tasks);
    std::puts(item.dump(2).c_str());
    return kExitOk;
  }
  std::printf("run %s (%s): %s in %s\n", run.id().c_str(),
              run.pipeline_name().c_str(), DisplayState(run).c_str(),
              HumanDuration(RunDuration(run, now)).c_str());
  if (!run.reason().empty()) std::printf("  %s\n", run.reason().c_str());
  for (const v1::TaskStatus& t : run.tasks()) {
    std::printf("  %-24s %-10s%s%s\n", t.name().c_str(),
                TaskStateName(t.state()).c_str(), t.reason().empty() ? "" : " ",
                t.reason().c_str());
    if (t.approval().decided()) {
      std::printf("    approval: %s by %s%s%s\n",
                  t.approval().approved() ? "approved" : "rejected",
                  t.approval().principal().c_str(),
                  t.approval().comment().empty() ? "" : ": ",
                  t.approval().comment().c_str());
    }
    std::map<std::string, std::string> outputs(t.outputs().begin(),
                                               t.outputs().end());
    for (const auto& [name, digest] : outputs) {
      std::printf("    output %s %s\n", name.c_str(), digest.c_str());
    }
    // Declared results (run.results), escaped onto one line each.
    std::map<std::string, std::string> results(t.results().begin(),
                                               t.results().end());
    for (const auto& [key, value] : results) {
      if (!absl::StartsWith(key, "results.")) continue;
      std::printf("    result %s = %s\n",
                  key.substr(sizeof("results.") - 1).c_str(),
                  absl::CHexEscape(value).c_str());
    }
  }
  return kExitOk;
}

int Runs(const std::vector<std::string>& argv) {
  Args args(
      "kiln runs [--store DIR] [--limit N] [--state S] [--pipeline NAME] "
      "[--json]\n"
      "kiln runs RUN [--json]\n\n"
      "Lists recorded runs, newest first. TASKS counts ok/failed/skipped/"
      "cached\n(failed includes timed out and cancelled tasks). With RUN,\n"
      "shows that run's tasks, their output artifacts (name -> digest;\n"
      "with --json under task_list[].outputs) and declared results\n"
      "(`result NAME = VALUE`; with --json under task_list[].results as\n"
      "\"results.NAME\").");
  args.Flag("store",
            "store directory (default $KILN_STORE, $HOME/.cache/kiln)");
  args.Flag("limit", "at most N runs (default 20)");
  args.Flag("state",
            "only runs in this state: queued, running, succeeded, failed, "
            "cancelled, timed_out");
  args.Flag("pipeline", "only runs of this pipeline");
  args.Bool("json", "print a JSON array instead of a table");
  AddClientFlags(&args);
  args.Bool("remote", "ask the server (implied by --server/--token-file)");
  int exit_code = kExitOk;
  if (!args.Parse(argv, &exit_code)) return exit_code;
  if (args.positionals().size() > 1) {
    return args.UsageError("runs takes at most one RUN");
  }
  const bool remote =
      args.Has("server") || args.Has("token-file") || args.Has("remote");
  int64_t limit_flag = 20;
  if (absl::Status s = args.IntFlag("limit", 1, 100000, &limit_flag); !s.ok()) {
    return args.UsageError(std::string(s.message()));
  }
  const int limit = static_cast<int>(limit_flag);
  store::RunFilter filter;
  if (args.Has("state")) {
    v1::RunState state;
    if (!ParseRunState(args.Get("state"), &state)) {
      return args.UsageError(
          absl::StrCat("unknown run state '", args.Get("state"), "'"));
    }
    filter.state = state;
  }
  filter.pipeline_name = args.Get("pipeline");
  const bool json = args.Has("json");

  // The same listing in both forms: over gRPC, or in-process over the
  // local store (cli::Client, kiln_client.h).
  std::unique_ptr<Engine> local;
  std::unique_ptr<Client> client;
  if (remote) {
    auto connected = ConnectClient(args);
    if (!connected.ok()) {
      std::fprintf(stderr, "kiln: %s\n",
                   std::string(connected.status().message()).c_str());
      return kExitFailed;
    }
    client = std::move(*connected);
  } else {
    const bool one_run = args.positionals().size() == 1;
    local =
        OpenStore(args.Get("store"), /*missing_is_ok=*/!one_run, &exit_code);
    if (local == nullptr) {
      if (json && exit_code == kExitOk) std::puts("[]");
      return exit_code;
    }
    client = NewLocalClient(local.get());
  }
  if (args.positionals().size() == 1) {
    absl::StatusOr<v1::Run> run = client->GetRun(args.positionals()[0]);
    if (!run.ok()) {
      std::fprintf(stderr, "kiln: %s\n",
                   std::string(run.status().message()).c_str());
      return kExitFailed;
    }
    if (run->tasks_omitted()) {
      std::fprintf(stderr,
                   "kiln: run %s has too many tasks for one reply; its task "
                   "list is left out (use `kiln artifacts %s`)\n",
                   run->id().c_str(), run->id().c_str());
    }
    return ShowRun(*run, json);
  }
  std::vector<v1::Run> found;
  std::string token;
  do {
    absl::StatusOr<store::RunPage> page = client->ListRuns(
        filter, std::min(limit - static_cast<int>(found.size()), 1000), token);
    if (!page.ok()) {
      std::fprintf(stderr, "kiln: %s\n",
                   remote ? std::string(page.status().message()).c_str()
                          : page.status().ToString().c_str());
      return kExitFailed;
    }
    for (v1::Run& run : page->runs) found.push_back(std::move(run));
    token = page->next_page_token;
  } while (!token.empty() && static_cast<int>(found.size()) < limit);

  const absl::Time now = absl::Now();
  if (json) {
    nlohmann::json out = nlohmann::json::array();
    for (const v1::Run& run : found) out.push_back(RunJson(run, now));
    std::puts(out.dump(2).c_str());
    return kExitOk;
  }
  if (found.empty()) {
    std::fprintf(stderr, "kiln: no runs\n");
    return kExitOk;
  }
  size_t pipeline_width = 8;
  for (const v1::Run& run : found) {
    pipeline_width = std::max(pipeline_width, run.pipeline_name().size());
  }
  size_t state_width = 9;
  for (const v1::Run& run : found) {
    state_width = std::max(state_width, DisplayState(run).size());
  }
  std::printf("%-32s  %-*s  %-*s  %-19s  %8s  %s\n", "RUN",
              static_cast<int>(pipeline_width), "PIPELINE",
              static_cast<int>(state_width), "STATE", "CREATED", "DURATION",
              "TASKS ok/failed/skipped/cached");
  for (const v1::Run& run : found) {
    TaskCounts c = CountTasks(run);
    std::printf("%-32s  %-*s  %-*s  %-19s  %8s  %d/%d/%d/%d\n",
                run.id().c_str(), static_cast<int>(pipeline_width),
                run.pipeline_name().c_str(), static_cast<int>(state_width),
                DisplayState(run).c_str(), LocalTime(run.created()).c_str(),
                HumanDuration(RunDuration(run, now)).c_str(), c.ok, c.failed,
                c.skipped, c.cached);
  }
  return kExitOk;
}

// Prints one stored log file; false if it cannot be read.
bool PrintLog(const std::string& path, const std::string& prefix,
              bool timestamps) {
  std::ifstream in(path);
  if (!in) return false;
  std::string line;
  while (std::getline(in, line)) {
    absl::StatusOr<store::LogFileLine> parsed = store::ParseLogFileLine(line);
    if (!parsed.ok()) {  // not ours, or torn by a crash: show it as it is
      std::printf("%s%s\n", prefix.c_str(), line.c_str());
      continue;
    }
    if (timestamps) {
      std::printf("%s%s %s\n", prefix.c_str(), Utc(parsed->time).c_str(),
                  parsed->text.c_str());
    } else {
      std::printf("%s%s\n", prefix.c_str(), parsed->text.c_str());
    }
  }
  return true;
}

// `kiln logs` against a server: StreamLogs per task (following with -f).
int RemoteLogs(const Args& args) {
  auto connected = Connect(args);
  if (!connected.ok()) {
    std::fprintf(stderr, "kiln: %s\n",
                 std::string(connected.status().message()).c_str());
    return kExitFailed;
  }
  // StreamLogs (following a live attempt) is the server's alone; the run's
  // tasks come through cli::Client as in the local form.
  std::shared_ptr<service::KilnClient> client = std::move(*connected);
  const std::string run_id = args.positionals()[0];
  std::vector<std::string> tasks;
  if (args.positionals().size() == 2) {
    tasks.push_back(args.positionals()[1]);
  } else {
    absl::StatusOr<v1::Run> run = NewRemoteClient(client, "")->GetRun(run_id);
    if (!run.ok()) {
      std::fprintf(stderr, "kiln: %s\n",
                   std::string(run.status().message()).c_str());
      return kExitFailed;
    }
    for (const auto& t : run->tasks()) {
      if (t.attempts() > 0) tasks.push_back(t.name());
    }
  }
  uint32_t attempt = 0;
  if (args.Has("attempt") &&
      (!absl::SimpleAtoi(args.Get("attempt"), &attempt) || attempt == 0)) {
    return args.UsageError("--attempt must be a number >= 1");
  }
  const bool follow = args.Has("follow") || args.Has("f");
  for (const std::string& task : tasks) {
    v1::StreamLogsRequest request;
    request.set_run_id(run_id);
    request.set_task(task);
    request.set_attempt(attempt);
    request.set_follow(follow);
    auto context = client->NewContext();
    auto reader = client->stub().StreamLogs(context.get(), request);
    v1::StreamLogsResponse response;
    while (reader->Read(&response)) {
      for (const auto& line : response.lines()) {
        std::string prefix =
            tasks.size() > 1 ? absl::StrCat("[", response.task(), "] ") : "";
        if (args.Has("timestamps")) {
          prefix = absl::StrCat(
              absl::FormatTime("%Y-%m-%dT%H:%M:%E6SZ ",
                               absl::FromUnixSeconds(line.time().seconds()) +
                                   absl::Nanoseconds(line.time().nanos()),
                               absl::UTCTimeZone()),
              prefix);
        }
        std::printf("%s%s\n", prefix.c_str(), line.text().c_str());
      }
      std::fflush(stdout);
    }
    grpc::Status status = reader->Finish();
    if (!status.ok()) {
      std::fprintf(stderr, "kiln: %s: %s\n", task.c_str(),
                   status.error_message().c_str());
      return kExitFailed;
    }
  }
  return kExitOk;
}

int Logs(const std::vector<std::string>& argv) {
  Args args(
      "kiln logs RUN [TASK] [--store DIR] [--attempt N] [--timestamps]\n\n"
      "Prints the stored logs of a run: every task in pipeline order, each\n"
      "line prefixed with [task] (or [task#N] for attempt N > 1), or only\n"
      "TASK's. Shows each task's latest attempt unless --attempt is given.");
  args.Flag("store",
            "store directory (default $KILN_STORE, $HOME/.cache/kiln)");
  args.Flag("attempt", "show attempt N instead of the latest");
  args.Bool("timestamps", "prefix each line with its UTC time");
  AddClientFlags(&args);
  args.Bool("follow", "with a server: keep following TASK's log while it runs");
  args.Bool("f", "same as --follow");
  args.Bool("remote", "ask the server (implied by --server/--token-file)");
  int exit_code = kExitOk;
  if (!args.Parse(argv, &exit_code)) return exit_code;
  if (args.positionals().empty() || args.positionals().size() > 2) {
    return args.UsageError("logs takes RUN and an optional TASK");
  }
  if (args.Has("server") || args.Has("token-file") || args.Has("remote") ||
      args.Has("follow") || args.Has("f")) {
    return RemoteLogs(args);
  }
  const std::string run_id = args.positionals()[0];
  const std::string task =
      args.positionals().size() == 2 ? args.positionals()[1] : "";
  uint32_t attempt = 0;
  if (args.Has("attempt") &&
      (!absl::SimpleAtoi(args.Get("attempt"), &attempt) || attempt == 0)) {
    return args.UsageError("--attempt must be a number >= 1");
  }

  std::unique_ptr<Engine> runs =
      OpenStore(args.Get("store"), /*missing_is_ok=*/false, &exit_code);
  if (runs == nullptr) return exit_code;
  absl::StatusOr<v1::Run> run = NewLocalClient(runs.get())->GetRun(run_id);
  if (!run.ok()) {
    std::fprintf(stderr, "kiln: %s\n",
                 std::string(run.status().message()).c_str());
    return kExitFailed;
  }
  if (!task.empty()) {
    bool known = false;
    for (const v1::TaskStatus& t : run->tasks()) known |= t.name() == task;
    if (!known) {
      std::fprintf(stderr, "kiln: run %s has no task %s\n", run_id.c_str(),
                   task.c_str());
      return kExitFailed;
    }
  }
  absl::StatusOr<std::vector<store::AttemptLog>> logs =
      runs->AttemptLogs(run_id, task);
  if (!logs.ok()) {
    std::fprintf(stderr, "kiln: %s\n", logs.status().ToString().c_str());
    return kExitFailed;
  }
  // Per task (in pipeline order, as AttemptLogs returns them): the chosen
  // attempt, or the latest.
  std::vector<store::AttemptLog> chosen;
  for (const store::AttemptLog& log : *logs) {
    if (attempt != 0) {
      if (log.attempt == attempt) chosen.push_back(log);
    } else if (!chosen.empty() && chosen.back().task == log.task) {
      chosen.back() = log;  // a later attempt of the same task
    } else {
      chosen.push_back(log);
    }
  }
  if (chosen.empty()) {
    std::fprintf(stderr, "kiln: no logs recorded for run %s%s%s\n",
                 run_id.c_str(), task.empty() ? "" : " task ", task.c_str());
    return task.empty() ? kExitOk : kExitFailed;
  }
  const bool timestamps = args.Has("timestamps");
  int result = kExitOk;
  for (const store::AttemptLog& log : chosen) {
    const std::string& path = log.path;  // absolute (Engine::AttemptLogs)
    std::string prefix;
    if (task.empty()) {
      prefix = log.attempt > 1
                   ? absl::StrCat("[", log.task, "#", log.attempt, "] ")
                   : absl::StrCat("[", log.task, "] ");
    }
    if (!PrintLog(path, prefix, timestamps)) {
      std::fprintf(stderr, "kiln: cannot read the log of %s attempt %u: %s\n",
                   log.task.c_str(), log.attempt, path.c_str());
      result = kExitFailed;
    }
  }
  std::fflush(stdout);
  return result;
}

}  // namespace

KILN_CLI_VERB(runs, "runs", "list recorded runs", Runs);
KILN_CLI_VERB(logs, "logs", "print the stored logs of a run", Logs);

}  // namespace kiln::cli
