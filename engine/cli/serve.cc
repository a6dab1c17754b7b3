// `kiln serve`: the kiln.v1.Kiln gRPC service over a local engine.
//
// Listens on the store's unix socket by default (owner-only); TCP needs
// --token-file, and TLS unless the host is loopback. Unfinished runs are
// resumed at start. SIGINT/SIGTERM: stop accepting, end streams (watchers
// resume elsewhere or after a restart), shut the engine down within
// --grace. Prints "kiln: serving on ADDRESS" on stdout once listening.
// --http-listen also serves the web dashboard (engine/service/http) with
// the same tokens and TLS; it prints "kiln: dashboard on URL".
// --webhook-listen serves git webhooks (docs/webhooks.md); it prints
// "kiln: webhooks on URL".
#include <signal.h>

#include <algorithm>
#include <cstdio>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "engine/cas/store_dir.h"
#include "engine/cli/args.h"
#include "engine/cli/kube_executor.h"
#include "engine/cli/local_engine.h"
#include "engine/cli/registry_flags.h"
#include "engine/cli/serve_git_flags.h"
#include "engine/cli/state_file.h"
#include "engine/cli/verb.h"
#include "engine/service/agent_blob_server.h"
#include "engine/service/http/dashboard_server.h"
#include "engine/service/server.h"

namespace kiln::cli {
namespace {

int Fail(const absl::Status& status) {
  std::fprintf(stderr, "kiln serve: %s\n",
               std::string(status.message()).c_str());
  return kExitFailed;
}

// Resumes every unfinished run of the store; says which could not be
// resumed and why (another kiln process executing it, an unreadable
// record), so that a run left interrupted is never a silent one.
void ResumeUnfinishedRuns(Engine* engine) {
  absl::StatusOr<Engine::ResumeReport> report = engine->ResumeUnfinished();
  if (!report.ok()) {
    std::fprintf(stderr, "kiln serve: resuming runs: %s\n",
                 std::string(report.status().message()).c_str());
    return;
  }
  for (const auto& [id, why] : report->not_resumed) {
    std::fprintf(stderr, "kiln serve: run %s not resumed: %s\n", id.c_str(),
                 std::string(why.message()).c_str());
  }
  if (!report->resumed.empty()) {
    std::fprintf(stderr, "kiln serve: resumed %zu unfinished run(s)\n",
                 report->resumed.size());
  }
}

int ServeVerb(const std::vector<std::string>& argv) {
  Args args(
      "kiln serve [--store DIR] [--listen unix:PATH | HOST:PORT] "
      "[--token-file F] [--agent-token-file F] "
      "[--tls-cert C --tls-key K [--client-ca CA]] "
      "[--http-listen [HOST]:PORT [--public-url URL]] [--jobs N] "
      "[--grace DURATION]\n"
      "         [--executor NAME] [--kube-agent-image REF@sha256:DIGEST\n"
      "          [--kubeconfig F] [--kube-context C] [--namespace N]\n"
      "          --agent-listen HOST:PORT [--agent-endpoint HOST:PORT]\n"
      "          [--agent-tls-cert C --agent-tls-key K [--agent-ca CA]]]");
  args.Flag("store", "store directory (default $KILN_STORE or ~/.cache/kiln)");
  AddRegistryFlags(&args);
  AddServeGitFlags(&args);
  args.Flag("listen", "unix:PATH or HOST:PORT (default: unix:STORE/kiln.sock)");
  args.Flag("token-file", "TOKEN ROLE [NAME] lines; required for TCP");
  args.Flag("agent-token-file",
            "file whose first field is the token of role agent (pods' kiln "
            "agents: blob transfer only); with the kubernetes executor the "
            "default is STORE/kubernetes/agent-token, made once");
  args.Flag("executor",
            "the default executor of tasks and pipelines that name none: "
            "local-sandbox (default) or kubernetes");
  AddKubeFlags(&args);
  args.Flag("tls-cert", "PEM certificate chain (TLS)");
  args.Flag("tls-key", "PEM private key (TLS)");
  args.Flag("client-ca", "PEM CA that client certificates must chain to");
  args.Flag("http-listen",
            "also serve the web dashboard on HOST:PORT (:PORT = loopback; "
            "needs --token-file; TLS as for --listen)");
  args.Flag("public-url",
            "the dashboard's address as people reach it (http(s)://...), "
            "for the run links of pipeline notifications (${run.url})");
  args.Flag("http-threads",
            "dashboard connections served at once (default 32)");
  args.Flag("http-max-streams",
            "dashboard live streams (events, logs) at once (default 24)");
  args.Flag("jobs",
            "task commands running at once, per run (default 2; a finished "
            "command's outputs are stored without holding a slot)");
  args.Flag("grace", "how long shutdown waits for runs (default 30s)");
  args.Flag("max-streams-per-client",
            "open watch/log/blob streams per client (default 256)");
  args.Flag("max-streams",
            "open watch/log/blob streams in all (default 512; 64 of them "
            "kept for admins)");
  args.Flag("idle-timeout",
            "close connections with no call open this long (default 2m)");
  args.Flag("max-reply-bytes",
            "largest run reply; bigger task lists are paged (default 4 MiB)");
  args.Flag("max-uploads", "blob uploads in progress at once (default 16)");
  args.Flag("max-extractions", "source archives extracted at once (default 4)");
  args.Flag("max-starts",
            "runs being started at once; further submits wait their turn "
            "(default: the number of CPUs, at least 2)");
  args.Flag("max-upload-temp-bytes",
            "temporary space of all uploads and extractions in progress "
            "(default 32 GiB)");
  args.Flag("min-free-bytes",
            "free space the store's filesystem keeps: uploads and source "
            "extractions that would go below it are refused (default 1 GiB; "
            "0 = no check)");
  args.Flag("max-connections",
            "connections open at once, per listener (default 512)");
  args.Flag("max-source-bytes",
            "file content of a submitted source archive (default 4 GiB)");
  args.Flag("max-source-expansion",
            "how many times a source archive may expand when decompressed, "
            "past its first 64 MiB (default 1000)");
  args.Bool("reflection",
            "serve grpc.reflection on TCP too (unauthenticated; always on "
            "for a unix socket)");
  int code;
  if (!args.Parse(argv, &code)) return code;
  if (!args.positionals().empty()) {
    return args.UsageError("serve takes no positional arguments");
  }
  int64_t jobs = 2;
  if (absl::Status s = args.IntFlag("jobs", 1, kMaxJobs, &jobs); !s.ok()) {
    return args.UsageError(std::string(s.message()));
  }
  absl::StatusOr<KubeFlags> kube_flags = ReadKubeFlags(args);
  if (!kube_flags.ok()) {
    return args.UsageError(std::string(kube_flags.status().message()));
  }
  if (kube_flags->enabled && (!args.Has("agent-listen") ||
                              absl::EndsWith(kube_flags->agent_listen, ":0"))) {
    return args.UsageError(
        "the kubernetes executor of kiln serve needs --agent-listen "
        "HOST:PORT with a fixed port: pods of a run dial it again after a "
        "restart");
  }
  absl::Duration grace = absl::Seconds(30);
  if (args.Has("grace") &&
      (!absl::ParseDuration(args.Get("grace"), &grace) ||
       grace < absl::ZeroDuration() || grace > absl::Hours(1))) {
    return args.UsageError(
        "--grace must be a duration from 0s to 1h, such as 30s");
  }
  service::ServerOptions options;
  options.listen = args.Get("listen");
  options.token_file = args.Get("token-file");
  options.agent_token_file = args.Get("agent-token-file");
  options.tls_cert = args.Get("tls-cert");
  options.tls_key = args.Get("tls-key");
  options.client_ca = args.Get("client-ca");
  int64_t streams = options.service.max_streams_per_client;
  if (absl::Status s =
          args.IntFlag("max-streams-per-client", 1, 10000, &streams);
      !s.ok()) {
    return args.UsageError(std::string(s.message()));
  }
  options.service.max_streams_per_client = static_cast<int>(streams);
  if (args.Has("max-streams")) {
    if (!absl::SimpleAtoi(args.Get("max-streams"),
                          &options.service.max_streams) ||
        options.service.max_streams < 2) {
      return args.UsageError("--max-streams must be at least 2");
    }
    // An eighth (at least one) is kept for admins; threads follow.
    options.service.admin_stream_reserve =
        std::max(1, options.service.max_streams / 8);
    options.max_threads =
        std::max(options.max_threads, options.service.max_streams + 512);
  }
  if (args.Has("idle-timeout") &&
      (!absl::ParseDuration(args.Get("idle-timeout"),
                            &options.connection_idle) ||
       options.connection_idle < absl::Seconds(1))) {
    return args.UsageError("--idle-timeout must be a duration of 1s or more");
  }
  options.reflection_on_tcp = args.Has("reflection");
  if (args.Has("max-uploads") &&
      (!absl::SimpleAtoi(args.Get("max-uploads"),
                         &options.service.max_concurrent_uploads) ||
       options.service.max_concurrent_uploads < 1)) {
    return args.UsageError("--max-uploads must be positive");
  }
  int64_t extractions = options.service.max_concurrent_extractions;
  if (absl::Status s = args.IntFlag("max-extractions", 1, 1000, &extractions);
      !s.ok()) {
    return args.UsageError(std::string(s.message()));
  }
  options.service.max_concurrent_extractions = static_cast<int>(extractions);
  int64_t starts = options.service.max_concurrent_starts;
  if (absl::Status s = args.IntFlag("max-starts", 1, 1000, &starts); !s.ok()) {
    return args.UsageError(std::string(s.message()));
  }
  options.service.max_concurrent_starts = static_cast<int>(starts);
  if (absl::Status s =
          args.IntFlag("max-upload-temp-bytes", 1 << 20, int64_t{1} << 50,
                       &options.service.max_upload_temp_bytes);
      !s.ok()) {
    return args.UsageError(std::string(s.message()));
  }
  if (absl::Status s = args.IntFlag("min-free-bytes", 0, int64_t{1} << 60,
                                    &options.service.min_free_bytes);
      !s.ok()) {
    return args.UsageError(std::string(s.message()));
  }
  int64_t connections = options.max_connections;
  if (absl::Status s = args.IntFlag("max-connections", 1, 100000, &connections);
      !s.ok()) {
    return args.UsageError(std::string(s.message()));
  }
  options.max_connections = static_cast<int>(connections);
  if (absl::Status s =
          args.IntFlag("max-source-bytes", 1 << 20, int64_t{1} << 40,
                       &options.service.max_source_bytes);
      !s.ok()) {
    return args.UsageError(std::string(s.message()));
  }
  if (absl::Status s = args.IntFlag("max-source-expansion", 10, 1000000,
                                    &options.service.max_source_expansion);
      !s.ok()) {
    return args.UsageError(std::string(s.message()));
  }
  if (args.Has("max-reply-bytes")) {
    int64_t bytes = 0;
    if (!absl::SimpleAtoi(args.Get("max-reply-bytes"), &bytes) ||
        bytes < (16 << 10) || bytes > (6 << 20)) {
      return args.UsageError("--max-reply-bytes must be 16384..6291456");
    }
    options.service.max_reply_bytes = static_cast<size_t>(bytes);
  }

  service::http::DashboardOptions dashboard;
  dashboard.listen = args.Get("http-listen");
  dashboard.token_file = options.token_file;
  dashboard.tls_cert = options.tls_cert;
  dashboard.tls_key = options.tls_key;
  if (args.Has("http-listen") && dashboard.listen.empty()) {
    return args.UsageError("--http-listen needs [HOST]:PORT");
  }
  int64_t http_threads = dashboard.threads;
  if (absl::Status s = args.IntFlag("http-threads", 4, 1024, &http_threads);
      !s.ok()) {
    return args.UsageError(std::string(s.message()));
  }
  dashboard.threads = static_cast<int>(http_threads);
  int64_t http_streams =
      std::min<int64_t>(dashboard.max_streams, dashboard.threads * 3 / 4);
  if (absl::Status s = args.IntFlag("http-max-streams", 1,
                                    dashboard.threads - 2, &http_streams);
      !s.ok()) {
    return args.UsageError(std::string(s.message()));
  }
  dashboard.max_streams = static_cast<int>(http_streams);

  // Signals are taken by sigwait below; every thread inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  absl::StatusOr<std::string> store = cas::ResolveStoreDir(args.Get("store"));
  if (!store.ok()) return Fail(store.status());
  // The kubernetes executor is checked before the engine exists.
  std::unique_ptr<KubeExecutorWiring> kube;
  if (kube_flags->enabled) {
    auto prepared = KubeExecutorWiring::Prepare(*kube_flags);
    if (!prepared.ok()) return Fail(prepared.status());
    kube = *std::move(prepared);
  }
  LocalEngineOptions local;
  local.store_flag = *store;
  local.jobs = static_cast<int>(jobs);
  local.default_executor = args.Get("executor");
  local.public_url = args.Get("public-url");
  if (args.Has("public-url") &&
      !absl::StartsWith(local.public_url, "http://") &&
      !absl::StartsWith(local.public_url, "https://")) {
    return args.UsageError("--public-url must start with http:// or https://");
  }
  if (kube != nullptr) local.more_executors.push_back(kube->executor());
  if (!kube_flags->kubeconfig.empty()) {
    local.kubeconfig_paths = {kube_flags->kubeconfig};
  }
  local.kube_context = kube_flags->context;
  ReadRegistryFlags(args, &local);
  absl::StatusOr<ServeGit> git =
      ReadServeGitFlags(args, *store, options.service.max_source_bytes);
  if (!git.ok()) return args.UsageError(std::string(git.status().message()));
  options.service.git = git->fetcher;
  auto engine = MakeLocalEngine(local);
  if (!engine.ok()) return Fail(engine.status());
  // The agents' blob endpoint serves the engine's store: it stops first.
  struct StopFirst {
    KubeExecutorWiring* kube;
    ~StopFirst() {
      if (kube != nullptr) kube->Stop();
    }
  } stop_kube{kube.get()};
  if (kube != nullptr) {
    // One agent token for the life of the store, so that the pods of a run
    // still reach this server after a restart.
    absl::StatusOr<std::string> token = ReadOrCreateStateFile(
        options.agent_token_file.empty()
            ? absl::StrCat(*store, "/kubernetes/agent-token")
            : options.agent_token_file,
        [&]() -> absl::StatusOr<std::string> {
          if (!options.agent_token_file.empty()) {
            return absl::NotFoundError(absl::StrCat("--agent-token-file ",
                                                    options.agent_token_file,
                                                    ": no such file"));
          }
          return service::NewRandomToken();
        });
    if (!token.ok()) return Fail(token.status());
    if (absl::Status s = StartKubernetes(kube.get(), engine->get(), *token);
        !s.ok()) {
      return Fail(s);
    }
  }
  auto server = service::KilnServer::Start(engine->get(), options);
  if (!server.ok()) return Fail(server.status());
  auto hooks = StartWebhooks(args, engine->get(), *git, *store);
  if (!hooks.ok()) {
    (*server)->Shutdown(absl::Seconds(1));
    return Fail(hooks.status());
  }
  std::unique_ptr<service::http::DashboardServer> web;
  if (!dashboard.listen.empty()) {
    auto started =
        service::http::DashboardServer::Start(engine->get(), dashboard);
    if (!started.ok()) {
      (*server)->Shutdown(absl::Seconds(1));
      return Fail(started.status());
    }
    web = std::move(*started);
  }
  ResumeUnfinishedRuns(engine->get());
  if ((*server)->plaintext_tcp()) {
    std::fprintf(stderr,
                 "kiln serve: warning: TCP without TLS: traffic (tokens "
                 "included) is unencrypted; pass --tls-cert/--tls-key\n");
  }
  std::printf("kiln: serving on %s\n", (*server)->address().c_str());
  if (web != nullptr) {
    if (web->url().rfind("http://", 0) == 0) {
      std::fprintf(stderr,
                   "kiln serve: warning: the dashboard is plain HTTP "
                   "(loopback only); pass --tls-cert/--tls-key for HTTPS\n");
    }
    std::printf("kiln: dashboard on %s\n", web->url().c_str());
  }
  if (*hooks != nullptr) {
    std::printf("kiln: webhooks on %s\n", (*hooks)->url().c_str());
  }
  std::fflush(stdout);

  int sig = 0;
  sigwait(&signals, &sig);
  std::fprintf(stderr, "kiln serve: %s, shutting down\n",
               sig == SIGINT ? "interrupted" : "terminated");
  if (*hooks != nullptr) (*hooks)->Shutdown();
  if (web != nullptr) web->Shutdown();
  (*server)->Shutdown(absl::Seconds(2));
  (*engine)->Shutdown(grace);
  return kExitOk;
}

}  // namespace
}  // namespace kiln::cli

KILN_CLI_VERB(serve, "serve", "serve the kiln gRPC API over the local store",
              kiln::cli::ServeVerb);
