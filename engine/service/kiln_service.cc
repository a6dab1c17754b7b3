// KilnService: admission and the unary run RPCs.
#include "engine/service/kiln_service.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

#include <algorithm>
#include <limits>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "engine/cas/file_io.h"
#include "engine/pipeline/loader.h"
#include "engine/pipeline/validate.h"
#include "engine/service/run_replies.h"
#include "engine/source/git_run_source.h"

namespace kiln::service {
namespace {

constexpr char kDefaultFilename[] = "pipeline.yaml";

void ToProto(const pipeline::Diagnostic& d, v1::Diagnostic* out) {
  out->set_file(d.file);
  out->set_line(d.line);
  out->set_column(d.column);
  out->set_path(d.path);
  out->set_message(d.message);
  out->set_text(d.ToString());
}

std::string FilenameOr(const std::string& name) {
  return name.empty() ? kDefaultFilename : name;
}

StreamLimits StreamLimitsOf(const ServiceOptions& options) {
  StreamLimits limits;
  limits.per_client = options.max_streams_per_client;
  limits.total = options.max_streams;
  limits.admin_reserve = options.admin_stream_reserve;
  return limits;
}

}  // namespace

absl::Status CheckMessageBounds(const v1::Pipeline& pipeline) {
  // The loader's bounds on a YAML pipeline, for the protobuf form: no larger
  // than the largest pipeline file, no more tasks or `needs` than its node
  // budget could describe, and a task cap that keeps validation and
  // planning cheap.
  const pipeline::LoadOptions limits;
  if (pipeline.ByteSizeLong() > limits.max_file_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "pipeline message is ", pipeline.ByteSizeLong(), " bytes; at most ",
        limits.max_file_bytes, " (as a pipeline file)"));
  }
  const int tasks = pipeline.tasks_size() + pipeline.finally_size();
  if (tasks > kMaxPipelineTasks) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "pipeline has ", tasks, " tasks; at most ", kMaxPipelineTasks));
  }
  size_t needs = 0;
  for (const v1::Task& t : pipeline.tasks()) needs += t.needs_size();
  for (const v1::Task& t : pipeline.finally()) needs += t.needs_size();
  if (needs > limits.max_nodes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "pipeline has ", needs, " needs entries; at most ", limits.max_nodes));
  }
  return absl::OkStatus();
}

grpc::Status ToGrpc(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()),
                      std::string(status.message()));
}

absl::StatusOr<std::unique_ptr<KilnService>> KilnService::Create(
    Engine* engine, ServiceOptions options) {
  return std::unique_ptr<KilnService>(
      new KilnService(engine, std::move(options)));
}

namespace {

int StartsOf(const ServiceOptions& options) {
  if (options.max_concurrent_starts > 0) return options.max_concurrent_starts;
  return std::max(2, static_cast<int>(std::thread::hardware_concurrency()));
}

}  // namespace

KilnService::KilnService(Engine* engine, ServiceOptions options)
    : engine_(engine),
      options_(std::move(options)),
      authorizer_(options_.tokens),
      limiter_(StreamLimitsOf(options_)),
      start_gate_(StartsOf(options_)),
      temp_budget_(
          std::make_shared<ByteBudget>(options_.max_upload_temp_bytes)),
      watch_budget_(std::make_shared<ByteBudget>(
          static_cast<int64_t>(options_.watch_total_bytes))) {}

absl::StatusOr<Principal> KilnService::Admit(grpc::ServerContext* context,
                                             absl::string_view method) const {
  std::string authorization;
  const auto& metadata = context->client_metadata();
  auto it = metadata.find("authorization");
  if (it != metadata.end()) {
    authorization.assign(it->second.data(), it->second.size());
  }
  absl::StatusOr<Principal> who = authorizer_.Authorize(authorization, method);
  if (!who.ok()) return who.status();
  if (shutting_down_) return absl::UnavailableError("server shutting down");
  return who;
}

absl::StatusOr<StreamLimiter::Slot> KilnService::AdmitStream(
    grpc::ServerContext* context, absl::string_view method) {
  absl::StatusOr<Principal> who = Admit(context, method);
  if (!who.ok()) return who.status();
  // On TCP a client is its token; on the unix socket, its connection.
  std::string client = authorizer_.requires_token()
                           ? absl::StrCat("token:", who->name)
                           : absl::StrCat("peer:", context->peer());
  return limiter_.Acquire(client, who->role == Role::kAdmin);
}

void KilnService::PrepareRunReply(v1::Run* run) {
  // Nothing that could hold a secret (a ListRuns summary without params):
  // no need to read the pipeline.
  if (run->trigger().params().empty() && run->tasks().empty()) {
    FitRun(run, options_.max_reply_bytes);
    return;
  }
  absl::StatusOr<v1::Pipeline> pipeline = engine_->GetPipeline(run->id());
  if (pipeline.ok()) {
    RedactSecrets(*pipeline, run);
  } else {
    // Unknown secrets: no trigger param value is sent.
    for (auto& [name, value] : *run->mutable_trigger()->mutable_params()) {
      value = kRedacted;
    }
  }
  FitRun(run, options_.max_reply_bytes);
}

bool KilnService::StreamOver(grpc::ServerContext* context) const {
  return shutting_down_ || context->IsCancelled();
}

grpc::Status KilnService::ValidatePipeline(
    grpc::ServerContext* context, const v1::ValidatePipelineRequest* request,
    v1::ValidatePipelineResponse* response) {
  if (auto who = Admit(context, "ValidatePipeline"); !who.ok()) {
    return ToGrpc(who.status());
  }
  std::vector<pipeline::Diagnostic> errors;
  switch (request->pipeline_case()) {
    case v1::ValidatePipelineRequest::kYaml: {
      pipeline::LoadedPipeline loaded = pipeline::LoadPipelineText(
          request->yaml(), FilenameOr(request->filename()));
      errors = std::move(loaded.errors);
      if (errors.empty()) {
        *response->mutable_pipeline() = loaded.pipeline;
        RedactSecretDefaults(response->mutable_pipeline());
      }
      break;
    }
    case v1::ValidatePipelineRequest::kMessage:
      if (absl::Status s = CheckMessageBounds(request->message()); !s.ok()) {
        return ToGrpc(s);
      }
      errors = pipeline::ValidatePipeline(request->message());
      if (errors.empty()) {
        *response->mutable_pipeline() = request->message();
        RedactSecretDefaults(response->mutable_pipeline());
      }
      break;
    default:
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          "set yaml or message");
  }
  response->set_valid(errors.empty());
  for (const pipeline::Diagnostic& d : errors) {
    ToProto(d, response->add_diagnostics());
  }
  return grpc::Status::OK;
}

absl::StatusOr<std::string> KilnService::MaterializeSource(
    const v1::SourceArtifact& source) {
  absl::StatusOr<cas::Digest> tree = cas::Digest::Parse(source.tree_digest());
  if (!tree.ok()) return tree.status();
  absl::StatusOr<cas::Digest> archive =
      cas::Digest::Parse(source.archive_digest());
  if (!archive.ok()) return archive.status();
  // Source archives come from clients: their own, tighter bounds.
  archive::ExtractLimits limits;
  limits.max_total_bytes = options_.max_source_bytes;
  limits.max_expansion_ratio = options_.max_source_expansion;
  // Extractions at once and their temporary space, over all clients: the
  // most this archive can expand to is reserved before anything is written.
  // (An archive not uploaded yet reserves the most; PutSource then says
  // what is missing.)
  int64_t reserve = limits.max_total_bytes;
  absl::StatusOr<std::unique_ptr<cas::BlobReader>> blob =
      engine_->OpenBlob(*archive);
  if (blob.ok()) {
    reserve = ExtractionReserve((*blob)->size(), limits.max_total_bytes,
                                limits.max_expansion_ratio,
                                limits.expansion_grace_bytes);
    blob->reset();
  } else if (!absl::IsNotFound(blob.status())) {
    return blob.status();
  }
  struct Reservation {
    std::atomic<int>* extractions;
    ByteBudget* budget;
    int64_t bytes = 0;
    ~Reservation() {
      extractions->fetch_sub(1);
      budget->Give(bytes);
    }
  } reservation{&extractions_, temp_budget_.get()};
  if (extractions_.fetch_add(1) >= options_.max_concurrent_extractions) {
    return absl::ResourceExhaustedError(
        absl::StrCat("too many source extractions in progress (limit ",
                     options_.max_concurrent_extractions,
                     ", --max-extractions); retry later"));
  }
  if (!temp_budget_->Take(reserve)) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "source extraction refused: it may take ", reserve,
        " bytes, and uploads and extractions in progress already reserve ",
        temp_budget_->used(), " bytes of temporary space (limit ",
        options_.max_upload_temp_bytes,
        ", --max-upload-temp-bytes); retry later"));
  }
  reservation.bytes = reserve;
  if (absl::Status s = CheckFreeSpace(
          absl::StrCat("source extraction (up to ", reserve, " bytes)"));
      !s.ok()) {
    return s;
  }
  return engine_->PutSource(*tree, *archive, limits);
}

absl::Status KilnService::CheckFreeSpace(absl::string_view what) const {
  if (options_.min_free_bytes <= 0) return absl::OkStatus();
  absl::StatusOr<int64_t> available = AvailableBytes(engine_->store_dir());
  if (!available.ok()) return available.status();
  const int64_t reserved = temp_budget_->used();
  if (*available - reserved >= options_.min_free_bytes) {
    return absl::OkStatus();
  }
  return absl::ResourceExhaustedError(
      absl::StrCat(what, " refused: the store's filesystem has ", *available,
                   " bytes available, requests in progress reserve ", reserved,
                   " of them, and it must keep ", options_.min_free_bytes,
                   " free (--min-free-bytes); retry later"));
}

absl::StatusOr<int64_t> AvailableBytes(const std::string& dir) {
  struct statvfs fs;
  if (statvfs(dir.c_str(), &fs) != 0) {
    return absl::InternalError(
        absl::StrCat("statvfs ", dir, ": ", strerror(errno)));
  }
  const uint64_t bytes = static_cast<uint64_t>(fs.f_bavail) * fs.f_frsize;
  return static_cast<int64_t>(
      std::min<uint64_t>(bytes, std::numeric_limits<int64_t>::max()));
}

int64_t ExtractionReserve(int64_t compressed, int64_t max_total,
                          int64_t max_ratio, int64_t grace) {
  if (max_ratio <= 0) return max_total;
  // Past `grace`, output is at most max_ratio x input (checked every MiB).
  const int64_t cap = std::numeric_limits<int64_t>::max() / max_ratio;
  const int64_t by_ratio =
      compressed >= cap ? max_total : compressed * max_ratio;
  return std::min(max_total, std::max(grace, by_ratio) + (int64_t{1} << 20));
}

grpc::Status KilnService::SubmitRun(grpc::ServerContext* context,
                                    const v1::SubmitRunRequest* request,
                                    v1::SubmitRunResponse* response) {
  if (auto who = Admit(context, "SubmitRun"); !who.ok()) {
    return ToGrpc(who.status());
  }
  std::string id;
  if (grpc::Status started = StartRun(context, request, &id); !started.ok()) {
    return started;
  }
  response->set_run_id(id);
  absl::StatusOr<v1::Run> state = engine_->GetRun(id);
  if (state.ok()) {
    PrepareRunReply(&*state);
    *response->mutable_run() = std::move(*state);
  }
  return grpc::Status::OK;
}

grpc::Status KilnService::SubmitAndWatchRun(
    grpc::ServerContext* context, const v1::SubmitRunRequest* request,
    grpc::ServerWriter<v1::RunEvent>* writer) {
  absl::StatusOr<StreamLimiter::Slot> slot =
      AdmitStream(context, "SubmitAndWatchRun");
  if (!slot.ok()) return ToGrpc(slot.status());
  std::string id;
  if (grpc::Status started = StartRun(context, request, &id); !started.ok()) {
    return started;
  }
  return StreamEvents(context, id, 0, writer);
}

grpc::Status KilnService::StartRun(grpc::ServerContext* context,
                                   const v1::SubmitRunRequest* request,
                                   std::string* run_id) {
  RunRequest run;
  run.trigger = request->trigger();
  std::string git_dir;
  if (request->has_git_source()) {
    if (request->has_source()) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          "set source or git_source, not both");
    }
    source::GitSourceSpec spec;
    spec.url = request->git_source().url();
    spec.ref = request->git_source().ref();
    spec.credentials_secret = request->git_source().credentials_secret();
    if (absl::Status s = CheckFreeSpace("git source fetch"); !s.ok()) {
      return ToGrpc(s);
    }
    absl::StatusOr<source::GitRunSource> git = source::CheckoutGitSource(
        options_.git.get(), engine_->store_dir(), spec);
    if (!git.ok()) return ToGrpc(git.status());
    git_dir = git->dir;
    source::FillTriggerFromGit(git->checkout, &run.trigger);
    run.source_dir = git_dir;
    if (request->pipeline_case() == v1::SubmitRunRequest::PIPELINE_NOT_SET) {
      absl::StatusOr<std::string> text =
          source::ReadPipelineFromTree(git_dir, FilenameOr(request->filename()),
                                       git->checkout.commit.revision,
                                       pipeline::LoadOptions().max_file_bytes);
      if (!text.ok()) {
        (void)cas::RemoveTree(git_dir);
        return ToGrpc(text.status());
      }
      pipeline::LoadedPipeline loaded =
          pipeline::LoadPipelineText(*text, FilenameOr(request->filename()));
      if (!loaded.ok()) {
        (void)cas::RemoveTree(git_dir);
        return ToGrpc(pipeline::DiagnosticsToStatus(loaded.errors));
      }
      run.pipeline = std::move(loaded.pipeline);
      run.source_map = loaded.source_map;
      run.validation = loaded.validation;
    }
  }
  // Any early return below leaves no git export behind.
  struct RemoveUnless {
    std::string* dir;
    ~RemoveUnless() {
      if (!dir->empty()) (void)cas::RemoveTree(*dir);
    }
  } remove_git_dir{&git_dir};
  switch (request->pipeline_case()) {
    case v1::SubmitRunRequest::PIPELINE_NOT_SET:
      if (!git_dir.empty()) break;  // read from the repository above
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          "set yaml or message (or git_source)");
    case v1::SubmitRunRequest::kYaml: {
      pipeline::LoadedPipeline loaded = pipeline::LoadPipelineText(
          request->yaml(), FilenameOr(request->filename()));
      if (!loaded.ok()) {
        return ToGrpc(pipeline::DiagnosticsToStatus(loaded.errors));
      }
      run.pipeline = std::move(loaded.pipeline);
      run.source_map = loaded.source_map;
      run.validation = loaded.validation;
      break;
    }
    case v1::SubmitRunRequest::kMessage:
      if (absl::Status s = CheckMessageBounds(request->message()); !s.ok()) {
        return ToGrpc(s);
      }
      run.pipeline = request->message();
      break;
  }
  run.idempotency_key = request->idempotency_key();
  run.keep_going = request->keep_going();
  if (request->has_source()) {
    absl::StatusOr<std::string> dir = MaterializeSource(request->source());
    if (!dir.ok()) return ToGrpc(dir.status());
    run.source_dir = *dir;
  }
  std::string source_dir = run.source_dir;
  git_dir.clear();  // from here on, source_dir's rules below apply
  AdmissionGate::Pass pass;
  absl::Status entered = start_gate_.Enter(
      "starting the run (kiln serve --max-starts)",
      absl::FromChrono(context->deadline()),
      [this, context] { return StreamOver(context); }, &pass);
  absl::StatusOr<std::shared_ptr<RunHandle>> handle =
      entered.ok() ? engine_->Submit(std::move(run))
                   : absl::StatusOr<std::shared_ptr<RunHandle>>(entered);
  pass = AdmissionGate::Pass();
  if (!handle.ok()) {
    if (!source_dir.empty()) (void)cas::RemoveTree(source_dir);
    return ToGrpc(handle.status());
  }
  const std::string& id = (*handle)->id();
  if (!source_dir.empty()) {
    // An idempotent resubmit returns the first run, with its own source.
    absl::StatusOr<std::string> recorded = engine_->GetSourceDir(id);
    if (recorded.ok() && *recorded != source_dir) {
      (void)cas::RemoveTree(source_dir);
    }
  }
  *run_id = id;
  return grpc::Status::OK;
}

grpc::Status KilnService::GetRun(grpc::ServerContext* context,
                                 const v1::GetRunRequest* request,
                                 v1::Run* response) {
  if (auto who = Admit(context, "GetRun"); !who.ok()) {
    return ToGrpc(who.status());
  }
  absl::StatusOr<v1::Run> run = engine_->GetRun(request->run_id());
  if (!run.ok()) return ToGrpc(run.status());
  PrepareRunReply(&*run);
  *response = std::move(*run);
  return grpc::Status::OK;
}

grpc::Status KilnService::GetRunTasks(grpc::ServerContext* context,
                                      const v1::GetRunTasksRequest* request,
                                      v1::GetRunTasksResponse* response) {
  if (auto who = Admit(context, "GetRunTasks"); !who.ok()) {
    return ToGrpc(who.status());
  }
  absl::StatusOr<v1::Run> run = engine_->GetRun(request->run_id());
  if (!run.ok()) return ToGrpc(run.status());
  absl::StatusOr<v1::Pipeline> pipeline = engine_->GetPipeline(run->id());
  if (pipeline.ok()) RedactSecrets(*pipeline, &*run);
  absl::StatusOr<v1::GetRunTasksResponse> page =
      PageTasks(*run, request->page_size(), request->page_token(),
                options_.max_reply_bytes);
  if (!page.ok()) return ToGrpc(page.status());
  *response = std::move(*page);
  return grpc::Status::OK;
}

grpc::Status KilnService::ListRuns(grpc::ServerContext* context,
                                   const v1::ListRunsRequest* request,
                                   v1::ListRunsResponse* response) {
  if (auto who = Admit(context, "ListRuns"); !who.ok()) {
    return ToGrpc(who.status());
  }
  store::RunFilter filter;
  if (request->state() != v1::RUN_STATE_UNSPECIFIED) {
    filter.state = request->state();
  }
  filter.pipeline_name = request->pipeline_name();
  absl::StatusOr<store::RunPage> page =
      engine_->ListRuns(filter, request->page_size(), request->page_token());
  if (!page.ok()) return ToGrpc(page.status());
  // Summaries, and at most kMaxReplyBytes a page: a page cut short by bytes
  // continues after its last run (the store's token is the last id).
  size_t bytes = 0;
  for (v1::Run& run : page->runs) {
    SummarizeRun(&run, options_.max_reply_bytes);
    PrepareRunReply(&run);
    size_t size = run.ByteSizeLong() + 8;
    if (response->runs_size() > 0 && bytes + size > options_.max_reply_bytes) {
      response->set_next_page_token(
          response->runs(response->runs_size() - 1).id());
      return grpc::Status::OK;
    }
    bytes += size;
    *response->add_runs() = std::move(run);
  }
  response->set_next_page_token(page->next_page_token);
  return grpc::Status::OK;
}

grpc::Status KilnService::CancelRun(grpc::ServerContext* context,
                                    const v1::CancelRunRequest* request,
                                    v1::CancelRunResponse* response) {
  if (auto who = Admit(context, "CancelRun"); !who.ok()) {
    return ToGrpc(who.status());
  }
  std::string reason = request->reason().empty()
                           ? std::string("cancelled through the service")
                           : request->reason();
  return ToGrpc(engine_->Cancel(request->run_id(), reason));
}

grpc::Status KilnService::DecideApproval(
    grpc::ServerContext* context, const v1::DecideApprovalRequest* request,
    v1::DecideApprovalResponse* response) {
  absl::StatusOr<Principal> who = Admit(context, "DecideApproval");
  if (!who.ok()) return ToGrpc(who.status());
  // The decision names the caller's principal, never a name it sent.
  absl::StatusOr<v1::ApprovalStatus> approval = engine_->DecideApproval(
      request->run_id(), request->task(), request->approve(), who->name,
      request->comment());
  if (!approval.ok()) return ToGrpc(approval.status());
  *response->mutable_approval() = std::move(*approval);
  return grpc::Status::OK;
}

grpc::Status KilnService::RetryRun(grpc::ServerContext* context,
                                   const v1::RetryRunRequest* request,
                                   v1::SubmitRunResponse* response) {
  if (auto who = Admit(context, "RetryRun"); !who.ok()) {
    return ToGrpc(who.status());
  }
  absl::StatusOr<std::shared_ptr<RunHandle>> handle =
      engine_->Retry(request->run_id());
  if (!handle.ok()) return ToGrpc(handle.status());
  response->set_run_id((*handle)->id());
  absl::StatusOr<v1::Run> state = engine_->GetRun((*handle)->id());
  if (state.ok()) {
    PrepareRunReply(&*state);
    *response->mutable_run() = std::move(*state);
  }
  return grpc::Status::OK;
}

}  // namespace kiln::service
