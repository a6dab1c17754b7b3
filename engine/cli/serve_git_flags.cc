#include "engine/cli/serve_git_flags.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace kiln::cli {

void AddServeGitFlags(Args* args) {
  args->Flag("secrets-dir",
             "directory of secrets, one file per secret (owner-only): git "
             "credentials and webhook secrets");
  args->Bool("git-allow-local",
             "let git sources name file:// URLs and server paths (any "
             "client could then read any repository on this host)");
  args->Repeated("git-ssh-host-key",
                 "HOST=SHA256:FINGERPRINT of an ssh host key to trust");
  args->Flag("git-max-fetch-bytes",
             "bytes one git fetch may receive "
             "(default 2 GiB)");
  args->Flag("git-fetch-timeout", "wall time of one git fetch (default 10m)");
  args->Flag("git-max-clone-bytes", "size of one cached clone (default 8 GiB)");
  args->Flag("git-max-clones", "cached clones kept (default 64)");
  args->Flag("webhook-listen",
             "serve GitHub/GitLab/Gitea webhooks on HOST:PORT (:PORT = "
             "loopback; TLS as for --listen); needs --webhook-config");
  args->Flag("webhook-config",
             "repositories: URL secret=NAME [pipeline=PATH] [fetch=URL] "
             "[credentials=NAME] lines");
  args->Flag("webhook-max-body-bytes",
             "largest webhook body; bigger gets 413 (default 1 MiB)");
  args->Flag("webhook-rate",
             "webhook requests a minute per source address (default 60)");
}

absl::StatusOr<ServeGit> ReadServeGitFlags(const Args& args,
                                           const std::string& store_dir,
                                           int64_t max_source_bytes) {
  ServeGit out;
  auto secrets = std::make_shared<source::Secrets>();
  if (args.Has("secrets-dir")) {
    absl::StatusOr<source::Secrets> loaded =
        source::Secrets::Load(args.Get("secrets-dir"));
    if (!loaded.ok()) return loaded.status();
    *secrets = std::move(*loaded);
  }
  out.secrets = secrets;
  source::GitFetchOptions git;
  git.cache_dir = absl::StrCat(store_dir, "/git");
  git.allow_local = args.Has("git-allow-local");
  git.secrets = secrets;
  git.export_limits.max_bytes = max_source_bytes;
  for (const std::string& entry : args.GetAll("git-ssh-host-key")) {
    std::pair<std::string, std::string> kv =
        absl::StrSplit(entry, absl::MaxSplits('=', 1));
    if (kv.first.empty() || kv.second.rfind("SHA256:", 0) != 0) {
      return absl::InvalidArgumentError(
          "--git-ssh-host-key takes HOST=SHA256:FINGERPRINT");
    }
    git.ssh_host_keys[kv.first].insert(kv.second);
  }
  if (absl::Status s = args.IntFlag("git-max-fetch-bytes", 1 << 20,
                                    int64_t{1} << 40, &git.max_fetch_bytes);
      !s.ok()) {
    return absl::InvalidArgumentError(s.message());
  }
  if (absl::Status s = args.IntFlag("git-max-clone-bytes", 1 << 20,
                                    int64_t{1} << 42, &git.max_clone_bytes);
      !s.ok()) {
    return absl::InvalidArgumentError(s.message());
  }
  int64_t clones = git.max_cached_clones;
  if (absl::Status s = args.IntFlag("git-max-clones", 1, 100000, &clones);
      !s.ok()) {
    return absl::InvalidArgumentError(s.message());
  }
  git.max_cached_clones = static_cast<int>(clones);
  if (args.Has("git-fetch-timeout") &&
      (!absl::ParseDuration(args.Get("git-fetch-timeout"),
                            &git.fetch_timeout) ||
       git.fetch_timeout < absl::Seconds(1) ||
       git.fetch_timeout > absl::Hours(6))) {
    return absl::InvalidArgumentError(
        "--git-fetch-timeout must be a duration from 1s to 6h");
  }
  absl::StatusOr<std::unique_ptr<source::GitFetcher>> fetcher =
      source::GitFetcher::Create(std::move(git));
  if (!fetcher.ok()) return fetcher.status();
  out.fetcher = std::move(*fetcher);
  return out;
}

absl::StatusOr<std::unique_ptr<service::WebhookServer>> StartWebhooks(
    const Args& args, Engine* engine, const ServeGit& git,
    const std::string& store_dir) {
  if (!args.Has("webhook-listen")) {
    if (args.Has("webhook-config")) {
      return absl::InvalidArgumentError(
          "--webhook-config needs --webhook-listen");
    }
    return std::unique_ptr<service::WebhookServer>();
  }
  if (!args.Has("webhook-config")) {
    return absl::InvalidArgumentError(
        "--webhook-listen needs --webhook-config");
  }
  service::WebhookOptions options;
  options.listen = args.Get("webhook-listen");
  options.tls_cert = args.Get("tls-cert");
  options.tls_key = args.Get("tls-key");
  absl::StatusOr<source::WebhookConfig> config =
      source::WebhookConfig::ReadFile(args.Get("webhook-config"));
  if (!config.ok()) return config.status();
  options.config = std::move(*config);
  options.secrets = git.secrets;
  options.fetcher = git.fetcher;
  options.state_dir = absl::StrCat(store_dir, "/webhooks");
  int64_t body = static_cast<int64_t>(options.max_body_bytes);
  if (absl::Status s =
          args.IntFlag("webhook-max-body-bytes", 1024, 64 << 20, &body);
      !s.ok()) {
    return absl::InvalidArgumentError(s.message());
  }
  options.max_body_bytes = static_cast<size_t>(body);
  int64_t rate = options.rate_per_minute;
  if (absl::Status s = args.IntFlag("webhook-rate", 1, 100000, &rate);
      !s.ok()) {
    return absl::InvalidArgumentError(s.message());
  }
  options.rate_per_minute = static_cast<int>(rate);
  // Previews of a closed pull request / deleted branch are torn down in
  // the cluster of serve's deploys (docs/environments.md).
  if (args.Has("kubeconfig")) {
    options.teardown.kubeconfig_paths = {args.Get("kubeconfig")};
  }
  options.teardown.kube_context = args.Get("kube-context");
  return service::WebhookServer::Start(engine, std::move(options));
}

}  // namespace kiln::cli
