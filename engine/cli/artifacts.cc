// `kiln artifacts RUN [TASK]` and `kiln unstash`: a run's task outputs, in
// the local store or (with --server/--token-file/--remote) from a
// `kiln serve`, through cli::Client. Translation only.
#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "engine/cas/store_dir.h"
#include "engine/cli/args.h"
#include "engine/cli/client_connect.h"
#include "engine/cli/kiln_client.h"
#include "engine/cli/verb.h"
#include "engine/engine.h"
#include "nlohmann/json.hpp"

namespace kiln::cli {
namespace {

int Fail(const absl::Status& status) {
  std::fprintf(stderr, "kiln: %s\n", std::string(status.message()).c_str());
  return kExitFailed;
}

bool WantsServer(const Args& args) {
  return args.Has("server") || args.Has("token-file") || args.Has("remote");
}

// The client the verb talks to; `local` holds the store it opened.
absl::StatusOr<std::unique_ptr<Client>> OpenClient(
    const Args& args, std::unique_ptr<Engine>* local) {
  if (WantsServer(args)) return ConnectClient(args);
  absl::StatusOr<std::string> dir = cas::ResolveStoreDir(args.Get("store"));
  if (!dir.ok()) return dir.status();
  if (!Engine::HasRunStore(*dir)) {
    return absl::NotFoundError(absl::StrCat("no run store in ", *dir));
  }
  absl::StatusOr<std::unique_ptr<Engine>> opened = Engine::OpenStore(*dir);
  if (!opened.ok()) return opened.status();
  *local = std::move(*opened);
  return NewLocalClient(local->get());
}

nlohmann::json ToJson(const ArtifactInfo& a) {
  nlohmann::json j = {{"task", a.task},
                      {"name", a.name},
                      {"digest", a.tree.ToString()},
                      {"stored", a.stored}};
  if (a.stored) {
    j["archive_digest"] = a.archive.ToString();
    j["archive_bytes"] = a.archive.size();
    j["files"] = a.files;
    j["file_bytes"] = a.file_bytes;
    j["directories"] = a.directories;
    j["symlinks"] = a.symlinks;
  }
  return j;
}

int Artifacts(const std::vector<std::string>& argv) {
  Args args(
      "kiln artifacts RUN [TASK] [--json] [--store DIR] [--server ADDR]\n\n"
      "Lists the output artifacts of a run's tasks (or only TASK's): task,\n"
      "artifact name, tree digest, size (bytes of file content) and files.\n"
      "Fetch one with `kiln unstash RUN/TASK/ARTIFACT DIR`.");
  AddClientFlags(&args);
  args.Bool("remote", "ask the server (implied by --server/--token-file)");
  args.Bool("json", "print a JSON array");
  int code = kExitOk;
  if (!args.Parse(argv, &code)) return code;
  if (args.positionals().empty() || args.positionals().size() > 2) {
    return args.UsageError("artifacts takes RUN and an optional TASK");
  }
  std::unique_ptr<Engine> local;
  absl::StatusOr<std::unique_ptr<Client>> client = OpenClient(args, &local);
  if (!client.ok()) return Fail(client.status());
  absl::StatusOr<std::vector<ArtifactInfo>> listed = (*client)->ListArtifacts(
      args.positionals()[0],
      args.positionals().size() == 2 ? args.positionals()[1] : "");
  if (!listed.ok()) return Fail(listed.status());
  if (args.Has("json")) {
    nlohmann::json out = nlohmann::json::array();
    for (const ArtifactInfo& a : *listed) out.push_back(ToJson(a));
    std::puts(out.dump(2).c_str());
    return kExitOk;
  }
  if (listed->empty()) {
    std::fprintf(stderr, "kiln: no output artifacts\n");
    return kExitOk;
  }
  size_t task_width = 4, name_width = 8;
  for (const ArtifactInfo& a : *listed) {
    task_width = std::max(task_width, a.task.size());
    name_width = std::max(name_width, a.name.size());
  }
  std::printf("%-*s  %-*s  %-71s  %12s  %7s\n", static_cast<int>(task_width),
              "TASK", static_cast<int>(name_width), "ARTIFACT", "DIGEST",
              "SIZE", "FILES");
  for (const ArtifactInfo& a : *listed) {
    std::string size = a.stored ? absl::StrCat(a.file_bytes) : "-";
    std::string files = a.stored ? absl::StrCat(a.files) : "(no longer stored)";
    std::printf("%-*s  %-*s  %-71s  %12s  %7s\n", static_cast<int>(task_width),
                a.task.c_str(), static_cast<int>(name_width), a.name.c_str(),
                a.tree.ToString().c_str(), size.c_str(), files.c_str());
  }
  return kExitOk;
}

int Unstash(const std::vector<std::string>& argv) {
  Args args(
      "kiln unstash RUN/TASK/ARTIFACT DIR [--force] [--store S] [--server A]\n"
      "kiln unstash DIGEST DIR [--store S]\n\n"
      "Extracts output ARTIFACT of TASK in RUN (see `kiln artifacts`), or\n"
      "the artifact with tree digest DIGEST, into DIR. DIR must be new or an\n"
      "empty directory unless --force: then what is at DIR is replaced (a\n"
      "symlink at DIR is replaced, never followed). The extracted tree is\n"
      "verified against the artifact's digest. With --server the artifact\n"
      "is downloaded (into the local store) from `kiln serve`.");
  AddClientFlags(&args);
  args.Bool("remote", "ask the server (implied by --server/--token-file)");
  args.Bool("force", "replace DIR if it exists and is not empty");
  int code = kExitOk;
  if (!args.Parse(argv, &code)) return code;
  if (args.positionals().size() != 2) {
    return args.UsageError(
        "unstash takes RUN/TASK/ARTIFACT (or DIGEST) and DIR");
  }
  const std::string& what = args.positionals()[0];
  const std::string& dir = args.positionals()[1];
  const bool replace = args.Has("force");
  if (absl::StartsWith(what, "sha256:")) {
    if (WantsServer(args)) {
      return args.UsageError(
          "unstash DIGEST reads the local store; with a server name the "
          "output as RUN/TASK/ARTIFACT");
    }
    absl::StatusOr<cas::Digest> digest = cas::Digest::Parse(what);
    if (!digest.ok()) {
      return args.UsageError(std::string(digest.status().message()));
    }
    absl::StatusOr<std::string> store = cas::ResolveStoreDir(args.Get("store"));
    if (!store.ok()) return Fail(store.status());
    absl::StatusOr<std::unique_ptr<Engine>> engine = Engine::OpenStore(*store);
    if (!engine.ok()) return Fail(engine.status());
    absl::Status st = (*engine)->UnstashArtifactInto(*digest, dir, replace);
    return st.ok() ? kExitOk : Fail(st);
  }
  // RUN/TASK/ARTIFACT: run ids and task names hold no '/'; the artifact is
  // the rest. The names are only looked up, never used as paths.
  std::vector<std::string> parts =
      absl::StrSplit(what, absl::MaxSplits('/', 2));
  if (parts.size() != 3 || parts[0].empty() || parts[1].empty() ||
      parts[2].empty()) {
    return args.UsageError(absl::StrCat(
        "\"", what, "\": expected RUN/TASK/ARTIFACT or sha256:DIGEST"));
  }
  std::unique_ptr<Engine> local;
  absl::StatusOr<std::unique_ptr<Client>> client = OpenClient(args, &local);
  if (!client.ok()) return Fail(client.status());
  absl::StatusOr<ArtifactInfo> got =
      (*client)->UnstashOutput(parts[0], parts[1], parts[2], dir, replace);
  if (!got.ok()) return Fail(got.status());
  std::fprintf(stderr, "kiln: %s/%s (%s, %lld files) -> %s\n",
               got->task.c_str(), got->name.c_str(),
               got->tree.ToString().c_str(), static_cast<long long>(got->files),
               dir.c_str());
  return kExitOk;
}

}  // namespace

KILN_CLI_VERB(artifacts, "artifacts", "list the output artifacts of a run",
              Artifacts);
KILN_CLI_VERB(unstash, "unstash",
              "extract a task's output (or an artifact) into a directory",
              Unstash);

}  // namespace kiln::cli
