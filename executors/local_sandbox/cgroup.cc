#include "executors/local_sandbox/cgroup.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "base/status.h"

namespace kiln {
namespace sandbox {
namespace {

// "<what> <path>: <strerror(errno)>", coded by base/status.h's mapping.
absl::Status ErrnoStatus(absl::string_view what, const std::string& path) {
  return ::kiln::ErrnoStatus(errno, absl::StrCat(what, " ", path));
}

absl::Status EnsureDirectory(const std::string& path) {
  if (mkdir(path.c_str(), 0755) != 0 && errno != EEXIST) {
    return ErrnoStatus("mkdir", path);
  }
  return absl::OkStatus();
}

absl::Status WriteValue(const std::string& path, const std::string& value) {
  int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus("open", path);
  ssize_t n = write(fd, value.data(), value.size());
  int error = errno;
  close(fd);
  if (n != static_cast<ssize_t>(value.size())) {
    errno = error;
    return ErrnoStatus("write", path);
  }
  return absl::OkStatus();
}

// Value of `key` in a "key value" per line file, 0 if absent.
uint64_t ReadKeyed(const std::string& path, absl::string_view key) {
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    std::vector<absl::string_view> parts =
        absl::StrSplit(line, ' ', absl::SkipEmpty());
    uint64_t value = 0;
    if (parts.size() == 2 && parts[0] == key &&
        absl::SimpleAtoi(parts[1], &value)) {
      return value;
    }
  }
  return 0;
}

uint64_t ReadNumber(const std::string& path) {
  std::ifstream in(path);
  uint64_t value = 0;
  in >> value;
  return value;
}

}  // namespace

absl::Status ProbeCgroups(const std::string& root, const std::string& parent) {
  for (const char* controller : {"memory", "pids"}) {
    std::string dir = absl::StrCat(root, "/", controller);
    struct stat st;
    if (stat(dir.c_str(), &st) != 0) return ErrnoStatus("stat", dir);
    std::string parent_dir = absl::StrCat(dir, "/", parent);
    if (absl::Status s = EnsureDirectory(parent_dir); !s.ok()) return s;
    if (access(parent_dir.c_str(), W_OK) != 0) {
      return ErrnoStatus("access", parent_dir);
    }
  }
  // memory.use_hierarchy on the parent makes limits and OOM accounting
  // cover descendants on old kernels; it is already 1 on new ones.
  WriteValue(absl::StrCat(root, "/memory/", parent, "/memory.use_hierarchy"),
             "1")
      .IgnoreError();
  return absl::OkStatus();
}

int RemoveStaleCgroups(const std::string& root, const std::string& parent) {
  int removed = 0;
  for (const char* controller : {"memory", "pids"}) {
    std::string dir = absl::StrCat(root, "/", controller, "/", parent);
    DIR* d = opendir(dir.c_str());
    if (d == nullptr) continue;
    std::vector<std::string> stale;
    while (struct dirent* entry = readdir(d)) {
      absl::string_view name = entry->d_name;
      size_t dash = name.find('-');
      int64_t pid = 0;
      if (dash == absl::string_view::npos ||
          !absl::SimpleAtoi(name.substr(0, dash), &pid) || pid <= 0 ||
          pid > INT32_MAX) {
        continue;
      }
      if (kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) {
        stale.push_back(absl::StrCat(dir, "/", name));
      }
    }
    closedir(d);
    for (const std::string& path : stale) {
      if (rmdir(path.c_str()) == 0) ++removed;
    }
  }
  return removed;
}

absl::StatusOr<std::unique_ptr<TaskCgroup>> TaskCgroup::Create(
    const std::string& root, const std::string& parent, const std::string& name,
    uint64_t memory_bytes, uint32_t max_pids) {
  std::unique_ptr<TaskCgroup> cgroup(new TaskCgroup());
  if (memory_bytes > 0) {
    cgroup->memory_dir_ = absl::StrCat(root, "/memory/", parent, "/", name);
    if (absl::Status s = EnsureDirectory(cgroup->memory_dir_); !s.ok()) {
      return s;
    }
    cgroup->dirs_.push_back(cgroup->memory_dir_);
    std::string limit = absl::StrCat(memory_bytes);
    if (absl::Status s =
            WriteValue(cgroup->memory_dir_ + "/memory.limit_in_bytes", limit);
        !s.ok()) {
      return s;
    }
    // Without swap accounting the file is absent: nothing to cap then.
    std::string memsw = cgroup->memory_dir_ + "/memory.memsw.limit_in_bytes";
    if (access(memsw.c_str(), F_OK) == 0) {
      if (absl::Status s = WriteValue(memsw, limit); !s.ok()) return s;
    }
  }
  if (max_pids > 0) {
    cgroup->pids_dir_ = absl::StrCat(root, "/pids/", parent, "/", name);
    if (absl::Status s = EnsureDirectory(cgroup->pids_dir_); !s.ok()) return s;
    cgroup->dirs_.push_back(cgroup->pids_dir_);
    if (absl::Status s = WriteValue(cgroup->pids_dir_ + "/pids.max",
                                    absl::StrCat(max_pids + 1));
        !s.ok()) {
      return s;
    }
  }
  for (const std::string& dir : cgroup->dirs_) {
    std::string procs = dir + "/cgroup.procs";
    int fd = open(procs.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) return ErrnoStatus("open", procs);
    cgroup->procs_fds_.push_back(fd);
  }
  return cgroup;
}

void TaskCgroup::CloseProcsFds() {
  for (int fd : procs_fds_) close(fd);
  procs_fds_.clear();
}

TaskCgroup::~TaskCgroup() {
  CloseProcsFds();
  for (const std::string& dir : dirs_) {
    // The last processes may still be leaving the cgroup for a moment.
    for (int attempt = 0; attempt < 100; ++attempt) {
      if (rmdir(dir.c_str()) == 0 || errno == ENOENT) break;
      if (errno != EBUSY) break;
      absl::SleepFor(absl::Milliseconds(2));
    }
  }
}

uint64_t TaskCgroup::OomKills() const {
  if (memory_dir_.empty()) return 0;
  return ReadKeyed(memory_dir_ + "/memory.oom_control", "oom_kill");
}

uint64_t TaskCgroup::PidsLimitHits() const {
  if (pids_dir_.empty()) return 0;
  return ReadKeyed(pids_dir_ + "/pids.events", "max");
}

uint64_t TaskCgroup::MaxMemoryUsage() const {
  if (memory_dir_.empty()) return 0;
  return ReadNumber(memory_dir_ + "/memory.max_usage_in_bytes");
}

}  // namespace sandbox
}  // namespace kiln
