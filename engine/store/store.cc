#include "engine/store/store.h"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <filesystem>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/cas/beneath.h"
#include "engine/store/key_file.h"
#include "engine/store/log_file.h"

namespace kiln::store {

absl::StatusOr<std::unique_ptr<Store>> Store::Open(const std::string& dir) {
  if (dir.empty()) return absl::InvalidArgumentError("no store directory");
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  std::string abs = std::filesystem::absolute(dir, ec).lexically_normal();
  if (abs.size() > 1 && abs.back() == '/') abs.pop_back();
  auto runs = RunStore::Open(abs);
  if (!runs.ok()) return runs.status();
  auto cache = ActionCache::Open(abs);
  if (!cache.ok()) return cache.status();
  auto artifacts = cas::ArtifactStore::Open(abs);
  if (!artifacts.ok()) return artifacts.status();
  return std::unique_ptr<Store>(new Store(std::move(abs), std::move(*runs),
                                          std::move(*cache),
                                          std::move(*artifacts)));
}

bool Store::HasRunStore(const std::string& dir) {
  return access((dir + "/runs.db").c_str(), F_OK) == 0;
}

Store::Store(std::string dir, std::unique_ptr<RunStore> runs,
             std::unique_ptr<ActionCache> cache,
             std::unique_ptr<cas::ArtifactStore> artifacts)
    : dir_(std::move(dir)),
      runs_(std::move(runs)),
      cache_(std::move(cache)),
      artifacts_(std::move(artifacts)) {}

absl::StatusOr<std::string> Store::HmacKey() const {
  return LoadOrCreateKey(
      dir_ + "/secret.key",
      "cache keys of tasks that use secret params change, so those tasks "
      "miss the cache once");
}

std::string Store::AttemptLogPath(const std::string& run_id,
                                  const std::string& task,
                                  uint32_t attempt) const {
  return absl::StrCat(dir_, "/", AttemptLogRelativePath(run_id, task, attempt));
}

namespace {

std::vector<std::string> Entries(int dir_fd) {
  std::vector<std::string> out;
  DIR* d = fdopendir(fcntl(dir_fd, F_DUPFD_CLOEXEC, 0));
  if (d == nullptr) return out;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] != '.') out.emplace_back(e->d_name);
  }
  closedir(d);
  return out;
}

}  // namespace

void Store::SweepDeadTemps() const {
  absl::StatusOr<cas::UniqueFd> store = cas::OpenTrustedDir(dir_);
  if (!store.ok()) return;
  for (const char* sub : {"sources", "work"}) {
    absl::StatusOr<cas::UniqueFd> dir = cas::OpenDirBeneath(store->get(), sub);
    if (!dir.ok()) continue;
    cas::SweepDeadTemps(dir->get()).IgnoreError();
    if (std::string(sub) != "work") continue;
    for (const std::string& run : Entries(dir->get())) {
      absl::StatusOr<cas::UniqueFd> run_dir =
          cas::OpenDirBeneath(dir->get(), run);
      if (run_dir.ok()) cas::SweepDeadTemps(run_dir->get()).IgnoreError();
    }
  }
}

}  // namespace kiln::store
