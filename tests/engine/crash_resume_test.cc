// kill -9 of `kiln run` at random moments, then `kiln run --resume RUN`:
// the store always opens, finished tasks are never executed again, the run
// completes, and no task process outlives the killed engine.
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "engine/store/run_store.h"
#include "gtest/gtest.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;

std::string KilnBinary() {
  return absl::StrCat(std::getenv("TEST_SRCDIR"), "/kiln/kiln");
}

std::string Tmp(const std::string& name) {
  std::string dir = absl::StrCat(std::getenv("TEST_TMPDIR"), "/", name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

// Starts kiln with stderr captured to `log`; returns its pid.
pid_t Spawn(const std::vector<std::string>& args, const std::string& log) {
  pid_t pid = fork();
  if (pid == 0) {
    FILE* f = freopen(log.c_str(), "w", stderr);
    (void)f;
    if (!freopen("/dev/null", "w", stdout)) _exit(127);
    std::vector<char*> argv;
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  return pid;
}

int WaitExit(pid_t pid) {
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

std::string RunIdFrom(const std::string& log) {
  std::ifstream in(log);
  std::string word;
  while (in >> word) {
    if (word == "run") {
      std::string id;
      in >> id;
      if (!id.empty() && id[0] == 'r') return id;
    }
  }
  return "";
}

bool ProcessWithTokenExists(const std::string& token,
                            const std::string& also = "") {
  DIR* d = opendir("/proc");
  if (d == nullptr) return false;
  bool found = false;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    // Read with read(2): a process may exit mid-read (ESRCH), which an
    // ifstream reports by throwing.
    std::string cmd;
    int fd = open(absl::StrCat("/proc/", e->d_name, "/cmdline").c_str(),
                  O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    char buf[4096];
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0) cmd.append(buf, n);
    close(fd);
    if (cmd.find(token) != std::string::npos &&
        cmd.find(also) != std::string::npos) {
      found = true;
    }
  }
  closedir(d);
  return found;
}

TEST(CrashResumeTest, KillNineThenResumeLoop) {
  std::string dir = Tmp("pipeline");
  std::string token = absl::StrCat("kiln-crash-token-", getpid());
  std::string yaml = "name: crashy\ntasks:\n";
  for (int i = 0; i < 6; ++i) {
    absl::StrAppend(&yaml, "  - name: t", i, "\n");
    if (i > 0) absl::StrAppend(&yaml, "    needs: [t", i - 1, "]\n");
    absl::StrAppend(&yaml, "    run:\n      command: [sh, -c, \"sleep 0.15 ",
                    token, " 2>/dev/null || sleep 0.15; echo t", i,
                    " > out\"]\n", "    outputs: [{artifact: a", i,
                    ", paths: [out]}]\n", "    cache: false\n");
  }
  std::ofstream(dir + "/pipeline.yaml") << yaml;

  // Each iteration kills the engine while task t(it % 6) runs (seen in
  // /proc: the event, not a guessed delay), a seeded random time into it.
  uint32_t seed = 12345;
  if (const char* env = std::getenv("KILN_TEST_SEED")) {
    seed = static_cast<uint32_t>(std::strtoul(env, nullptr, 10));
  }
  std::printf("crash_resume_test seed: %u (KILN_TEST_SEED)\n", seed);
  SCOPED_TRACE(absl::StrCat("seed ", seed, " (KILN_TEST_SEED)"));
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> delay_ms(0, 50);  // tasks take 150 ms
  int iterations = 12;
  for (int it = 0; it < iterations; ++it) {
    std::string store = Tmp(absl::StrCat("store", it));
    std::string log = absl::StrCat(store, "/first.log");
    pid_t pid = Spawn({KilnBinary(), "run", dir + "/pipeline.yaml", "--store",
                       store, "--jobs", "1"},
                      log);
    std::string victim = absl::StrCat("echo t", it % 6, " ");
    absl::Time started_by = absl::Now() + absl::Seconds(60);
    while (!ProcessWithTokenExists(token, victim) && absl::Now() < started_by) {
      absl::SleepFor(absl::Milliseconds(5));
    }
    bool victim_ran = ProcessWithTokenExists(token, victim);
    absl::SleepFor(absl::Milliseconds(delay_ms(rng)));
    kill(pid, SIGKILL);
    WaitExit(pid);
    ASSERT_TRUE(victim_ran)
        << "iteration " << it << ": task t" << it % 6 << " never started";

    // The store opens and is consistent.
    auto runs = store::RunStore::Open(store);
    ASSERT_TRUE(runs.ok()) << runs.status();
    std::string id = RunIdFrom(log);
    ASSERT_FALSE(id.empty())
        << "iteration " << it << ": a task ran but no run id was printed";
    auto before = (*runs)->GetRun(id);
    ASSERT_TRUE(before.ok()) << before.status();
    std::set<std::string> finished;
    for (const auto& t : before->tasks()) {
      if (t.state() == v1::TASK_SUCCEEDED) finished.insert(t.name());
    }
    auto last = (*runs)->LastSequence(id);
    ASSERT_TRUE(last.ok());
    runs->reset();

    // No task process survives the engine.
    absl::Time deadline = absl::Now() + absl::Seconds(5);
    while (ProcessWithTokenExists(token) && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(50));
    }
    EXPECT_FALSE(ProcessWithTokenExists(token)) << "iteration " << it;

    std::string log2 = absl::StrCat(store, "/resume.log");
    int code = WaitExit(Spawn(
        {KilnBinary(), "run", "--resume", id, "--store", store, "--jobs", "1"},
        log2));
    EXPECT_EQ(code, 0) << "iteration " << it;

    auto reopened = store::RunStore::Open(store);
    ASSERT_TRUE(reopened.ok());
    auto after = (*reopened)->GetRun(id);
    ASSERT_TRUE(after.ok());
    EXPECT_EQ(after->state(), v1::RUN_SUCCEEDED) << "iteration " << it;
    auto events = (*reopened)->ReadEvents(id, *last, 100000);
    ASSERT_TRUE(events.ok());
    uint64_t expect_seq = *last + 1;
    for (const auto& e : *events) {
      EXPECT_EQ(e.sequence(), expect_seq++);
      if (e.has_task_state() && e.task_state().state() == v1::TASK_RUNNING) {
        EXPECT_EQ(finished.count(e.task_state().task()), 0u)
            << e.task_state().task() << " ran again after the crash";
      }
    }
  }
}

TEST(CrashResumeTest, TasksDieWithAKilledEngine) {
  std::string dir = Tmp("long");
  std::string token = absl::StrCat("kiln-orphan-token-", getpid());
  std::ofstream(dir + "/pipeline.yaml")
      << "name: long\ntasks:\n  - name: sleeper\n    run:\n      command: "
         "[sh, -c, \"sleep 30; echo "
      << token << "\"]\n";
  std::string store = Tmp("long-store");
  pid_t pid =
      Spawn({KilnBinary(), "run", dir + "/pipeline.yaml", "--store", store},
            store + "/log");
  absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (!ProcessWithTokenExists(token) && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  ASSERT_TRUE(ProcessWithTokenExists(token)) << "the task never started";
  kill(pid, SIGKILL);
  WaitExit(pid);
  deadline = absl::Now() + absl::Seconds(3);
  while (ProcessWithTokenExists(token) && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_FALSE(ProcessWithTokenExists(token))
      << "the task outlived the killed engine";
}

}  // namespace
}  // namespace kiln
