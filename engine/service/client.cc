#include "engine/service/client.h"

#include <deque>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "base/mutex.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"

namespace kiln::service {
namespace {

// Chunks a download receives ahead of its hashing (memory: this many
// messages, each under the 8 MiB receive limit; 1 MiB from kiln serve).
constexpr size_t kDownloadChunksAhead = 8;

bool IsFinal(v1::RunState state) {
  return state == v1::RUN_SUCCEEDED || state == v1::RUN_FAILED ||
         state == v1::RUN_CANCELLED || state == v1::RUN_TIMED_OUT;
}

// Errors after which a watch resumes rather than fails.
bool Resumable(grpc::StatusCode code) {
  return code == grpc::StatusCode::UNAVAILABLE ||
         code == grpc::StatusCode::RESOURCE_EXHAUSTED ||
         code == grpc::StatusCode::CANCELLED ||
         code == grpc::StatusCode::DEADLINE_EXCEEDED ||
         code == grpc::StatusCode::OK;  // a stream that ended early
}

}  // namespace

absl::StatusOr<std::string> ReadTokenFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  std::stringstream text;
  text << in.rdbuf();
  for (absl::string_view line : absl::StrSplit(text.str(), '\n')) {
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line[0] == '#') continue;
    std::vector<absl::string_view> fields =
        absl::StrSplit(line, absl::ByAnyChar(" \t"), absl::SkipEmpty());
    return std::string(fields[0]);
  }
  return absl::InvalidArgumentError(absl::StrCat(path, ": no token"));
}

absl::Status FromGrpc(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                      status.error_message());
}

KilnClient::KilnClient(ClientOptions options) : options_(std::move(options)) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(8 << 20);
  args.SetMaxSendMessageSize(8 << 20);
  args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 1);
  args.SetInt(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, 8 << 20);
  args.SetInt(GRPC_ARG_HTTP2_WRITE_BUFFER_SIZE, 8 << 20);
  args.SetInt(GRPC_ARG_HTTP2_MAX_FRAME_SIZE, 1 << 20);
  args.SetInt(GRPC_ARG_TCP_READ_CHUNK_SIZE, 1 << 20);
  args.SetInt(GRPC_ARG_TCP_MIN_READ_CHUNK_SIZE, 256 << 10);
  args.SetInt(GRPC_ARG_TCP_MAX_READ_CHUNK_SIZE, 4 << 20);
  // Each client object gets its own connection (benchmarks model many
  // clients).
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  if (options_.tls_roots.empty()) {
    credentials = grpc::InsecureChannelCredentials();
  } else {
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = options_.tls_roots;
    credentials = grpc::SslCredentials(ssl);
  }
  channel_ = grpc::CreateCustomChannel(options_.server, credentials, args);
  stub_ = v1::Kiln::NewStub(channel_);
}

std::unique_ptr<grpc::ClientContext> KilnClient::NewContext(
    absl::Duration timeout) const {
  auto context = std::make_unique<grpc::ClientContext>();
  if (!options_.token.empty()) {
    context->AddMetadata("authorization",
                         absl::StrCat("Bearer ", options_.token));
  }
  if (timeout != absl::InfiniteDuration()) {
    context->set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  }
  return context;
}

absl::Status KilnClient::UploadBytes(absl::string_view bytes) {
  return UploadBytes(bytes, cas::Digest::Of(bytes));
}

absl::Status KilnClient::UploadBytes(absl::string_view bytes,
                                     const cas::Digest& digest) {
  auto context = NewContext();
  v1::UploadBlobResponse response;
  auto writer = stub_->UploadBlob(context.get(), &response);
  v1::UploadBlobRequest message;
  message.set_digest(digest.ToString());
  message.set_size(static_cast<int64_t>(bytes.size()));
  size_t offset = 0;
  do {
    size_t n = std::min(options_.chunk_bytes, bytes.size() - offset);
    message.set_data(bytes.data() + offset, n);
    offset += n;
    if (!writer->Write(message)) break;
    message.Clear();
  } while (offset < bytes.size());
  writer->WritesDone();
  return FromGrpc(writer->Finish());
}

absl::Status KilnClient::UploadBlob(const Engine& local,
                                    const cas::Digest& digest) {
  absl::StatusOr<std::unique_ptr<cas::BlobReader>> reader =
      local.OpenBlob(digest);
  if (!reader.ok()) return reader.status();
  auto context = NewContext();
  v1::UploadBlobResponse response;
  auto writer = stub_->UploadBlob(context.get(), &response);
  v1::UploadBlobRequest message;
  message.set_digest(digest.ToString());
  message.set_size((*reader)->size());
  std::string* data = message.mutable_data();
  while (true) {
    data->resize(options_.chunk_bytes);
    absl::StatusOr<size_t> n = (*reader)->Read(data->data(), data->size());
    if (!n.ok()) {
      context->TryCancel();
      (void)writer->Finish();
      return n.status();
    }
    data->resize(*n);
    if (*n == 0) break;
    if (!writer->Write(message)) break;
    message.clear_digest();
    message.clear_size();
  }
  writer->WritesDone();
  return FromGrpc(writer->Finish());
}

absl::Status KilnClient::EnsureBlob(const Engine& local,
                                    const cas::Digest& digest) {
  auto context = NewContext(absl::Seconds(60));
  v1::FindMissingBlobsRequest request;
  request.add_digests(digest.ToString());
  v1::FindMissingBlobsResponse response;
  absl::Status s =
      FromGrpc(stub_->FindMissingBlobs(context.get(), request, &response));
  if (!s.ok()) return s;
  if (response.missing_size() == 0) return absl::OkStatus();
  return UploadBlob(local, digest);
}

absl::StatusOr<std::string> KilnClient::DownloadBlob(
    const cas::Digest& digest) {
  auto context = NewContext();
  v1::DownloadBlobRequest request;
  request.set_digest(digest.ToString());
  auto reader = stub_->DownloadBlob(context.get(), request);
  // Two stages: this thread stays in Read() (a synchronous client reads
  // its connection only there, so the server's writes are not held up),
  // and a second one hashes and appends each chunk behind it. At most
  // kDownloadChunksAhead chunks wait between them. The whole result is
  // checked against `digest` before it is returned.
  std::string out;
  cas::Sha256 hasher;
  Mutex mu;
  std::deque<v1::DownloadBlobResponse> chunks;  // guarded by mu
  bool done = false;                            // guarded by mu: no more chunks
  std::thread consumer([&] {
    while (true) {
      v1::DownloadBlobResponse chunk;
      {
        MutexLock lock(&mu);
        mu.Await([&] { return done || !chunks.empty(); });
        if (chunks.empty()) return;
        chunk.Swap(&chunks.front());
        chunks.pop_front();
      }
      if (chunk.size() > 0) out.reserve(static_cast<size_t>(chunk.size()));
      hasher.Update(chunk.data());
      out.append(chunk.data());
    }
  });
  v1::DownloadBlobResponse message;
  while (reader->Read(&message)) {
    MutexLock lock(&mu);
    mu.Await([&] { return chunks.size() < kDownloadChunksAhead; });
    chunks.emplace_back().Swap(&message);
  }
  {
    MutexLock lock(&mu);
    done = true;
  }
  consumer.join();
  absl::Status s = FromGrpc(reader->Finish());
  if (!s.ok()) return s;
  if (hasher.Finish() != digest) {
    return absl::DataLossError("downloaded bytes do not match the digest");
  }
  return out;
}

absl::StatusOr<v1::RunState> KilnClient::Watch(const std::string& run_id,
                                               uint64_t after_seq,
                                               const EventHandler& on_event,
                                               absl::Duration reconnect_for) {
  absl::Time last_progress = absl::Now();
  absl::Duration backoff = absl::Milliseconds(50);
  v1::RunState state = v1::RUN_STATE_UNSPECIFIED;
  while (true) {
    auto context = NewContext();
    context->set_wait_for_ready(true);
    context->set_deadline(
        absl::ToChronoTime(absl::Now() + reconnect_for + absl::Hours(24)));
    v1::WatchRunRequest request;
    request.set_run_id(run_id);
    request.set_after_sequence(after_seq);
    auto reader = stub_->WatchRun(context.get(), request);
    v1::RunEvent event;
    while (reader->Read(&event)) {
      if (event.sequence() <= after_seq) continue;  // defensive: no repeats
      after_seq = event.sequence();
      last_progress = absl::Now();
      backoff = absl::Milliseconds(50);
      if (event.has_run_state()) state = event.run_state().state();
      on_event(event);
    }
    grpc::Status status = reader->Finish();
    if (IsFinal(state)) return state;
    if (status.ok()) {
      // The stream ended without a final event: the run was already over
      // and everything delivered; ask for its state.
      auto get_context = NewContext(absl::Seconds(30));
      v1::GetRunRequest get;
      get.set_run_id(run_id);
      v1::Run run;
      grpc::Status got = stub_->GetRun(get_context.get(), get, &run);
      if (got.ok() && IsFinal(run.state())) return run.state();
    }
    if (!Resumable(status.error_code())) return FromGrpc(status);
    if (absl::Now() - last_progress > reconnect_for) {
      return absl::DeadlineExceededError(absl::StrCat(
          "watch of ", run_id, " made no progress for ",
          absl::FormatDuration(reconnect_for), ": ", status.error_message()));
    }
    std::this_thread::sleep_for(absl::ToChronoNanoseconds(backoff));
    backoff = std::min(backoff * 2, absl::Seconds(2));
  }
}

absl::StatusOr<v1::RunState> KilnClient::SubmitAndWatch(
    const v1::SubmitRunRequest& request, const EventHandler& on_event,
    std::string* run_id, absl::Duration reconnect_for) {
  const absl::Time start = absl::Now();
  absl::Duration backoff = absl::Milliseconds(50);
  while (true) {
    auto context = NewContext();
    context->set_wait_for_ready(true);
    context->set_deadline(
        absl::ToChronoTime(absl::Now() + reconnect_for + absl::Hours(24)));
    auto reader = stub_->SubmitAndWatchRun(context.get(), request);
    std::string id;
    uint64_t last = 0;
    v1::RunState state = v1::RUN_STATE_UNSPECIFIED;
    v1::RunEvent event;
    while (reader->Read(&event)) {
      if (id.empty()) {
        id = event.run_id();
        if (run_id != nullptr) *run_id = id;
      }
      if (event.sequence() <= last) continue;  // defensive: no repeats
      last = event.sequence();
      if (event.has_run_state()) state = event.run_state().state();
      on_event(event);
    }
    grpc::Status status = reader->Finish();
    if (IsFinal(state)) return state;
    // Started: the rest of its events come from WatchRun.
    if (!id.empty()) return Watch(id, last, on_event, reconnect_for);
    if (status.ok()) {
      return absl::InternalError("SubmitAndWatchRun ended without an event");
    }
    if (status.error_code() != grpc::StatusCode::UNAVAILABLE ||
        request.idempotency_key().empty() ||
        absl::Now() - start > reconnect_for) {
      return FromGrpc(status);
    }
    std::this_thread::sleep_for(absl::ToChronoNanoseconds(backoff));
    backoff = std::min(backoff * 2, absl::Seconds(2));
  }
}

}  // namespace kiln::service
