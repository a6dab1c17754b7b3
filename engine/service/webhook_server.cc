#include "engine/service/webhook_server.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "engine/cas/file_io.h"
#include "engine/pipeline/loader.h"
#include "engine/service/listen_address.h"
#include "engine/source/git_run_source.h"
#include "engine/source/webhook_event.h"
#include "httplib.h"
#include "nlohmann/json.hpp"

namespace kiln::service {
namespace {

constexpr size_t kMaxRateSources = 10000;

void Reply(httplib::Response* res, int status, nlohmann::json body) {
  res->status = status;
  res->set_content(body.dump(), "application/json");
}

void ReplyError(httplib::Response* res, int status, const absl::Status& error) {
  Reply(res, status, {{"error", std::string(error.message())}});
}

int HttpStatus(const absl::Status& s) {
  switch (s.code()) {
    case absl::StatusCode::kInvalidArgument:
      return 400;
    case absl::StatusCode::kUnauthenticated:
      return 401;
    case absl::StatusCode::kPermissionDenied:
      return 403;
    case absl::StatusCode::kNotFound:
      return 422;  // the revision lacks something the delivery needs
    case absl::StatusCode::kResourceExhausted:
      return 429;
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded:
      return 503;
    default:
      return 500;
  }
}

absl::StatusOr<ListenAddress> ParseWebhookListen(const std::string& text) {
  std::string full = text;
  int port = 0;
  if (absl::StartsWith(text, ":")) {
    full = absl::StrCat("127.0.0.1", text);
  } else if (absl::SimpleAtoi(text, &port)) {
    full = absl::StrCat("127.0.0.1:", text);
  }
  absl::StatusOr<ListenAddress> address = ParseListenAddress(full);
  if (!address.ok() || address->unix_socket) {
    return absl::InvalidArgumentError(
        "--webhook-listen takes HOST:PORT or :PORT");
  }
  return address;
}

std::string ReadSmallFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return std::string(absl::StripAsciiWhitespace(s.str()));
}

// Writes `text` to `path` atomically and durably.
absl::Status WriteRecord(const std::string& path, const std::string& text) {
  std::string tmp = absl::StrCat(path, ".tmp.", getpid());
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return absl::InternalError(absl::StrCat("creating ", tmp));
  bool ok = write(fd, text.data(), text.size()) ==
                static_cast<ssize_t>(text.size()) &&
            fsync(fd) == 0;
  close(fd);
  if (!ok || rename(tmp.c_str(), path.c_str()) != 0) {
    unlink(tmp.c_str());
    return absl::InternalError(absl::StrCat("writing ", path));
  }
  return absl::OkStatus();
}

void DropOldRecords(const std::string& dir, absl::Duration ttl) {
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return;
  const time_t cutoff = absl::ToTimeT(absl::Now() - ttl);
  while (struct dirent* e = readdir(d)) {
    if (e->d_name[0] == '.') continue;
    struct stat st;
    if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
        S_ISREG(st.st_mode) && st.st_mtime < cutoff) {
      unlinkat(dirfd(d), e->d_name, 0);
    }
  }
  closedir(d);
}

}  // namespace

WebhookServer::WebhookServer(Engine* engine, WebhookOptions options)
    : engine_(engine),
      options_(std::move(options)),
      teardown_(std::make_unique<PreviewTeardown>(options_.teardown)) {}

absl::StatusOr<std::unique_ptr<WebhookServer>> WebhookServer::Start(
    Engine* engine, WebhookOptions options) {
  absl::StatusOr<ListenAddress> address = ParseWebhookListen(options.listen);
  if (!address.ok()) return address.status();
  const bool have_tls = !options.tls_cert.empty() && !options.tls_key.empty();
  // Deliveries are signed, so no token file is needed; TLS off loopback.
  if (absl::Status policy = CheckListenPolicy(*address, true, have_tls);
      !policy.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("--webhook-listen: ", policy.message()));
  }
  if (options.secrets == nullptr || options.fetcher == nullptr ||
      options.state_dir.empty()) {
    return absl::InvalidArgumentError(
        "webhooks need secrets, a git fetcher and a state directory");
  }
  for (const source::WebhookRepository& repo : options.config.repositories()) {
    if (absl::StatusOr<std::string> s = options.secrets->Get(repo.secret);
        !s.ok()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "webhook config: ", repo.url, ": ", s.status().message()));
    }
  }
  if (options.max_body_bytes < 1024 || options.rate_per_minute < 1 ||
      options.rate_burst < 1 || options.threads < 1) {
    return absl::InvalidArgumentError("webhook limits must be positive");
  }
  if (absl::Status s = cas::MakeDirs(options.state_dir); !s.ok()) return s;
  DropOldRecords(options.state_dir, options.delivery_ttl);

  std::unique_ptr<WebhookServer> server(
      new WebhookServer(engine, std::move(options)));
  const WebhookOptions& opts = server->options_;
  if (have_tls) {
    auto ssl = std::make_unique<httplib::SSLServer>(opts.tls_cert.c_str(),
                                                    opts.tls_key.c_str());
    if (!ssl->is_valid()) {
      return absl::InvalidArgumentError("webhook TLS: cannot load the key");
    }
    server->server_ = std::move(ssl);
  } else {
    server->server_ = std::make_unique<httplib::Server>();
  }
  httplib::Server& svr = *server->server_;
  const int threads = opts.threads;
  svr.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  // Over it httplib answers 413 before the handler runs.
  svr.set_payload_max_length(opts.max_body_bytes);
  svr.set_read_timeout(10, 0);
  svr.set_write_timeout(10, 0);
  svr.set_keep_alive_max_count(10);
  WebhookServer* self = server.get();
  svr.Post("/webhook",
           [self](const httplib::Request& req, httplib::Response& res) {
             self->Handle(req, &res);
           });
  signal(SIGPIPE, SIG_IGN);
  int port = address->port;
  if (port == 0) {
    port = svr.bind_to_any_port(address->host);
  } else if (!svr.bind_to_port(address->host, port)) {
    port = -1;
  }
  if (port <= 0) {
    return absl::UnavailableError(absl::StrCat(
        "webhooks: cannot listen on ", address->host, ":", address->port));
  }
  server->url_ =
      absl::StrCat(have_tls ? "https://" : "http://", address->host, ":", port);
  server->listener_ =
      std::thread([self] { self->server_->listen_after_bind(); });
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (!svr.is_running()) {
    if (absl::Now() > deadline) {
      return absl::DeadlineExceededError("webhooks: listener did not start");
    }
    absl::SleepFor(absl::Milliseconds(1));
  }
  return server;
}

WebhookServer::~WebhookServer() { Shutdown(); }

void WebhookServer::Shutdown() {
  if (stopping_.exchange(true)) return;
  if (server_ != nullptr) server_->stop();
  if (listener_.joinable()) listener_.join();
  if (teardown_ != nullptr) teardown_->Shutdown();
}

bool WebhookServer::Admit(const std::string& source, int* retry_after) {
  MutexLock lock(&mu_);
  const absl::Time now = absl::Now();
  if (buckets_.size() >= kMaxRateSources && buckets_.count(source) == 0) {
    buckets_.clear();  // bounded memory: forget every source
  }
  auto [it, fresh] = buckets_.try_emplace(source);
  Bucket& b = it->second;
  const double rate = options_.rate_per_minute / 60.0;  // tokens a second
  if (fresh) {
    b.tokens = options_.rate_burst;
  } else {
    b.tokens =
        std::min<double>(options_.rate_burst,
                         b.tokens + absl::ToDoubleSeconds(now - b.last) * rate);
  }
  b.last = now;
  if (b.tokens < 1) {
    *retry_after = static_cast<int>((1 - b.tokens) / rate) + 1;
    return false;
  }
  b.tokens -= 1;
  return true;
}

std::string WebhookServer::RecordPath(const std::string& provider,
                                      const std::string& delivery) const {
  return absl::StrCat(
      options_.state_dir, "/",
      source::GitFetcher::CacheKey(absl::StrCat(provider, ":", delivery)));
}

void WebhookServer::Handle(const httplib::Request& req,
                           httplib::Response* res) {
  int retry_after = 0;
  if (!Admit(req.remote_addr, &retry_after)) {
    res->set_header("Retry-After", std::to_string(retry_after));
    ReplyError(res, 429,
               absl::ResourceExhaustedError(
                   "too many webhook requests from this address; retry later"));
    return;
  }
  source::Headers headers;
  for (const auto& [name, value] : req.headers) {
    headers[absl::AsciiStrToLower(name)] = value;
  }
  absl::StatusOr<source::Provider> provider = source::DetectProvider(headers);
  if (!provider.ok()) return ReplyError(res, 400, provider.status());
  // Nothing unsigned goes further than this.
  if (!source::HasSignature(*provider, headers)) {
    return ReplyError(res, 401,
                      absl::UnauthenticatedError(absl::StrCat(
                          "the ", source::ProviderName(*provider),
                          " webhook carries no signature or token")));
  }
  absl::StatusOr<source::WebhookEvent> event =
      source::ParseWebhook(*provider, headers, req.body);
  if (!event.ok()) return ReplyError(res, 400, event.status());
  const source::WebhookRepository* repo =
      options_.config.Find(event->repository_urls);
  if (repo == nullptr) {
    return ReplyError(
        res, 404,
        absl::NotFoundError("the repository is not in the webhook config"));
  }
  absl::StatusOr<std::string> secret = options_.secrets->Get(repo->secret);
  if (!secret.ok()) return ReplyError(res, 500, secret.status());
  if (absl::Status s =
          source::VerifySignature(*provider, headers, req.body, *secret);
      !s.ok()) {
    return ReplyError(res, 401, s);
  }
  if (!event->ignored.empty()) {
    return Reply(res, 202, {{"ignored", event->ignored}});
  }
  const std::string provider_name = source::ProviderName(*provider);
  const std::string record = RecordPath(provider_name, event->delivery);
  if (std::string run_id = ReadSmallFile(record); !run_id.empty()) {
    return Reply(res, 200, {{"run_id", run_id}, {"redelivery", true}});
  }

  source::GitSourceSpec spec;
  spec.url = repo->fetch_url;
  spec.credentials_secret = repo->credentials;
  spec.fetch_ref = event->fetch_ref;
  spec.ref = event->revision.empty() ? event->fetch_ref : event->revision;
  spec.since = event->before;
  absl::StatusOr<source::GitRunSource> git = source::CheckoutGitSource(
      options_.fetcher.get(), engine_->store_dir(), spec);
  if (!git.ok()) return ReplyError(res, HttpStatus(git.status()), git.status());
  struct RemoveUnless {
    std::string dir;
    ~RemoveUnless() {
      if (!dir.empty()) (void)cas::RemoveTree(dir);
    }
  } cleanup{git->dir};

  RunRequest run;
  run.trigger.set_event(event->kind);
  run.trigger.set_branch(event->branch);
  if (event->kind == v1::BRANCH_DELETED) {
    // The source is the default branch; the revision is what was deleted.
    run.trigger.set_revision(event->before);
  }
  source::FillTriggerFromGit(git->checkout, &run.trigger);
  absl::StatusOr<std::string> text = source::ReadPipelineFromTree(
      git->dir, repo->pipeline, git->checkout.commit.revision,
      pipeline::LoadOptions().max_file_bytes);
  if (!text.ok())
    return ReplyError(res, HttpStatus(text.status()), text.status());
  pipeline::LoadedPipeline loaded =
      pipeline::LoadPipelineText(*text, repo->pipeline);
  if (!loaded.ok()) {
    return ReplyError(res, 422, pipeline::DiagnosticsToStatus(loaded.errors));
  }
  // A branch gone: its previews go too (in the background; the run below
  // still starts, for a pipeline's own teardown tasks).
  std::string teardown;
  if (event->kind == v1::PULL_REQUEST_CLOSED ||
      event->kind == v1::BRANCH_DELETED) {
    if (!PreviewTeardown::HasPreviews(loaded.pipeline)) {
      teardown = "no preview environments";
    } else if (teardown_->Enqueue(loaded.pipeline, run.trigger)) {
      teardown = "queued";
    } else {
      teardown = "refused (see the server log)";
    }
  }
  run.pipeline = std::move(loaded.pipeline);
  run.source_map = loaded.source_map;
  run.validation = loaded.validation;
  run.source_dir = git->dir;
  run.idempotency_key =
      absl::StrCat("webhook:", provider_name, ":", event->delivery);
  absl::StatusOr<std::shared_ptr<RunHandle>> handle =
      engine_->Submit(std::move(run));
  if (!handle.ok()) {
    return ReplyError(res, HttpStatus(handle.status()), handle.status());
  }
  const std::string id = (*handle)->id();
  absl::StatusOr<std::string> recorded = engine_->GetSourceDir(id);
  if (recorded.ok() && *recorded == cleanup.dir) cleanup.dir.clear();
  if (absl::Status s = WriteRecord(record, id); !s.ok()) {
    std::fprintf(stderr, "kiln serve: webhook delivery record: %s\n",
                 std::string(s.message()).c_str());
  }
  nlohmann::json reply = {
      {"run_id", id},
      {"event", event->kind == v1::PUSH                  ? "push"
                : event->kind == v1::TAG                 ? "tag"
                : event->kind == v1::PULL_REQUEST        ? "pull_request"
                : event->kind == v1::PULL_REQUEST_CLOSED ? "pull_request_closed"
                                                         : "branch_deleted"},
      {"revision", git->checkout.commit.revision}};
  if (!teardown.empty()) reply["preview_teardown"] = teardown;
  Reply(res, 201, std::move(reply));
}

}  // namespace kiln::service
