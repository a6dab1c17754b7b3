// `kiln stash` and `kiln cas`: artifacts and blobs in the
// local store, through kiln::Engine (Engine::OpenStore); `kiln unstash` is
// in artifacts.cc. Translation only.
#include <unistd.h>

#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/cas/store_dir.h"
#include "engine/cli/args.h"
#include "engine/cli/verb.h"
#include "engine/engine.h"

namespace kiln::cli {
namespace {

constexpr char kStoreHelp[] =
    "store directory (default $KILN_STORE, else $HOME/.cache/kiln)";

int Fail(const absl::Status& status) {
  std::fprintf(stderr, "kiln: %s\n", std::string(status.message()).c_str());
  return kExitFailed;
}

// The store named by --store, through the facade.
absl::StatusOr<std::unique_ptr<Engine>> OpenStore(const Args& args) {
  absl::StatusOr<std::string> dir = cas::ResolveStoreDir(args.Get("store"));
  if (!dir.ok()) return dir.status();
  return Engine::OpenStore(*dir);
}

int RunStash(const std::vector<std::string>& argv) {
  Args args(
      "kiln stash DIR [--path P]... [--store S]\n\n"
      "Stores the tree below DIR (or only the given paths in it) as an\n"
      "artifact and prints its tree digest (sha256:...).");
  args.Flag("store", kStoreHelp);
  args.Repeated("path", "stash only this path relative to DIR");
  int code = 0;
  if (!args.Parse(argv, &code)) return code;
  if (args.positionals().size() != 1) {
    return args.UsageError("stash takes exactly one DIR");
  }
  auto engine = OpenStore(args);
  if (!engine.ok()) return Fail(engine.status());
  absl::StatusOr<cas::StashResult> result =
      (*engine)->StashDirectory(args.positionals()[0], args.GetAll("path"));
  if (!result.ok()) return Fail(result.status());
  std::printf("%s\n", result->tree.ToString().c_str());
  return kExitOk;
}

int CasPut(const Args& args, Engine& store) {
  if (args.positionals().size() != 2) {
    return args.UsageError("cas put takes one FILE");
  }
  absl::StatusOr<cas::Digest> d = store.PutBlobFile(args.positionals()[1]);
  if (!d.ok()) return Fail(d.status());
  std::printf("%s\n", d->ToString().c_str());
  return kExitOk;
}

int CasGet(const Args& args, const Engine& store) {
  if (args.positionals().size() != 2) {
    return args.UsageError("cas get takes one DIGEST");
  }
  absl::StatusOr<cas::Digest> digest =
      cas::Digest::Parse(args.positionals()[1]);
  if (!digest.ok())
    return args.UsageError(std::string(digest.status().message()));
  absl::StatusOr<std::unique_ptr<cas::BlobReader>> reader =
      store.OpenBlob(*digest);
  if (!reader.ok()) return Fail(reader.status());
  // Bytes are streamed; a blob found corrupt at the end fails the command
  // (exit 1) after its bytes went out, so consumers must check the status.
  // Blobs that fit the buffer are verified before anything is written.
  std::string buf(4 << 20, '\0');
  size_t held = 0;
  while (true) {
    absl::StatusOr<size_t> n =
        (*reader)->Read(buf.data() + held, buf.size() - held);
    if (!n.ok()) return Fail(n.status());
    if (*n == 0) break;
    held += *n;
    if (held == buf.size()) {
      if (std::fwrite(buf.data(), 1, held, stdout) != held) {
        return Fail(absl::InternalError("write to stdout failed"));
      }
      held = 0;
    }
  }
  if (held > 0 && std::fwrite(buf.data(), 1, held, stdout) != held) {
    return Fail(absl::InternalError("write to stdout failed"));
  }
  if (std::fflush(stdout) != 0) {
    return Fail(absl::InternalError("write to stdout failed"));
  }
  return kExitOk;
}

int RunCas(const std::vector<std::string>& argv) {
  Args args(
      "kiln cas put FILE [--store S] | kiln cas get DIGEST [--store S]\n\n"
      "put stores FILE as a blob and prints its digest; get writes a\n"
      "verified blob to stdout.");
  args.Flag("store", kStoreHelp);
  int code = 0;
  if (!args.Parse(argv, &code)) return code;
  if (args.positionals().empty()) {
    return args.UsageError("cas needs a subcommand: put or get");
  }
  absl::StatusOr<std::unique_ptr<Engine>> store = OpenStore(args);
  if (!store.ok()) return Fail(store.status());
  const std::string& sub = args.positionals()[0];
  if (sub == "put") return CasPut(args, **store);
  if (sub == "get") return CasGet(args, **store);
  return args.UsageError(absl::StrCat("unknown cas subcommand \"", sub, "\""));
}

}  // namespace

KILN_CLI_VERB(stash, "stash", "store a directory tree as an artifact",
              RunStash);
KILN_CLI_VERB(cas, "cas", "put or get a blob in the content store", RunCas);

}  // namespace kiln::cli
