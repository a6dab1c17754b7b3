// The dashboard's API over a real server on loopback, against FakeEngine:
// who may do what (bearer tokens, sessions, CSRF), escaping, secrets, the
// event and log streams (resume, live, limits) and the runs list's filters.
#include "engine/service/http/dashboard_server.h"

#include <sys/stat.h>

#include <cstdlib>
#include <fstream>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/notification.h"
#include "engine/pipeline/loader.h"
#include "engine/service/testing/fake_engine.h"
#include "gtest/gtest.h"
#include "httplib.h"
#include "nlohmann/json.hpp"

namespace kiln::service::http {
namespace {

constexpr char kViewer[] = "viewer-token-0123456789";
constexpr char kSubmitter[] = "submitter-token-0123456";

constexpr char kPipeline[] =
    "name: hello\n"
    "params:\n"
    "  - {name: token, secret: true}\n"
    "tasks:\n"
    "  - name: greet\n"
    "    run: {command: [/bin/echo, '<script>alert(1)</script>']}\n"
    "  - name: after\n"
    "    needs: [greet]\n"
    "    run: {command: [/bin/true]}\n";

constexpr char kSecret[] = "s3cr3t-value-xyz";

httplib::Headers Bearer(const char* token) {
  return {{"Authorization", absl::StrCat("Bearer ", token)}};
}

// The `id:` values and event types of an SSE body.
struct Sse {
  std::vector<uint64_t> ids;
  std::vector<std::string> types;
  std::vector<nlohmann::json> data;
};
Sse ParseSse(const std::string& body) {
  Sse out;
  for (absl::string_view block : absl::StrSplit(body, "\n\n")) {
    std::string type = "message";
    bool any = false;
    for (absl::string_view line : absl::StrSplit(block, '\n')) {
      if (absl::ConsumePrefix(&line, "id: ")) {
        uint64_t id = 0;
        EXPECT_TRUE(absl::SimpleAtoi(line, &id));
        out.ids.push_back(id);
      } else if (absl::ConsumePrefix(&line, "event: ")) {
        type = std::string(line);
      } else if (absl::ConsumePrefix(&line, "data: ")) {
        out.data.push_back(nlohmann::json::parse(line));
        any = true;
      }
    }
    if (any) out.types.push_back(type);
  }
  return out;
}

class DashboardTest : public ::testing::Test {
 protected:
  void SetUp() override {
    static int counter = 0;
    dir_ = absl::StrCat(std::getenv("TEST_TMPDIR"), "/d", counter++);
    mkdir(dir_.c_str(), 0700);
    testing::FakeEngineOptions engine_options;
    engine_options.store_dir = dir_ + "/store";
    engine_ = std::move(*testing::FakeEngine::Create(engine_options));
    tokens_ = dir_ + "/tokens";
    {
      std::ofstream out(tokens_);
      out << kViewer << " viewer v\n" << kSubmitter << " submitter s\n";
    }
    chmod(tokens_.c_str(), 0600);
  }
  void TearDown() override {
    if (server_) server_->Shutdown();
    engine_->Release();
    engine_->Shutdown(absl::Seconds(1));
  }

  void Start(DashboardOptions options = {}) {
    options.listen = "127.0.0.1:0";
    options.token_file = tokens_;
    options.poll = absl::Milliseconds(50);
    auto server = DashboardServer::Start(engine_.get(), options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
  }

  std::unique_ptr<httplib::Client> Client() {
    auto client = std::make_unique<httplib::Client>(server_->url());
    client->set_read_timeout(20, 0);
    return client;
  }

  std::shared_ptr<RunHandle> Submit(const std::string& branch) {
    pipeline::LoadedPipeline loaded =
        pipeline::LoadPipelineText(kPipeline, "p.yaml");
    EXPECT_TRUE(loaded.ok());
    RunRequest request;
    request.pipeline = loaded.pipeline;
    request.trigger.set_branch(branch);
    (*request.trigger.mutable_params())["token"] = kSecret;
    auto run = engine_->Submit(std::move(request));
    EXPECT_TRUE(run.ok()) << run.status();
    return *run;
  }

  nlohmann::json GetJson(const std::string& path, const char* token,
                         int want_status = 200) {
    auto res = Client()->Get(path.c_str(), Bearer(token));
    EXPECT_TRUE(res) << path;
    if (!res) return nullptr;
    EXPECT_EQ(res->status, want_status) << path << ": " << res->body;
    // Nothing the API sends holds markup or a secret.
    EXPECT_FALSE(absl::StrContains(res->body, "<")) << res->body;
    EXPECT_FALSE(absl::StrContains(res->body, kSecret)) << res->body;
    return nlohmann::json::parse(res->body, nullptr, false);
  }

  std::string dir_, tokens_;
  std::unique_ptr<testing::FakeEngine> engine_;
  std::unique_ptr<DashboardServer> server_;
};

TEST_F(DashboardTest, RefusesUnsafeListening) {
  DashboardOptions options;
  options.listen = ":0";
  EXPECT_EQ(DashboardServer::Start(engine_.get(), options).status().code(),
            absl::StatusCode::kFailedPrecondition);  // no token file
  options.token_file = tokens_;
  options.listen = "unix:x.sock";
  EXPECT_EQ(DashboardServer::Start(engine_.get(), options).status().code(),
            absl::StatusCode::kInvalidArgument);
  options.listen = "0.0.0.0:0";  // not loopback, no TLS
  EXPECT_EQ(DashboardServer::Start(engine_.get(), options).status().code(),
            absl::StatusCode::kFailedPrecondition);
  options.listen = ":0";
  auto server = DashboardServer::Start(engine_.get(), options);
  ASSERT_TRUE(server.ok()) << server.status();
  EXPECT_TRUE(absl::StartsWith((*server)->url(), "http://127.0.0.1:"));
}

TEST_F(DashboardTest, ServesHttpsWithSecureCookies) {
  std::string key = dir_ + "/key.pem", cert = dir_ + "/cert.pem";
  std::string cmd = absl::StrCat(
      "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost "
      "-keyout ",
      key, " -out ", cert, " >/dev/null 2>&1");
  ASSERT_EQ(std::system(cmd.c_str()), 0) << "openssl failed";
  DashboardOptions options;
  options.listen = "127.0.0.1:0";
  options.token_file = tokens_;
  options.tls_cert = cert;
  options.tls_key = key;
  chmod(key.c_str(), 0644);
  EXPECT_EQ(DashboardServer::Start(engine_.get(), options).status().code(),
            absl::StatusCode::kFailedPrecondition);  // a readable key
  chmod(key.c_str(), 0600);
  auto server = DashboardServer::Start(engine_.get(), options);
  ASSERT_TRUE(server.ok()) << server.status();
  ASSERT_TRUE(absl::StartsWith((*server)->url(), "https://127.0.0.1:"));
  httplib::SSLClient client(
      "127.0.0.1",
      std::stoi((*server)->url().substr((*server)->url().rfind(':') + 1)));
  client.set_ca_cert_path(cert.c_str());
  client.enable_server_certificate_verification(false);
  auto res = client.Post("/login", absl::StrCat("token=", kViewer),
                         "application/x-www-form-urlencoded");
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  EXPECT_EQ(res->status, 303);
  EXPECT_TRUE(
      absl::StrContains(res->get_header_value("Set-Cookie"), "; Secure"));
  auto runs = client.Get("/api/runs", Bearer(kViewer));
  ASSERT_TRUE(runs);
  EXPECT_EQ(runs->status, 200);
  // Plain HTTP to the TLS port gets nothing.
  std::string plain_url = (*server)->url();
  plain_url.replace(0, 5, "http");
  httplib::Client plain(plain_url);
  plain.set_read_timeout(5, 0);
  auto refused = plain.Get("/login");
  EXPECT_TRUE(!refused || refused->status != 200);
}

TEST_F(DashboardTest, UnauthenticatedGetsTheLoginPage) {
  Start();
  auto client = Client();
  auto page = client->Get("/");
  ASSERT_TRUE(page);
  EXPECT_EQ(page->status, 303);
  EXPECT_EQ(page->get_header_value("Location"), "/login");
  auto login = client->Get("/login");
  ASSERT_TRUE(login);
  EXPECT_EQ(login->status, 200);
  EXPECT_TRUE(absl::StrContains(login->body, "<form id=\"login\""));
  EXPECT_TRUE(absl::StrContains(
      login->get_header_value("Content-Security-Policy"), "script-src 'self'"));
  EXPECT_EQ(login->get_header_value("X-Content-Type-Options"), "nosniff");
  auto api = client->Get("/api/runs");
  ASSERT_TRUE(api);
  EXPECT_EQ(api->status, 401);
  auto wrong = client->Get("/api/runs", Bearer("not-a-token-at-all-000"));
  ASSERT_TRUE(wrong);
  EXPECT_EQ(wrong->status, 401);
  auto script = client->Get("/static/run.js");
  ASSERT_TRUE(script);
  EXPECT_EQ(script->status, 200);
  EXPECT_TRUE(absl::StartsWith(script->get_header_value("Content-Type"),
                               "text/javascript"));
  EXPECT_EQ(client->Get("/static/../BUILD")->status, 404);
}

TEST_F(DashboardTest, RolesDecideActions) {
  Start();
  engine_->Hold();
  std::shared_ptr<RunHandle> run = Submit("main");
  std::string cancel = absl::StrCat("/api/runs/", run->id(), "/cancel");
  auto client = Client();
  auto refused =
      client->Post(cancel.c_str(), Bearer(kViewer), "", "text/plain");
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->status, 403) << refused->body;
  EXPECT_TRUE(absl::StrContains(refused->body, "needs role submitter"));
  auto done =
      client->Post(cancel.c_str(), Bearer(kSubmitter), "", "text/plain");
  ASSERT_TRUE(done);
  EXPECT_EQ(done->status, 200) << done->body;
  engine_->Release();
  v1::Run final_run;
  ASSERT_TRUE(run->WaitFor(absl::Seconds(20), &final_run));
  EXPECT_EQ(final_run.state(), v1::RUN_CANCELLED);
  EXPECT_TRUE(absl::StrContains(final_run.reason(), "by s"))
      << final_run.reason();
}

TEST_F(DashboardTest, SessionCookieAndCsrf) {
  Start();
  engine_->Hold();
  std::shared_ptr<RunHandle> run = Submit("main");
  auto client = Client();
  auto bad = client->Post("/login", "token=wrong-token-00000000000",
                          "application/x-www-form-urlencoded");
  ASSERT_TRUE(bad);
  EXPECT_EQ(bad->status, 303);
  EXPECT_EQ(bad->get_header_value("Location"), "/login?failed=1");
  EXPECT_FALSE(bad->has_header("Set-Cookie"));

  auto good = client->Post("/login", absl::StrCat("token=", kSubmitter),
                           "application/x-www-form-urlencoded");
  ASSERT_TRUE(good);
  EXPECT_EQ(good->status, 303);
  std::string set_cookie = good->get_header_value("Set-Cookie");
  EXPECT_TRUE(absl::StrContains(set_cookie, "HttpOnly")) << set_cookie;
  EXPECT_TRUE(absl::StrContains(set_cookie, "SameSite=Strict")) << set_cookie;
  std::string cookie(absl::StrSplit(set_cookie, ';').begin()->data(),
                     set_cookie.find(';'));
  httplib::Headers with_cookie = {{"Cookie", cookie}};

  auto page = client->Get("/", with_cookie);
  ASSERT_TRUE(page);
  EXPECT_EQ(page->status, 200);
  auto session = client->Get("/api/session", with_cookie);
  ASSERT_TRUE(session);
  ASSERT_EQ(session->status, 200);
  nlohmann::json who = nlohmann::json::parse(session->body);
  EXPECT_EQ(who["role"], "submitter");
  EXPECT_EQ(who["can_act"], true);
  std::string csrf = who["csrf_token"];
  ASSERT_EQ(csrf.size(), 64u);

  std::string cancel = absl::StrCat("/api/runs/", run->id(), "/cancel");
  auto no_csrf = client->Post(cancel.c_str(), with_cookie, "", "text/plain");
  ASSERT_TRUE(no_csrf);
  EXPECT_EQ(no_csrf->status, 403);
  EXPECT_TRUE(absl::StrContains(no_csrf->body, "CSRF"));
  httplib::Headers wrong = with_cookie;
  wrong.emplace("X-Kiln-CSRF", std::string(64, 'a'));
  EXPECT_EQ(client->Post(cancel.c_str(), wrong, "", "text/plain")->status, 403);
  httplib::Headers right = with_cookie;
  right.emplace("X-Kiln-CSRF", csrf);
  auto ok = client->Post(cancel.c_str(), right, "", "text/plain");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200) << ok->body;

  EXPECT_EQ(client->Post("/logout", right, "", "text/plain")->status, 200);
  EXPECT_EQ(client->Get("/api/session", with_cookie)->status, 401);
  EXPECT_EQ(client->Get("/", with_cookie)->status, 303);
}

TEST_F(DashboardTest, EscapedAndRedacted) {
  Start();
  std::shared_ptr<RunHandle> run = Submit("<script>b</script>");
  run->Wait();
  nlohmann::json list = GetJson("/api/runs", kViewer);
  ASSERT_EQ(list["runs"].size(), 1u);
  const nlohmann::json& summary = list["runs"][0];
  EXPECT_EQ(summary["trigger"]["branch"], "<script>b</script>");
  EXPECT_EQ(summary["trigger"]["params"]["token"], "[redacted]");
  EXPECT_EQ(summary["task_total"], 2);
  EXPECT_EQ(summary["task_counts"]["TASK_SUCCEEDED"], 2);

  std::string base = absl::StrCat("/api/runs/", run->id());
  nlohmann::json one = GetJson(base, kViewer);
  EXPECT_EQ(one["run"]["trigger"]["params"]["token"], "[redacted]");
  ASSERT_EQ(one["graph"].size(), 2u);
  EXPECT_EQ(one["graph"][1]["name"], "after");
  EXPECT_EQ(one["graph"][1]["needs"][0], "greet");
  EXPECT_EQ(one["run"]["tasks"][0]["attempts"], 1);

  nlohmann::json tail = GetJson(base + "/tasks/greet/log?tail=1", kViewer);
  ASSERT_EQ(tail["lines"].size(), 1u);
  EXPECT_TRUE(absl::StrContains(tail["lines"][0]["text"].get<std::string>(),
                                "<script>alert(1)</script>"));
  GetJson(base + "/tasks/nope/log", kViewer, 404);
  GetJson(base + "/tasks/greet/log?attempt=7", kViewer, 400);
  GetJson("/api/runs/no-such-run", kViewer, 404);
}

TEST_F(DashboardTest, EventsResumeFromASequence) {
  Start();
  std::shared_ptr<RunHandle> run = Submit("main");
  v1::Run final_run = run->Wait();
  auto last = engine_->LastSequence(run->id());
  ASSERT_TRUE(last.ok());
  std::string path = absl::StrCat("/api/runs/", run->id(), "/events");
  auto all = Client()->Get(path.c_str(), Bearer(kViewer));
  ASSERT_TRUE(all);
  ASSERT_EQ(all->status, 200) << all->body;
  EXPECT_TRUE(absl::StartsWith(all->get_header_value("Content-Type"),
                               "text/event-stream"));
  Sse sse = ParseSse(all->body);
  ASSERT_EQ(sse.ids.size(), *last);
  for (size_t i = 0; i < sse.ids.size(); ++i) EXPECT_EQ(sse.ids[i], i + 1);
  ASSERT_FALSE(sse.types.empty());
  EXPECT_EQ(sse.types.back(), "end");
  EXPECT_EQ(sse.data[sse.ids.size() - 1]["run_state"]["state"],
            "RUN_SUCCEEDED");
  EXPECT_FALSE(absl::StrContains(all->body, "<"));

  // Resumed by header and by parameter: only what follows.
  httplib::Headers resume = Bearer(kViewer);
  resume.emplace("Last-Event-ID", "3");
  Sse rest = ParseSse(Client()->Get(path.c_str(), resume)->body);
  ASSERT_EQ(rest.ids.size(), *last - 3);
  EXPECT_EQ(rest.ids.front(), 4u);
  Sse rest2 = ParseSse(
      Client()->Get((path + "?after=5").c_str(), Bearer(kViewer))->body);
  ASSERT_FALSE(rest2.ids.empty());
  EXPECT_EQ(rest2.ids.front(), 6u);
  EXPECT_EQ(Client()->Get((path + "?after=x").c_str(), Bearer(kViewer))->status,
            400);
}

TEST_F(DashboardTest, EventsFollowALiveRunAndStreamsAreBounded) {
  DashboardOptions options;
  options.threads = 4;
  options.max_streams = 1;
  Start(options);
  engine_->Hold();
  std::shared_ptr<RunHandle> run = Submit("main");
  std::string path = absl::StrCat("/api/runs/", run->id(), "/events");
  absl::Notification open;
  std::string body;
  std::thread watcher([&] {
    auto client = Client();
    client->Get(path.c_str(), Bearer(kViewer),
                [&](const char* data, size_t size) {
                  body.append(data, size);
                  if (!open.HasBeenNotified()) open.Notify();
                  return true;
                });
  });
  ASSERT_TRUE(open.WaitForNotificationWithTimeout(absl::Seconds(20)));
  // The one stream slot is taken.
  auto second = Client()->Get(path.c_str(), Bearer(kViewer));
  ASSERT_TRUE(second);
  EXPECT_EQ(second->status, 503) << second->body;
  // Pages still load meanwhile.
  EXPECT_EQ(Client()->Get("/api/runs", Bearer(kViewer))->status, 200);
  engine_->Release();
  watcher.join();  // the stream ends by itself with the run
  Sse sse = ParseSse(body);
  ASSERT_FALSE(sse.types.empty());
  EXPECT_EQ(sse.types.back(), "end");
  auto last = engine_->LastSequence(run->id());
  ASSERT_TRUE(last.ok());
  EXPECT_EQ(sse.ids.size(), *last);
  // The slot is free again once the server's handler has returned (the
  // client may see the end of the body a moment before that).
  int status = 0;
  for (absl::Time deadline = absl::Now() + absl::Seconds(10);
       absl::Now() < deadline; absl::SleepFor(absl::Milliseconds(20))) {
    status = Client()->Get(path.c_str(), Bearer(kViewer))->status;
    if (status != 503) break;
  }
  EXPECT_EQ(status, 200);
}

TEST_F(DashboardTest, LogTailFollowAndDownload) {
  Start();
  std::shared_ptr<RunHandle> run = Submit("main");
  run->Wait();
  std::string base = absl::StrCat("/api/runs/", run->id(), "/tasks/greet/log");
  nlohmann::json tail = GetJson(base + "?tail=2", kViewer);
  ASSERT_EQ(tail["lines"].size(), 2u);
  EXPECT_EQ(tail["attempt"], 1);
  auto download =
      Client()->Get((base + "?download=1").c_str(), Bearer(kViewer));
  ASSERT_TRUE(download);
  EXPECT_EQ(download->status, 200);
  EXPECT_TRUE(absl::StrContains(
      download->get_header_value("Content-Disposition"), "attachment"));
  EXPECT_EQ(std::count(download->body.begin(), download->body.end(), '\n'), 3);
  EXPECT_TRUE(absl::StrContains(download->body, "greet line 0"));
  auto follow = Client()->Get((base + "?follow=1").c_str(), Bearer(kViewer));
  ASSERT_TRUE(follow);
  Sse sse = ParseSse(follow->body);
  ASSERT_GE(sse.data.size(), 2u);
  EXPECT_EQ(sse.types.back(), "end");
  EXPECT_EQ(sse.data[0]["lines"].size(), 3u);
  // Resumed at the end: nothing more but the end.
  httplib::Headers resume = Bearer(kViewer);
  resume.emplace("Last-Event-ID", std::to_string(sse.ids.back()));
  Sse rest =
      ParseSse(Client()->Get((base + "?follow=1").c_str(), resume)->body);
  EXPECT_TRUE(rest.ids.empty());
  EXPECT_EQ(rest.types.back(), "end");
}

TEST_F(DashboardTest, RunsListFiltersAndPages) {
  Start();
  Submit("main")->Wait();
  Submit("feature/x")->Wait();
  nlohmann::json all = GetJson("/api/runs", kViewer);
  EXPECT_EQ(all["runs"].size(), 2u);
  nlohmann::json main = GetJson("/api/runs?branch=main", kViewer);
  ASSERT_EQ(main["runs"].size(), 1u);
  EXPECT_EQ(main["runs"][0]["trigger"]["branch"], "main");
  EXPECT_EQ(GetJson("/api/runs?state=succeeded", kViewer)["runs"].size(), 2u);
  EXPECT_EQ(GetJson("/api/runs?state=failed", kViewer)["runs"].size(), 0u);
  EXPECT_EQ(GetJson("/api/runs?pipeline=other", kViewer)["runs"].size(), 0u);
  GetJson("/api/runs?state=bogus", kViewer, 400);
  GetJson("/api/runs?page_size=0", kViewer, 400);
  nlohmann::json first = GetJson("/api/runs?page_size=1", kViewer);
  ASSERT_EQ(first["runs"].size(), 1u);
  std::string token = first["next_page_token"];
  ASSERT_FALSE(token.empty());
  nlohmann::json second =
      GetJson("/api/runs?page_size=1&page_token=" +
                  httplib::detail::encode_query_param(token),
              kViewer);
  ASSERT_EQ(second["runs"].size(), 1u);
  EXPECT_NE(second["runs"][0]["id"], first["runs"][0]["id"]);
}

}  // namespace
}  // namespace kiln::service::http

namespace kiln::service::http {
namespace {

// The artifacts endpoints' refusals and the empty list (FakeEngine runs no
// commands, so it records no outputs; the download itself is driven from a
// browser against a real server in //tests/web:dashboard_browser_test).
TEST_F(DashboardTest, ArtifactsListAndDownloadRefusals) {
  Start();
  auto run = Submit("main");
  run->Wait();
  auto client = Client();
  const std::string base = absl::StrCat("/api/runs/", run->id(), "/artifacts");

  EXPECT_EQ(client->Get(base.c_str())->status, 401);
  auto listed = client->Get(base.c_str(), Bearer(kViewer));
  ASSERT_TRUE(listed);
  EXPECT_EQ(listed->status, 200) << listed->body;
  EXPECT_EQ(nlohmann::json::parse(listed->body)["artifacts"],
            nlohmann::json::array());
  EXPECT_EQ(
      client->Get("/api/runs/no-such-run/artifacts", Bearer(kViewer))->status,
      404);
  auto task_filter =
      client->Get((base + "?task=nope").c_str(), Bearer(kViewer));
  EXPECT_EQ(task_filter->status, 404) << task_filter->body;

  const std::string one = base + "/greet/nothing";
  EXPECT_EQ(client->Get(one.c_str())->status, 401);
  auto missing = client->Get(one.c_str(), Bearer(kViewer));
  EXPECT_EQ(missing->status, 404) << missing->body;
  auto format = client->Get((one + "?format=zip").c_str(), Bearer(kViewer));
  EXPECT_EQ(format->status, 400);
  EXPECT_TRUE(absl::StrContains(format->body, "format must be zstd or tar"));
}

}  // namespace
}  // namespace kiln::service::http
