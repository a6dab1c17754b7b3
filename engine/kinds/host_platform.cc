// HostPlatform: what identifies the environment a task runs in, for keys.
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "engine/cas/digest.h"
#include "engine/kinds/kind_env.h"
#include "engine/kinds/run_defaults.h"

namespace kiln::kinds {
namespace {

std::string HashFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return "";
  cas::Sha256 sha;
  char buf[1 << 16];
  while (in) {
    in.read(buf, sizeof(buf));
    sha.Update(absl::string_view(buf, in.gcount()));
  }
  return sha.Finish().Hex();
}

// Resolves argv[0] against PATH like execvp would.
std::string FindBinary(const std::string& name, const std::string& path_env) {
  if (name.find('/') != std::string::npos) return name;
  for (absl::string_view dir : absl::StrSplit(path_env, ':')) {
    std::string candidate = absl::StrCat(dir.empty() ? "." : dir, "/", name);
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

}  // namespace

std::string HostPlatform::For(const Executor& executor, const v1::Task& task) {
  std::string platform = absl::StrCat(executor.Platform(), ";", kRunnerVersion);
  if (!task.has_run()) return platform;
  const v1::RunSpec& run = task.run();
  std::string image = run.image().empty() ? "host" : run.image();
  absl::StrAppend(&platform, ";image=", image);
  if (image != "host") return platform;
  // The host root is the image: identify it by its OS release and by the
  // binary the task invokes (what the key cannot otherwise see).
  MutexLock lock(&mu_);
  if (os_release_digest_.empty()) {
    os_release_digest_ = HashFile("/etc/os-release");
    if (os_release_digest_.empty()) os_release_digest_ = "none";
  }
  absl::StrAppend(&platform, ";os=", os_release_digest_.substr(0, 16));
  if (run.command_size() > 0) {
    std::string path_env = kDefaultPath;
    for (const auto& e : run.env()) {
      if (e.name() == "PATH") path_env = e.value();
    }
    // Resolved and hashed once per run (this object lives as long as the
    // run), as ninja examines each file once per build: a binary replaced
    // while the run is under way is seen by the next run.
    auto [it, added] =
        binary_digests_.try_emplace({run.command(0), std::move(path_env)});
    if (added) {
      std::string bin = FindBinary(run.command(0), it->first.second);
      struct stat st;
      if (!bin.empty() && bin[0] == '/' && stat(bin.c_str(), &st) == 0) {
        it->second = absl::StrCat(";bin=", HashFile(bin).substr(0, 16));
      }
    }
    absl::StrAppend(&platform, it->second);
  }
  return platform;
}

}  // namespace kiln::kinds
