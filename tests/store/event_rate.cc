// Measures the run store's event throughput the way a 10,000-task run
// produces events (~4 per task: pending->running, running->succeeded, two
// log lines), appended in batches of 1 and of 100, and the action cache's
// lookup and put rates for 10,000 keys. Prints one line per figure.
//
// usage: event_rate [DIR]   (default: a fresh directory under $TMPDIR)
// Not a test: it asserts nothing about speed. bench/ may wrap it.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "engine/store/action_cache.h"
#include "engine/store/run_store.h"

namespace {

constexpr int kTasks = 10000;

std::vector<kiln::v1::RunEvent> EventsFor(int task) {
  std::vector<kiln::v1::RunEvent> events(4);
  std::string name = absl::StrCat("task-", task);
  events[0].mutable_task_state()->set_task(name);
  events[0].mutable_task_state()->set_state(kiln::v1::TASK_RUNNING);
  events[0].mutable_task_state()->set_attempt(1);
  events[1].mutable_log()->set_task(name);
  events[1].mutable_log()->set_text("compiling something");
  events[2].mutable_log()->set_task(name);
  events[2].mutable_log()->set_text("done");
  events[3].mutable_task_state()->set_task(name);
  events[3].mutable_task_state()->set_state(kiln::v1::TASK_SUCCEEDED);
  events[3].mutable_task_state()->set_attempt(1);
  return events;
}

int Fail(const absl::Status& s) {
  std::fprintf(stderr, "event_rate: %s\n", s.ToString().c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  std::string dir;
  if (argc > 1) {
    dir = argv[1];
  } else {
    const char* tmp = std::getenv("TMPDIR");
    dir = absl::StrCat(tmp ? tmp : "/tmp", "/kiln-event-rate-", getpid());
  }
  std::filesystem::remove_all(dir);
  auto store = kiln::store::RunStore::Open(dir);
  if (!store.ok()) return Fail(store.status());

  kiln::v1::Pipeline pipeline;
  pipeline.set_name("ten-thousand");
  for (int i = 0; i < kTasks; ++i) {
    pipeline.add_tasks()->set_name(absl::StrCat("task-", i));
  }
  for (int batch : {1, 100}) {
    absl::Time start = absl::Now();
    auto run = (*store)->CreateRun(pipeline, {}, ".", "");
    if (!run.ok()) return Fail(run.status());
    absl::Duration create = absl::Now() - start;

    std::vector<kiln::v1::RunEvent> all;
    for (int i = 0; i < kTasks; ++i) {
      for (auto& e : EventsFor(i)) all.push_back(std::move(e));
    }
    start = absl::Now();
    for (size_t i = 0; i < all.size(); i += batch) {
      std::vector<kiln::v1::RunEvent> chunk(
          all.begin() + i, all.begin() + std::min(all.size(), i + batch));
      auto appended = (*store)->AppendEvents(run->run_id, std::move(chunk));
      if (!appended.ok()) return Fail(appended.status());
    }
    absl::Duration took = absl::Now() - start;
    std::printf(
        "run_store append batch=%d: %zu events in %.2fs = %.0f events/s "
        "(CreateRun with %d tasks: %.0f ms)\n",
        batch, all.size(), absl::ToDoubleSeconds(took),
        all.size() / absl::ToDoubleSeconds(took), kTasks,
        absl::ToDoubleMilliseconds(create));
  }
  {
    absl::Time start = absl::Now();
    auto run = (*store)->ListRuns({}, 10, "");
    if (!run.ok()) return Fail(run.status());
    std::printf("run_store GetRun/ListRuns of 2 runs x %d tasks: %.0f ms\n",
                kTasks, absl::ToDoubleMilliseconds(absl::Now() - start));
  }

  auto cache = kiln::store::ActionCache::Open(dir);
  if (!cache.ok()) return Fail(cache.status());
  absl::Time start = absl::Now();
  for (int i = 0; i < kTasks; ++i) {
    kiln::store::ActionResult r;
    r.outputs["out"] = absl::StrCat("sha256:", i);
    r.pipeline_name = "ten-thousand";
    r.task_name = absl::StrCat("task-", i);
    r.components = {{"version", "1"}, {"kind", "run"}, {"argv", "x"}};
    absl::Status s = (*cache)->Put(absl::StrCat("key", i), r);
    if (!s.ok()) return Fail(s);
  }
  absl::Duration put = absl::Now() - start;
  start = absl::Now();
  for (int i = 0; i < kTasks; ++i) {
    auto hit = (*cache)->Lookup(absl::StrCat("key", i));
    if (!hit.ok()) return Fail(hit.status());
    if (!hit->has_value()) return Fail(absl::InternalError("lost a key"));
  }
  absl::Duration lookup = absl::Now() - start;
  std::printf("action_cache put: %.0f /s; lookup (hit): %.0f /s (%d keys)\n",
              kTasks / absl::ToDoubleSeconds(put),
              kTasks / absl::ToDoubleSeconds(lookup), kTasks);
  store->reset();
  cache->reset();
  std::filesystem::remove_all(dir);
  return 0;
}
