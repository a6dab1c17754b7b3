// dag_run: `kiln run` for pipelines larger than the CLI's loader limits.
//
//   dag_run FILE --store DIR [--jobs N]
//
// The pipeline loader caps a file at 1 MiB and 100,000 YAML nodes (keys
// count), which a 10,000-task pipeline exceeds several times over, so
// `kiln run` refuses it. This driver does what `kiln run` does — load and
// validate the YAML file, build the engine over the local store and the local
// sandbox executor (cli::MakeLocalEngine), submit, wait — with the loader's
// limits raised, and without the progress view. It prints one JSON line with
// the phase times and the task states to stdout. Exit 0 if the run
// succeeded, 1 if it failed, 2 on usage or load errors.
#include <chrono>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "engine/cli/local_engine.h"
#include "engine/pipeline/loader.h"
#include "kiln/v1/run.pb.h"

namespace {

using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

int Usage(const char* why) {
  std::fprintf(
      stderr, "dag_run: %s\nusage: dag_run FILE --store DIR [--jobs N]\n", why);
  return 2;
}

int Main(int argc, char** argv) {
  std::string file, store;
  int jobs = 2;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if ((arg == "--store" || arg == "--jobs") && i + 1 < argc) {
      std::string value = argv[++i];
      if (arg == "--store") {
        store = value;
      } else if (!absl::SimpleAtoi(value, &jobs) || jobs < 1) {
        return Usage("--jobs must be a positive number");
      }
    } else if (file.empty() && !arg.empty() && arg[0] != '-') {
      file = arg;
    } else {
      return Usage(absl::StrCat("unexpected argument ", arg).c_str());
    }
  }
  if (file.empty() || store.empty()) return Usage("need FILE and --store");

  Clock::time_point start = Clock::now();
  kiln::pipeline::LoadOptions limits;
  limits.max_file_bytes = 64 << 20;
  limits.max_nodes = 10 * 1000 * 1000;
  kiln::pipeline::LoadedPipeline loaded =
      kiln::pipeline::LoadPipelineFile(file, limits);
  if (!loaded.ok()) {
    for (const auto& d : loaded.errors) {
      std::fprintf(stderr, "%s\n", d.ToString().c_str());
    }
    return 2;
  }
  double load_s = SecondsSince(start);

  Clock::time_point engine_start = Clock::now();
  kiln::cli::LocalEngineOptions local;
  local.store_flag = store;
  local.jobs = jobs;
  auto engine = kiln::cli::MakeLocalEngine(local);
  if (!engine.ok()) {
    std::fprintf(stderr, "dag_run: %s\n",
                 std::string(engine.status().message()).c_str());
    return 1;
  }
  double engine_s = SecondsSince(engine_start);

  Clock::time_point run_start = Clock::now();
  kiln::RunRequest request;
  request.pipeline = std::move(loaded.pipeline);
  request.source_dir = loaded.base_dir;
  request.trigger.set_event(kiln::v1::MANUAL);
  auto run = (*engine)->Submit(std::move(request));
  if (!run.ok()) {
    std::fprintf(stderr, "dag_run: %s\n",
                 std::string(run.status().message()).c_str());
    return 1;
  }
  kiln::v1::Run result = (*run)->Wait();
  double run_s = SecondsSince(run_start);

  std::map<std::string, int> states;
  for (const auto& task : result.tasks()) {
    ++states[kiln::v1::TaskState_Name(task.state())];
  }
  std::string state_json;
  for (const auto& [name, count] : states) {
    absl::StrAppend(&state_json, state_json.empty() ? "" : ",", "\"", name,
                    "\":", count);
  }
  std::printf(
      "{\"run\":\"%s\",\"state\":\"%s\",\"tasks\":%d,\"load_s\":%.4f,"
      "\"engine_s\":%.4f,\"run_s\":%.4f,\"total_s\":%.4f,\"states\":{%s}}\n",
      result.id().c_str(), kiln::v1::RunState_Name(result.state()).c_str(),
      result.tasks_size(), load_s, engine_s, run_s, SecondsSince(start),
      state_json.c_str());
  if (result.state() != kiln::v1::RUN_SUCCEEDED) {
    std::fprintf(stderr, "dag_run: run %s: %s\n", result.id().c_str(),
                 result.reason().c_str());
    return 1;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return Main(argc, argv); }
