// The service end to end against the fake engine: validate, submit, watch,
// logs, list, cancel, retry, blobs, sources, limits and misbehaving clients.
#include <set>
#include <thread>

#include "absl/time/clock.h"
#include "engine/engine.h"
#include "engine/service/service_test_fixture.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"

namespace kiln::service {
namespace {

v1::SubmitRunResponse Submit(KilnClient& client, const std::string& yaml,
                             const std::string& key = "") {
  v1::SubmitRunRequest request;
  request.set_yaml(yaml);
  request.set_idempotency_key(key);
  v1::SubmitRunResponse response;
  auto context = client.NewContext(absl::Seconds(30));
  grpc::Status status =
      client.stub().SubmitRun(context.get(), request, &response);
  EXPECT_TRUE(status.ok()) << status.error_message();
  return response;
}

// Collects every event of a run through KilnClient::Watch.
std::vector<v1::RunEvent> WatchAll(KilnClient& client, const std::string& id,
                                   v1::RunState* final_state) {
  std::vector<v1::RunEvent> events;
  absl::StatusOr<v1::RunState> state =
      client.Watch(id, 0, [&](const v1::RunEvent& e) { events.push_back(e); });
  EXPECT_TRUE(state.ok()) << state.status();
  if (state.ok()) *final_state = *state;
  return events;
}

void ExpectContiguous(const std::vector<v1::RunEvent>& events) {
  for (size_t i = 0; i < events.size(); ++i) {
    ASSERT_EQ(events[i].sequence(), i + 1);
  }
}

TEST_F(ServiceTest, ValidateReportsPositions) {
  StartUnix();
  auto client = UnixClient();
  v1::ValidatePipelineRequest request;
  request.set_yaml(kTwoTaskPipeline);
  v1::ValidatePipelineResponse response;
  auto context = client->NewContext(absl::Seconds(10));
  ASSERT_TRUE(
      client->stub().ValidatePipeline(context.get(), request, &response).ok());
  EXPECT_TRUE(response.valid());
  EXPECT_EQ(response.pipeline().tasks_size(), 2);

  request.set_yaml(
      "name: x\ntasks:\n  - name: a\n    needs: [nope]\n"
      "    run: {command: [/bin/true]}\n");
  request.set_filename("p.yaml");
  response.Clear();
  context = client->NewContext(absl::Seconds(10));
  ASSERT_TRUE(
      client->stub().ValidatePipeline(context.get(), request, &response).ok());
  EXPECT_FALSE(response.valid());
  ASSERT_GE(response.diagnostics_size(), 1);
  EXPECT_EQ(response.diagnostics(0).file(), "p.yaml");
  EXPECT_GT(response.diagnostics(0).line(), 0);
  EXPECT_NE(response.diagnostics(0).text().find("p.yaml:"), std::string::npos);
}

TEST_F(ServiceTest, SubmitWatchLogsListRetry) {
  StartUnix();
  auto client = UnixClient();
  v1::SubmitRunResponse submitted = Submit(*client, kTwoTaskPipeline, "k1");
  ASSERT_FALSE(submitted.run_id().empty());
  // The same idempotency key returns the same run.
  EXPECT_EQ(Submit(*client, kTwoTaskPipeline, "k1").run_id(),
            submitted.run_id());

  v1::RunState final_state;
  std::vector<v1::RunEvent> events =
      WatchAll(*client, submitted.run_id(), &final_state);
  EXPECT_EQ(final_state, v1::RUN_SUCCEEDED);
  ExpectContiguous(events);
  ASSERT_FALSE(events.empty());
  EXPECT_TRUE(events.back().has_run_state());

  // Resuming from the middle gives exactly the rest.
  std::vector<v1::RunEvent> rest;
  ASSERT_TRUE(client
                  ->Watch(submitted.run_id(), 2,
                          [&](const v1::RunEvent& e) { rest.push_back(e); })
                  .ok());
  ASSERT_EQ(rest.size(), events.size() - 2);
  EXPECT_EQ(rest.front().sequence(), 3u);

  // Logs, whole and resumed from an offset.
  v1::StreamLogsRequest logs;
  logs.set_run_id(submitted.run_id());
  logs.set_task("greet");
  auto context = client->NewContext(absl::Seconds(10));
  auto reader = client->stub().StreamLogs(context.get(), logs);
  v1::StreamLogsResponse chunk;
  std::vector<std::string> lines;
  uint64_t first_line_end = 0;
  while (reader->Read(&chunk)) {
    for (const v1::LogEntry& line : chunk.lines()) lines.push_back(line.text());
    if (first_line_end == 0) first_line_end = chunk.next_offset();
  }
  ASSERT_TRUE(reader->Finish().ok());
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0], "greet line 0: /bin/sh -c echo hello");

  // Unknown task: NOT_FOUND.
  logs.set_task("nope");
  context = client->NewContext(absl::Seconds(10));
  reader = client->stub().StreamLogs(context.get(), logs);
  while (reader->Read(&chunk)) {
  }
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::NOT_FOUND);

  // List with a filter and pagination.
  Submit(*client, kTwoTaskPipeline);
  v1::ListRunsRequest list;
  list.set_page_size(1);
  list.set_pipeline_name("hello");
  std::set<std::string> seen;
  do {
    v1::ListRunsResponse page;
    context = client->NewContext(absl::Seconds(10));
    ASSERT_TRUE(client->stub().ListRuns(context.get(), list, &page).ok());
    for (const v1::Run& run : page.runs()) seen.insert(run.id());
    list.set_page_token(page.next_page_token());
  } while (!list.page_token().empty());
  EXPECT_EQ(seen.size(), 2u);
  list.set_pipeline_name("other");
  v1::ListRunsResponse none;
  context = client->NewContext(absl::Seconds(10));
  ASSERT_TRUE(client->stub().ListRuns(context.get(), list, &none).ok());
  EXPECT_EQ(none.runs_size(), 0);

  // Retry makes a new run.
  v1::RetryRunRequest retry;
  retry.set_run_id(submitted.run_id());
  v1::SubmitRunResponse retried;
  context = client->NewContext(absl::Seconds(10));
  ASSERT_TRUE(client->stub().RetryRun(context.get(), retry, &retried).ok());
  EXPECT_NE(retried.run_id(), submitted.run_id());
}

// SubmitAndWatchRun: the run started and its whole event stream in one
// call, the same events WatchRun gives, each naming the run; the same
// idempotency key streams the same run again; a bad pipeline fails the
// call before any event.
TEST_F(ServiceTest, SubmitAndWatchStreamsTheRunInOneCall) {
  StartUnix();
  auto client = UnixClient();
  v1::SubmitRunRequest request;
  request.set_yaml(kTwoTaskPipeline);
  request.set_idempotency_key("sw1");
  std::vector<v1::RunEvent> events;
  std::string id;
  absl::StatusOr<v1::RunState> state = client->SubmitAndWatch(
      request, [&](const v1::RunEvent& e) { events.push_back(e); }, &id);
  ASSERT_TRUE(state.ok()) << state.status();
  EXPECT_EQ(*state, v1::RUN_SUCCEEDED);
  ASSERT_FALSE(id.empty());
  ExpectContiguous(events);
  ASSERT_FALSE(events.empty());
  for (const v1::RunEvent& e : events) EXPECT_EQ(e.run_id(), id);
  ASSERT_TRUE(events.back().has_run_state());
  EXPECT_EQ(events.back().run_state().state(), v1::RUN_SUCCEEDED);

  v1::RunState watched_state;
  std::vector<v1::RunEvent> watched = WatchAll(*client, id, &watched_state);
  ASSERT_EQ(watched.size(), events.size());
  for (size_t i = 0; i < events.size(); ++i) {
    EXPECT_EQ(watched[i].SerializeAsString(), events[i].SerializeAsString());
  }

  // The same key: the same run, streamed again from its first event; and
  // SubmitRun with that key finds it too.
  std::vector<v1::RunEvent> again;
  std::string again_id;
  ASSERT_TRUE(client
                  ->SubmitAndWatch(
                      request,
                      [&](const v1::RunEvent& e) { again.push_back(e); },
                      &again_id)
                  .ok());
  EXPECT_EQ(again_id, id);
  EXPECT_EQ(again.size(), events.size());
  EXPECT_EQ(Submit(*client, kTwoTaskPipeline, "sw1").run_id(), id);

  // A pipeline that does not load: INVALID_ARGUMENT, no event, no run id.
  v1::SubmitRunRequest bad;
  bad.set_yaml("name: [unclosed");
  bad.set_idempotency_key("sw-bad");
  std::vector<v1::RunEvent> none;
  std::string bad_id;
  absl::StatusOr<v1::RunState> refused = client->SubmitAndWatch(
      bad, [&](const v1::RunEvent& e) { none.push_back(e); }, &bad_id);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument)
      << refused.status();
  EXPECT_TRUE(none.empty());
  EXPECT_TRUE(bad_id.empty());
}

TEST_F(ServiceTest, CancelEndsWatchers) {
  StartUnix();
  engine_->Hold();
  auto client = UnixClient();
  v1::SubmitRunResponse submitted = Submit(*client, kTwoTaskPipeline);
  v1::RunState final_state = v1::RUN_STATE_UNSPECIFIED;
  std::thread watcher(
      [&] { WatchAll(*client, submitted.run_id(), &final_state); });
  absl::SleepFor(absl::Milliseconds(100));
  v1::CancelRunRequest cancel;
  cancel.set_run_id(submitted.run_id());
  v1::CancelRunResponse cancelled;
  auto context = client->NewContext(absl::Seconds(10));
  ASSERT_TRUE(client->stub().CancelRun(context.get(), cancel, &cancelled).ok());
  watcher.join();
  EXPECT_EQ(final_state, v1::RUN_CANCELLED);
  context = client->NewContext(absl::Seconds(10));
  cancel.set_run_id("no-such-run");
  EXPECT_EQ(
      client->stub().CancelRun(context.get(), cancel, &cancelled).error_code(),
      grpc::StatusCode::NOT_FOUND);
}

TEST_F(ServiceTest, BlobsVerifyDigests) {
  StartUnix();
  auto client = UnixClient();
  std::string blob(3 << 20, 'b');
  blob[12345] = 'x';
  cas::Digest digest = cas::Digest::Of(blob);
  ASSERT_TRUE(client->UploadBytes(blob).ok());
  absl::StatusOr<std::string> back = client->DownloadBlob(digest);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, blob);

  // Announced digest does not match the bytes: rejected, nothing stored.
  std::string other = "other bytes";
  cas::Digest claimed = cas::Digest::Of("something else");
  auto context = client->NewContext(absl::Seconds(10));
  v1::UploadBlobResponse response;
  auto writer = client->stub().UploadBlob(context.get(), &response);
  v1::UploadBlobRequest message;
  message.set_digest(claimed.ToString());
  message.set_size(static_cast<int64_t>(other.size()));
  message.set_data(other);
  writer->Write(message);
  writer->WritesDone();
  EXPECT_EQ(writer->Finish().error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_FALSE(engine_->HasBlob(claimed));
  EXPECT_FALSE(engine_->HasBlob(cas::Digest::Of(other)));

  // A digest the caller passes is not trusted either: the server verifies.
  absl::Status wrong = client->UploadBytes(other, claimed);
  EXPECT_EQ(wrong.code(), absl::StatusCode::kInvalidArgument) << wrong;
  EXPECT_FALSE(engine_->HasBlob(claimed));
  EXPECT_FALSE(engine_->HasBlob(cas::Digest::Of(other)));
  ASSERT_TRUE(client->UploadBytes(other, cas::Digest::Of(other)).ok());
  EXPECT_TRUE(engine_->HasBlob(cas::Digest::Of(other)));

  v1::FindMissingBlobsRequest find;
  find.add_digests(digest.ToString());
  find.add_digests(claimed.ToString());
  v1::FindMissingBlobsResponse missing;
  context = client->NewContext(absl::Seconds(10));
  ASSERT_TRUE(
      client->stub().FindMissingBlobs(context.get(), find, &missing).ok());
  ASSERT_EQ(missing.missing_size(), 1);
  EXPECT_EQ(missing.missing(0), claimed.ToString());
}

TEST_F(ServiceTest, MalformedAndOversizedRequests) {
  StartUnix();
  auto client = UnixClient();
  grpc::Status status;
  {  // Neither yaml nor message.
    v1::SubmitRunRequest request;
    v1::SubmitRunResponse response;
    auto context = client->NewContext(absl::Seconds(10));
    status = client->stub().SubmitRun(context.get(), request, &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  }
  {  // Invalid pipeline: INVALID_ARGUMENT with positions.
    v1::SubmitRunRequest request;
    request.set_yaml("name: [unclosed\n");
    v1::SubmitRunResponse response;
    auto context = client->NewContext(absl::Seconds(10));
    status = client->stub().SubmitRun(context.get(), request, &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_NE(status.error_message().find("pipeline.yaml:"), std::string::npos);
  }
  {  // A message over the receive limit.
    v1::ValidatePipelineRequest request;
    request.set_yaml(std::string(9 << 20, '#'));
    v1::ValidatePipelineResponse response;
    auto context = client->NewContext(absl::Seconds(10));
    status = client->stub().ValidatePipeline(context.get(), request, &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  }
  {  // A YAML over the loader's cap (1 MiB) but under the message limit.
    v1::ValidatePipelineRequest request;
    request.set_yaml(std::string(2 << 20, '#'));
    v1::ValidatePipelineResponse response;
    auto context = client->NewContext(absl::Seconds(10));
    status = client->stub().ValidatePipeline(context.get(), request, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
    EXPECT_FALSE(response.valid());
  }
  {  // Under 1 MiB but over the network's node budget (100,000): the
     // generous bounds of local files (`kiln run`) never apply here.
    std::string yaml = "name: many\ntasks: [";
    for (int i = 0; i < 150000; ++i) yaml += i ? ",x" : "x";
    yaml += "]\n";
    ASSERT_LT(yaml.size(), size_t{1} << 20);
    v1::ValidatePipelineRequest request;
    request.set_yaml(yaml);
    v1::ValidatePipelineResponse response;
    auto context = client->NewContext(absl::Seconds(10));
    status = client->stub().ValidatePipeline(context.get(), request, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
    EXPECT_FALSE(response.valid());
    ASSERT_GT(response.diagnostics_size(), 0);
    EXPECT_NE(response.diagnostics(0).text().find("more than 100000 nodes"),
              std::string::npos)
        << response.diagnostics(0).text();
    v1::SubmitRunRequest submit;
    submit.set_yaml(yaml);
    v1::SubmitRunResponse submitted;
    auto context2 = client->NewContext(absl::Seconds(10));
    status = client->stub().SubmitRun(context2.get(), submit, &submitted);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_NE(status.error_message().find("more than 100000 nodes"),
              std::string::npos)
        << status.error_message();
  }
  {  // Deeply nested protobuf (conditions): refused by the parser.
    v1::SubmitRunRequest request;
    v1::Pipeline* p = request.mutable_message();
    p->set_name("deep");
    v1::Task* t = p->add_tasks();
    t->set_name("t");
    t->mutable_run()->add_command("/bin/true");
    v1::Condition* c = t->mutable_when();
    for (int i = 0; i < 5000; ++i) c = c->mutable_not_();
    c->mutable_branch()->set_pattern("main");
    v1::SubmitRunResponse response;
    auto context = client->NewContext(absl::Seconds(10));
    status = client->stub().SubmitRun(context.get(), request, &response);
    EXPECT_FALSE(status.ok());
    EXPECT_NE(status.error_code(), grpc::StatusCode::UNKNOWN);
  }
  {  // Bad digests.
    v1::FindMissingBlobsRequest request;
    request.add_digests("sha256:nothex");
    v1::FindMissingBlobsResponse response;
    auto context = client->NewContext(absl::Seconds(10));
    status = client->stub().FindMissingBlobs(context.get(), request, &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  }
  {  // Too many digests.
    v1::FindMissingBlobsRequest request;
    std::string d = cas::Digest::Of("x").ToString();
    for (int i = 0; i < 10001; ++i) request.add_digests(d);
    v1::FindMissingBlobsResponse response;
    auto context = client->NewContext(absl::Seconds(10));
    status = client->stub().FindMissingBlobs(context.get(), request, &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  }
  {  // Upload of more bytes than announced.
    auto context = client->NewContext(absl::Seconds(10));
    v1::UploadBlobResponse response;
    auto writer = client->stub().UploadBlob(context.get(), &response);
    v1::UploadBlobRequest message;
    message.set_digest(cas::Digest::Of("abc").ToString());
    message.set_size(2);
    message.set_data("abc");
    writer->Write(message);
    writer->WritesDone();
    EXPECT_EQ(writer->Finish().error_code(),
              grpc::StatusCode::INVALID_ARGUMENT);
  }
  {  // Unknown run.
    v1::GetRunRequest request;
    request.set_run_id("missing");
    v1::Run response;
    auto context = client->NewContext(absl::Seconds(10));
    EXPECT_EQ(
        client->stub().GetRun(context.get(), request, &response).error_code(),
        grpc::StatusCode::NOT_FOUND);
  }
}

TEST_F(ServiceTest, ClientGoneMidStreamLeavesServerHealthy) {
  StartUnix();
  engine_->Hold();
  auto client = UnixClient();
  v1::SubmitRunResponse submitted = Submit(*client, kTwoTaskPipeline);
  for (int i = 0; i < 20; ++i) {
    grpc::ClientContext context;
    v1::WatchRunRequest request;
    request.set_run_id(submitted.run_id());
    auto reader = client->stub().WatchRun(&context, request);
    v1::RunEvent event;
    ASSERT_TRUE(reader->Read(&event));  // RUN_RUNNING
    context.TryCancel();
    while (reader->Read(&event)) {
    }
    EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
  }
  engine_->Release();
  v1::RunState final_state;
  auto other = UnixClient();
  std::vector<v1::RunEvent> events =
      WatchAll(*other, submitted.run_id(), &final_state);
  EXPECT_EQ(final_state, v1::RUN_SUCCEEDED);
  ExpectContiguous(events);
}

// A watcher that stops reading is cut off once its queue (4 events here)
// overflows, while a reading watcher and the run go on. The cut-off is
// forced: the slow client's HTTP/2 window is 1 KiB (no BDP growth), so the
// server's writes to it block after a few events, and it subscribes to live
// events before the run starts, so no backlog is paced from the store.
TEST_F(ServiceTest, SlowWatcherIsCutOffAndResumesWithoutLoss) {
  ServerOptions options;
  options.service.watch_queue_events = 4;
  StartUnix(options);
  engine_->Hold();
  auto client = UnixClient();
  std::string yaml = "name: many\ntasks:\n";
  for (int i = 0; i < 40; ++i) {
    absl::StrAppend(&yaml, "  - name: t", i, "\n    run: {command: [x]}\n");
  }
  v1::SubmitRunResponse submitted = Submit(*client, yaml);
  const size_t total = 1 + 2 * 40 + 1;

  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, 1024);
  args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  auto slow_stub = v1::Kiln::NewStub(grpc::CreateCustomChannel(
      server_->address(), grpc::InsecureChannelCredentials(), args));
  grpc::ClientContext slow_context;
  slow_context.set_deadline(
      absl::ToChronoTime(absl::Now() + absl::Seconds(60)));
  v1::WatchRunRequest request;
  request.set_run_id(submitted.run_id());
  auto slow = slow_stub->WatchRun(&slow_context, request);
  std::vector<v1::RunEvent> events;
  std::thread watcher([&] {
    v1::RunState final_state;
    events = WatchAll(*client, submitted.run_id(), &final_state);
    EXPECT_EQ(final_state, v1::RUN_SUCCEEDED);
  });
  // Both follow live events before anything else happens.
  for (int i = 0; i < 3000 && engine_->subscribe_calls() < 2; ++i) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  ASSERT_EQ(engine_->subscribe_calls(), 2);
  engine_->Release();
  watcher.join();
  // The reading watcher and the run were unaffected.
  ExpectContiguous(events);
  EXPECT_EQ(events.size(), total);

  // The slow one was cut off: what reached it is a gap-free prefix, without
  // the end, and the stream ends with the documented status.
  std::vector<v1::RunEvent> got;
  v1::RunEvent event;
  while (slow->Read(&event)) got.push_back(event);
  grpc::Status status = slow->Finish();
  EXPECT_TRUE(status.error_code() == grpc::StatusCode::CANCELLED ||
              status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED)
      << status.error_code() << " " << status.error_message();
  ExpectContiguous(got);
  EXPECT_LT(got.size(), total / 2);
  // It resumes after the last event it got and loses nothing.
  uint64_t last = got.empty() ? 0 : got.back().sequence();
  std::vector<v1::RunEvent> rest;
  absl::StatusOr<v1::RunState> state =
      client->Watch(submitted.run_id(), last,
                    [&](const v1::RunEvent& e) { rest.push_back(e); });
  ASSERT_TRUE(state.ok()) << state.status();
  EXPECT_EQ(*state, v1::RUN_SUCCEEDED);
  ASSERT_EQ(got.size() + rest.size(), total);
  for (size_t i = 0; i < rest.size(); ++i) {
    EXPECT_EQ(rest[i].sequence(), last + i + 1);
  }
}

TEST_F(ServiceTest, PerClientStreamLimit) {
  ServerOptions options;
  options.service.max_streams_per_client = 2;
  StartTcp(options);
  engine_->Hold();
  auto client = TcpClient(kViewerToken);
  auto submitter = TcpClient(kSubmitterToken);
  v1::SubmitRunResponse submitted = Submit(*submitter, kTwoTaskPipeline);
  std::vector<std::unique_ptr<grpc::ClientContext>> contexts;
  std::vector<std::unique_ptr<grpc::ClientReader<v1::RunEvent>>> readers;
  v1::WatchRunRequest request;
  request.set_run_id(submitted.run_id());
  v1::RunEvent event;
  for (int i = 0; i < 2; ++i) {
    contexts.push_back(client->NewContext(absl::Seconds(30)));
    readers.push_back(client->stub().WatchRun(contexts.back().get(), request));
    ASSERT_TRUE(readers.back()->Read(&event));
  }
  auto context = client->NewContext(absl::Seconds(10));
  auto third = client->stub().WatchRun(context.get(), request);
  while (third->Read(&event)) {
  }
  EXPECT_EQ(third->Finish().error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  // Another client (another token) is unaffected.
  auto other = submitter->NewContext(absl::Seconds(10));
  auto fourth = submitter->stub().WatchRun(other.get(), request);
  EXPECT_TRUE(fourth->Read(&event));
  other->TryCancel();
  fourth->Finish();
  for (auto& c : contexts) c->TryCancel();
  for (auto& r : readers) {
    while (r->Read(&event)) {
    }
    r->Finish();
  }
  engine_->Release();
}

TEST_F(ServiceTest, SubmitWithUploadedSource) {
  StartUnix();
  auto client = UnixClient();
  // The client stashes a directory in its own store and uploads the archive.
  std::string src = dir_ + "/src";
  mkdir(src.c_str(), 0700);
  { std::ofstream(src + "/hello.txt") << "hi\n"; }
  auto local = Engine::OpenStore(dir_ + "/client-store");
  ASSERT_TRUE(local.ok()) << local.status();
  auto stashed = (*local)->StashDirectory(src);
  ASSERT_TRUE(stashed.ok()) << stashed.status();

  v1::SubmitRunRequest request;
  request.set_yaml(kTwoTaskPipeline);
  request.mutable_source()->set_tree_digest(stashed->tree.ToString());
  request.mutable_source()->set_archive_digest(stashed->archive.ToString());
  v1::SubmitRunResponse response;
  auto context = client->NewContext(absl::Seconds(10));
  EXPECT_EQ(
      client->stub().SubmitRun(context.get(), request, &response).error_code(),
      grpc::StatusCode::FAILED_PRECONDITION);  // not uploaded yet

  ASSERT_TRUE(client->EnsureBlob(**local, stashed->archive).ok());
  context = client->NewContext(absl::Seconds(10));
  grpc::Status status =
      client->stub().SubmitRun(context.get(), request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  absl::StatusOr<std::string> source = engine_->GetSourceDir(response.run_id());
  ASSERT_TRUE(source.ok());
  std::ifstream in(*source + "/hello.txt");
  std::string text;
  std::getline(in, text);
  EXPECT_EQ(text, "hi");

  // A forged tree digest for that archive is refused.
  request.mutable_source()->set_tree_digest(
      cas::Digest::Of("forged").ToString());
  context = client->NewContext(absl::Seconds(10));
  EXPECT_FALSE(
      client->stub().SubmitRun(context.get(), request, &response).ok());
}

}  // namespace
}  // namespace kiln::service
