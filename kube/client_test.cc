#include "kube/client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "base/mutex.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kube/test_server.h"

namespace kiln::kube {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing::TestServer;

nlohmann::json StatusBody(int code, const std::string& reason,
                          const std::string& message) {
  return {{"kind", "Status"}, {"apiVersion", "v1"}, {"status", "Failure"},
          {"code", code},     {"reason", reason},   {"message", message}};
}

void Reply(httplib::Response& res, int code, const nlohmann::json& body) {
  res.status = code;
  res.set_content(body.dump(), "application/json");
}

nlohmann::json Pod(const std::string& name, const std::string& rv) {
  return {{"kind", "Pod"},
          {"apiVersion", "v1"},
          {"metadata",
           {{"name", name}, {"namespace", "ns"}, {"resourceVersion", rv}}}};
}

ClientOptions FastOptions() {
  ClientOptions o;
  o.initial_backoff = absl::Milliseconds(10);
  o.max_backoff = absl::Milliseconds(100);
  o.request_timeout = absl::Seconds(10);
  return o;
}

std::unique_ptr<Client> MakeClient(const TestServer& server,
                                   ClientOptions options = FastOptions(),
                                   const std::string& token = "tok") {
  ClusterConfig config;
  config.context = "test";
  config.server = server.url();
  config.token = token;
  auto client = Client::Create(config, options);
  EXPECT_TRUE(client.ok()) << client.status();
  return *std::move(client);
}

TEST(ClientTest, GetSendsBearerAndJson) {
  TestServer server;
  std::string auth, accept;
  server.http().Get("/api/v1/namespaces/ns/pods/p",
                    [&](const httplib::Request& req, httplib::Response& res) {
                      auth = req.get_header_value("Authorization");
                      accept = req.get_header_value("Accept");
                      Reply(res, 200, Pod("p", "7"));
                    });
  server.Serve();
  auto client = MakeClient(server);
  auto pod = client->Get(PodPath("ns", "p"));
  ASSERT_TRUE(pod.ok()) << pod.status();
  EXPECT_EQ((*pod)["metadata"]["resourceVersion"], "7");
  EXPECT_EQ(auth, "Bearer tok");
  EXPECT_EQ(accept, "application/json");
  EXPECT_EQ(client->request_count(), 1);
}

TEST(ClientTest, ErrorsCarryCodeReasonAndMessage) {
  TestServer server;
  server.http().Post("/api/v1/namespaces/ns/pods", [](const httplib::Request&,
                                                      httplib::Response& res) {
    Reply(res, 409,
          StatusBody(409, "AlreadyExists", "pods \"p\" already exists"));
  });
  server.http().Put("/api/v1/namespaces/ns/pods/p", [](const httplib::Request&,
                                                       httplib::Response& res) {
    Reply(res, 409,
          StatusBody(409, "Conflict", "the object has been modified"));
  });
  server.http().Get(
      "/api/v1/namespaces/ns/pods/missing",
      [](const httplib::Request&, httplib::Response& res) {
        Reply(res, 404,
              StatusBody(404, "NotFound", "pods \"missing\" not found"));
      });
  server.http().Get("/api/v1/namespaces/ns/pods/forbidden",
                    [](const httplib::Request&, httplib::Response& res) {
                      Reply(res, 403, StatusBody(403, "Forbidden", "no"));
                    });
  server.http().Get("/api/v1/namespaces/ns/pods/gone",
                    [](const httplib::Request&, httplib::Response& res) {
                      Reply(res, 410, StatusBody(410, "Expired", "too old"));
                    });
  server.http().Get("/api/v1/namespaces/ns/pods/unauth",
                    [](const httplib::Request&, httplib::Response& res) {
                      res.status = 401;
                      res.set_content("Unauthorized", "text/plain");
                    });
  server.http().Patch("/api/v1/namespaces/ns/pods/p",
                      [](const httplib::Request&, httplib::Response& res) {
                        Reply(res, 422,
                              StatusBody(422, "Invalid", "spec: Forbidden"));
                      });
  server.Serve();
  auto client = MakeClient(server);

  auto created = client->Create(PodsPath("ns"), Pod("p", ""));
  EXPECT_TRUE(absl::IsAlreadyExists(created.status())) << created.status();
  EXPECT_EQ(ApiReason(created.status()), "AlreadyExists");
  EXPECT_EQ(created.status().message(),
            "POST /api/v1/namespaces/ns/pods: AlreadyExists: pods \"p\" "
            "already exists");

  auto replaced = client->Replace(PodPath("ns", "p"), Pod("p", "1"));
  EXPECT_TRUE(absl::IsAborted(replaced.status())) << replaced.status();
  EXPECT_EQ(ApiReason(replaced.status()), "Conflict");

  auto missing = client->Get(PodPath("ns", "missing"));
  EXPECT_TRUE(absl::IsNotFound(missing.status()));
  EXPECT_THAT(missing.status().message(),
              HasSubstr("NotFound: pods \"missing\" not found"));
  EXPECT_TRUE(absl::IsPermissionDenied(
      client->Get(PodPath("ns", "forbidden")).status()));
  auto gone = client->Get(PodPath("ns", "gone"));
  EXPECT_TRUE(absl::IsFailedPrecondition(gone.status()));
  EXPECT_EQ(ApiReason(gone.status()), "Expired");
  auto unauth = client->Get(PodPath("ns", "unauth"));
  EXPECT_TRUE(absl::IsUnauthenticated(unauth.status()));
  EXPECT_EQ(ApiReason(unauth.status()), "Unauthorized");
  EXPECT_THAT(unauth.status().message(), ::testing::Not(HasSubstr("tok")));
  auto invalid =
      client->Patch(PodPath("ns", "p"), {{"a", 1}}, PatchType::kMerge);
  EXPECT_TRUE(absl::IsInvalidArgument(invalid.status()));
  EXPECT_EQ(ApiReason(invalid.status()), "Invalid");
  // An OK status carries no reason.
  EXPECT_EQ(ApiReason(absl::OkStatus()), "");
  // No retries for any of these.
  EXPECT_EQ(client->request_count(), 7);
}

TEST(ClientTest, PatchAndDeleteSendTheirTypesAndOptions) {
  TestServer server;
  Mutex mu;
  std::vector<std::string> seen;
  server.http().Patch("/api/v1/namespaces/ns/pods/p",
                      [&](const httplib::Request& req, httplib::Response& res) {
                        MutexLock lock(&mu);
                        seen.push_back(absl::StrCat(
                            req.get_header_value("Content-Type"), " ",
                            req.get_param_value("fieldManager"), " ",
                            req.get_param_value("force"), " ", req.body));
                        Reply(res, 200, Pod("p", "2"));
                      });
  std::string delete_body;
  server.http().Delete(
      "/api/v1/namespaces/ns/pods/p",
      [&](const httplib::Request& req, httplib::Response& res) {
        MutexLock lock(&mu);
        delete_body = req.body;
        res.status = 202;  // accepted; some servers send no body at all
      });
  server.Serve();
  auto client = MakeClient(server);
  nlohmann::json body = {{"metadata", {{"labels", {{"a", "b"}}}}}};
  ASSERT_TRUE(client->Patch(PodPath("ns", "p"), body, PatchType::kMerge).ok());
  ASSERT_TRUE(
      client->Patch(PodPath("ns", "p"), body, PatchType::kStrategicMerge).ok());
  nlohmann::json ops = nlohmann::json::array(
      {{{"op", "add"}, {"path", "/metadata/labels/c"}, {"value", "d"}}});
  ASSERT_TRUE(client->Patch(PodPath("ns", "p"), ops, PatchType::kJson).ok());
  PatchOptions apply;
  apply.field_manager = "kiln";
  apply.force = true;
  ASSERT_TRUE(
      client->Patch(PodPath("ns", "p"), body, PatchType::kApply, apply).ok());
  // Server-side apply without a field manager is refused before sending.
  auto no_manager = client->Patch(PodPath("ns", "p"), body, PatchType::kApply);
  EXPECT_TRUE(absl::IsInvalidArgument(no_manager.status()));

  DeleteOptions del;
  del.grace_period_seconds = 0;
  del.propagation_policy = "Background";
  ASSERT_TRUE(client->Delete(PodPath("ns", "p"), del).ok());

  MutexLock lock(&mu);
  std::string b = body.dump();
  EXPECT_THAT(seen, ElementsAre("application/merge-patch+json   " + b,
                                "application/strategic-merge-patch+json   " + b,
                                "application/json-patch+json   " + ops.dump(),
                                "application/apply-patch+yaml kiln true " + b));
  nlohmann::json sent = nlohmann::json::parse(delete_body);
  EXPECT_EQ(sent["kind"], "DeleteOptions");
  EXPECT_EQ(sent["gracePeriodSeconds"], 0);
  EXPECT_EQ(sent["propagationPolicy"], "Background");
}

TEST(ClientTest, ListFollowsContinueAndEscapesSelectors) {
  TestServer server;
  std::atomic<int> calls{0};
  std::string selector;
  server.http().Get(
      "/api/v1/namespaces/ns/pods",
      [&](const httplib::Request& req, httplib::Response& res) {
        ++calls;
        selector = req.get_param_value("labelSelector");
        nlohmann::json list = {{"kind", "PodList"},
                               {"metadata", {{"resourceVersion", "30"}}}};
        if (req.get_param_value("continue").empty()) {
          list["items"] = nlohmann::json::array({Pod("a", "1"), Pod("b", "2")});
          list["metadata"]["continue"] = "page2";
        } else if (req.get_param_value("continue") == "page2") {
          list["items"] = nlohmann::json::array({Pod("c", "3")});
        } else {
          Reply(res, 400, StatusBody(400, "BadRequest", "bad continue"));
          return;
        }
        Reply(res, 200, list);
      });
  server.Serve();
  auto client = MakeClient(server);
  ListOptions options;
  options.label_selector = "kiln.dev/run=r1,app in (x y)";
  auto list = client->List(PodsPath("ns"), options);
  ASSERT_TRUE(list.ok()) << list.status();
  ASSERT_EQ((*list)["items"].size(), 3u) << list->dump();
  EXPECT_EQ((*list)["items"][2]["metadata"]["name"], "c");
  EXPECT_EQ((*list)["metadata"]["resourceVersion"], "30");
  EXPECT_FALSE((*list)["metadata"].contains("continue"));
  EXPECT_EQ(calls.load(), 2);
  EXPECT_EQ(selector, "kiln.dev/run=r1,app in (x y)");
}

TEST(ClientTest, TooManyRequestsHonoursRetryAfter) {
  TestServer server;
  std::atomic<int> calls{0};
  server.http().Get("/api/v1/namespaces", [&](const httplib::Request&,
                                              httplib::Response& res) {
    if (++calls == 1) {
      res.set_header("Retry-After", "1");
      Reply(res, 429, StatusBody(429, "TooManyRequests", "slow down"));
      return;
    }
    Reply(res, 200, {{"kind", "NamespaceList"}});
  });
  server.Serve();
  ClientOptions options = FastOptions();
  options.max_backoff = absl::Seconds(5);  // Retry-After 1 s is honoured
  auto client = MakeClient(server, options);
  absl::Time start = absl::Now();
  auto got = client->Get("/api/v1/namespaces");
  absl::Duration took = absl::Now() - start;
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(calls.load(), 2);
  EXPECT_GE(took, absl::Milliseconds(950));
  EXPECT_LT(took, absl::Seconds(4));
}

TEST(ClientTest, RetryAfterIsCappedByMaxBackoff) {
  TestServer server;
  std::atomic<int> calls{0};
  server.http().Get("/api/v1/namespaces",
                    [&](const httplib::Request&, httplib::Response& res) {
                      if (++calls == 1) {
                        res.set_header("Retry-After", "3600");
                        Reply(res, 429, StatusBody(429, "TooManyRequests", ""));
                        return;
                      }
                      Reply(res, 200, {{"kind", "NamespaceList"}});
                    });
  server.Serve();
  auto client = MakeClient(server);
  absl::Time start = absl::Now();
  ASSERT_TRUE(client->Get("/api/v1/namespaces").ok());
  EXPECT_LT(absl::Now() - start, absl::Seconds(3));
}

TEST(ClientTest, ServerErrorsBackOffThenUnavailable) {
  TestServer server;
  std::atomic<int> calls{0};
  server.http().Get("/api/v1/namespaces/x", [&](const httplib::Request&,
                                                httplib::Response& res) {
    ++calls;
    Reply(res, 503, StatusBody(503, "ServiceUnavailable", "etcd down"));
  });
  server.Serve();
  ClientOptions options = FastOptions();
  options.max_retries = 4;
  options.initial_backoff = absl::Milliseconds(50);
  options.max_backoff = absl::Milliseconds(100);
  auto client = MakeClient(server, options);
  absl::Time start = absl::Now();
  auto got = client->Get(NamespacePath("x"));
  absl::Duration took = absl::Now() - start;
  EXPECT_TRUE(absl::IsUnavailable(got.status())) << got.status();
  EXPECT_EQ(ApiReason(got.status()), "ServiceUnavailable");
  EXPECT_THAT(got.status().message(), HasSubstr("etcd down"));
  EXPECT_EQ(calls.load(), 5);
  // 50 + 100 + 100 + 100 ms of backoff: exponential, capped.
  EXPECT_GE(took, absl::Milliseconds(340));
  EXPECT_LT(took, absl::Seconds(3));
}

TEST(ClientTest, ServerErrorThenSuccessIsRetried) {
  TestServer server;
  std::atomic<int> calls{0};
  server.http().Post("/api/v1/namespaces",
                     [&](const httplib::Request&, httplib::Response& res) {
                       if (++calls < 3) {
                         Reply(res, 500, StatusBody(500, "InternalError", "x"));
                         return;
                       }
                       Reply(res, 201, {{"kind", "Namespace"}});
                     });
  server.Serve();
  auto client = MakeClient(server);
  auto got = client->Create(NamespacesPath(), {{"kind", "Namespace"}});
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(calls.load(), 3);
  EXPECT_EQ(client->request_count(), 3);
}

TEST(ClientTest, HangingRequestIsBounded) {
  TestServer server;
  server.http().Get("/api/v1/namespaces",
                    [&](const httplib::Request&, httplib::Response& res) {
                      server.Nap(10000);
                      Reply(res, 200, {{"kind", "NamespaceList"}});
                    });
  server.Serve();
  ClientOptions options = FastOptions();
  options.request_timeout = absl::Milliseconds(300);
  options.max_retries = 0;
  auto client = MakeClient(server, options);
  absl::Time start = absl::Now();
  auto got = client->Get("/api/v1/namespaces");
  EXPECT_TRUE(absl::IsDeadlineExceeded(got.status())) << got.status();
  EXPECT_LT(absl::Now() - start, absl::Seconds(3));
}

TEST(ClientTest, ConnectionRefusedIsRetriedThenUnavailable) {
  // A port that was bound and closed: nothing listens there.
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  socklen_t len = sizeof(addr);
  ASSERT_EQ(getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  int port = ntohs(addr.sin_port);
  close(fd);
  ClusterConfig config;
  config.server = absl::StrCat("http://127.0.0.1:", port);
  ClientOptions options = FastOptions();
  options.max_retries = 2;
  auto client = Client::Create(config, options);
  ASSERT_TRUE(client.ok());
  auto got = (*client)->Get("/version");
  EXPECT_TRUE(absl::IsUnavailable(got.status())) << got.status();
  EXPECT_EQ((*client)->request_count(), 3);
}

TEST(ClientTest, CreateRefusesBadConfiguration) {
  ClusterConfig config;
  config.server = "ftp://x";
  EXPECT_TRUE(absl::IsInvalidArgument(Client::Create(config).status()));
  config.server = "https://127.0.0.1:1";
  config.ca_pem = "not pem";
  EXPECT_TRUE(absl::IsInvalidArgument(Client::Create(config).status()));
  config.ca_pem = "";
  config.client_cert_pem = "-----BEGIN CERTIFICATE-----\n";
  EXPECT_TRUE(absl::IsInvalidArgument(Client::Create(config).status()));
}

// ---- watch ----

// Serves list + watch of pods in ns from a script of responses per request.
struct WatchScript {
  Mutex mu;
  std::vector<std::string> watch_versions;  // resourceVersion of each watch
  std::vector<std::string> watch_queries;
  int lists = 0;
};

std::string Event(const std::string& type, const nlohmann::json& object) {
  return nlohmann::json({{"type", type}, {"object", object}}).dump() + "\n";
}

TEST(ClientTest, WatchListsBookmarksReconnectsAndRelistsOnGone) {
  TestServer server;
  WatchScript script;
  server.http().Get("/api/v1/namespaces/ns/pods", [&](const httplib::Request&
                                                          req,
                                                      httplib::Response& res) {
    MutexLock lock(&script.mu);
    if (req.get_param_value("watch") != "1") {
      ++script.lists;
      nlohmann::json list = {{"kind", "PodList"}, {"metadata", {}}};
      if (script.lists == 1) {
        list["items"] = nlohmann::json::array({Pod("a", "5"), Pod("b", "6")});
        list["metadata"]["resourceVersion"] = "10";
      } else {
        // After the 410: a changed, b gone, c new.
        list["items"] = nlohmann::json::array({Pod("a", "20"), Pod("c", "19")});
        list["metadata"]["resourceVersion"] = "21";
      }
      Reply(res, 200, list);
      return;
    }
    script.watch_versions.push_back(req.get_param_value("resourceVersion"));
    script.watch_queries.push_back(
        absl::StrCat(req.get_param_value("allowWatchBookmarks"), " ",
                     req.get_param_value("timeoutSeconds")));
    size_t n = script.watch_versions.size();
    if (n == 4) {  // an HTTP 410 for the watch itself
      Reply(res, 410, StatusBody(410, "Expired", "too old"));
      return;
    }
    res.set_chunked_content_provider(
        "application/json", [&server, n](size_t, httplib::DataSink& sink) {
          std::string out;
          if (n == 1) {
            out =
                Event("MODIFIED", Pod("a", "11")) +
                Event("BOOKMARK", {{"kind", "Pod"},
                                   {"metadata", {{"resourceVersion", "15"}}}});
            sink.write(out.data(), out.size());
            return false;  // drops the connection mid-stream
          }
          if (n == 2) {
            out = Event("ERROR", StatusBody(410, "Expired", "compacted"));
            sink.write(out.data(), out.size());
            sink.done();
            return true;
          }
          if (n == 3) {
            sink.done();  // the server's timeoutSeconds ended it cleanly
            return true;
          }
          out = Event("ADDED", Pod("d", "30"));
          sink.write(out.data(), out.size());
          server.Nap(5000);
          sink.done();
          return true;
        });
  });
  server.Serve();
  auto client = MakeClient(server);
  std::vector<std::string> seen;
  WatchOptions options;
  options.timeout = absl::Seconds(7);
  absl::Status s = client->Watch(
      PodsPath("ns"), options,
      [&](const WatchEvent& e) {
        seen.push_back(absl::StrCat(
            e.type, " ", e.object["metadata"].value("name", ""), " ",
            e.object["metadata"].value("resourceVersion", "")));
        return e.object["metadata"].value("name", "") != "d";
      },
      nullptr);
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_THAT(seen, ElementsAre("ADDED a 5", "ADDED b 6", "MODIFIED a 11",
                                "BOOKMARK  15", "MODIFIED a 20", "ADDED c 19",
                                "DELETED b 6", "ADDED d 30"));
  MutexLock lock(&script.mu);
  // Watch 1 from the list; 2 resumes after the bookmark; 2 says 410 in the
  // stream (relist: 21); 3 ends cleanly; 4 is HTTP 410 (relist: nothing
  // changed, no events); 5 continues.
  EXPECT_THAT(script.watch_versions, ElementsAre("10", "15", "21", "21", "21"));
  EXPECT_EQ(script.watch_queries[0], "true 7");
  EXPECT_EQ(script.lists, 3);
}

TEST(ClientTest, WatchFromAResourceVersionSkipsTheList) {
  TestServer server;
  std::atomic<int> lists{0};
  server.http().Get(
      "/api/v1/namespaces/ns/pods",
      [&](const httplib::Request& req, httplib::Response& res) {
        if (req.get_param_value("watch") != "1") {
          ++lists;
          Reply(res, 200,
                {{"kind", "PodList"}, {"items", nlohmann::json::array()}});
          return;
        }
        EXPECT_EQ(req.get_param_value("resourceVersion"), "42");
        EXPECT_EQ(req.get_param_value("fieldSelector"), "metadata.name=p");
        std::string out = Event("DELETED", Pod("p", "43"));
        res.set_content(out, "application/json");
      });
  server.Serve();
  auto client = MakeClient(server);
  WatchOptions options;
  options.resource_version = "42";
  options.field_selector = "metadata.name=p";
  std::vector<std::string> seen;
  ASSERT_TRUE(client
                  ->Watch(
                      PodsPath("ns"), options,
                      [&](const WatchEvent& e) {
                        seen.push_back(e.type);
                        return false;
                      },
                      nullptr)
                  .ok());
  EXPECT_THAT(seen, ElementsAre("DELETED"));
  EXPECT_EQ(lists.load(), 0);
}

TEST(ClientTest, WatchStopsPromptlyOnCancel) {
  TestServer server;
  server.http().Get("/api/v1/namespaces/ns/pods",
                    [&](const httplib::Request& req, httplib::Response& res) {
                      if (req.get_param_value("watch") != "1") {
                        Reply(res, 200,
                              {{"kind", "PodList"},
                               {"items", nlohmann::json::array()},
                               {"metadata", {{"resourceVersion", "1"}}}});
                        return;
                      }
                      res.set_chunked_content_provider(
                          "application/json",
                          [&server](size_t, httplib::DataSink& sink) {
                            server.Nap(20000);  // a quiet watch
                            sink.done();
                            return true;
                          });
                    });
  server.Serve();
  auto client = MakeClient(server);
  CancelFlag cancel;
  std::thread canceller([&] {
    absl::SleepFor(absl::Milliseconds(300));
    cancel.Cancel();
  });
  absl::Time start = absl::Now();
  absl::Status s = client->Watch(
      PodsPath("ns"), WatchOptions(), [](const WatchEvent&) { return true; },
      &cancel);
  absl::Duration took = absl::Now() - start;
  canceller.join();
  EXPECT_TRUE(s.ok()) << s;
  EXPECT_LT(took, absl::Seconds(1));
}

TEST(ClientTest, WatchGivesUpWhenTheServerStaysDown) {
  TestServer server;
  std::atomic<int> watches{0};
  server.http().Get(
      "/api/v1/namespaces/ns/pods",
      [&](const httplib::Request& req, httplib::Response& res) {
        if (req.get_param_value("watch") != "1") {
          Reply(
              res, 200,
              {{"kind", "PodList"}, {"metadata", {{"resourceVersion", "1"}}}});
          return;
        }
        ++watches;
        Reply(res, 403, StatusBody(403, "Forbidden", "cannot watch pods"));
      });
  server.Serve();
  auto client = MakeClient(server);
  absl::Status s = client->Watch(
      PodsPath("ns"), WatchOptions(), [](const WatchEvent&) { return true; },
      nullptr);
  EXPECT_TRUE(absl::IsPermissionDenied(s)) << s;
  EXPECT_THAT(s.message(), HasSubstr("cannot watch pods"));
  EXPECT_EQ(watches.load(), 1);  // not retryable
}

// ---- logs ----

TEST(ClientTest, StreamLogDeliversLinesWithItsOptions) {
  TestServer server;
  std::string query;
  server.http().Get(
      "/api/v1/namespaces/ns/pods/p/log",
      [&](const httplib::Request& req, httplib::Response& res) {
        query = absl::StrCat(req.get_param_value("container"), " ",
                             req.get_param_value("follow"), " ",
                             req.get_param_value("timestamps"), " ",
                             req.get_param_value("sinceTime"));
        res.set_chunked_content_provider(
            "text/plain", [](size_t, httplib::DataSink& sink) {
              std::string a = "2026-01-01T00:00:01.5Z one\n2026-01-01T00:";
              std::string b = "00:02.5Z two\n2026-01-01T00:00:03Z last";
              sink.write(a.data(), a.size());
              sink.write(b.data(), b.size());
              sink.done();
              return true;
            });
      });
  server.Serve();
  auto client = MakeClient(server);
  LogOptions options;
  options.container = "task";
  options.follow = true;
  options.since_time = absl::FromUnixMillis(1767225601700);  // ...:01.7Z
  std::vector<std::string> lines;
  absl::Status s = client->StreamLog(
      "ns", "p", options,
      [&](absl::string_view line) {
        lines.emplace_back(line);
        return true;
      },
      nullptr);
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_THAT(lines, ElementsAre("2026-01-01T00:00:01.5Z one",
                                 "2026-01-01T00:00:02.5Z two",
                                 "2026-01-01T00:00:03Z last"));
  // sinceTime in whole seconds, rounded down.
  EXPECT_EQ(query, "task true true 2026-01-01T00:00:01Z");
}

TEST(ClientTest, StreamLogDroppedConnectionIsUnavailable) {
  TestServer server;
  server.http().Get("/api/v1/namespaces/ns/pods/p/log",
                    [&](const httplib::Request&, httplib::Response& res) {
                      res.set_chunked_content_provider(
                          "text/plain", [](size_t, httplib::DataSink& sink) {
                            std::string a = "one\n";
                            sink.write(a.data(), a.size());
                            return false;  // cut
                          });
                    });
  server.Serve();
  auto client = MakeClient(server);
  LogOptions options;
  options.follow = true;
  std::vector<std::string> lines;
  absl::Status s = client->StreamLog(
      "ns", "p", options,
      [&](absl::string_view line) {
        lines.emplace_back(line);
        return true;
      },
      nullptr);
  EXPECT_TRUE(absl::IsUnavailable(s)) << s;
  EXPECT_THAT(s.message(), HasSubstr("log stream of pod ns/p dropped"));
  EXPECT_THAT(lines, ElementsAre("one"));
  EXPECT_EQ(client->request_count(), 1);  // never re-sent after data
}

TEST(ClientTest, StreamLogStopsOnCancelAndOnFalse) {
  TestServer server;
  server.http().Get("/api/v1/namespaces/ns/pods/p/log",
                    [&](const httplib::Request&, httplib::Response& res) {
                      res.set_chunked_content_provider(
                          "text/plain",
                          [&server](size_t, httplib::DataSink& sink) {
                            std::string a = "one\ntwo\n";
                            sink.write(a.data(), a.size());
                            server.Nap(20000);
                            sink.done();
                            return true;
                          });
                    });
  server.Serve();
  auto client = MakeClient(server);
  LogOptions options;
  options.follow = true;
  // on_line false: returns after the first line.
  std::vector<std::string> lines;
  absl::Time start = absl::Now();
  ASSERT_TRUE(client
                  ->StreamLog(
                      "ns", "p", options,
                      [&](absl::string_view line) {
                        lines.emplace_back(line);
                        return false;
                      },
                      nullptr)
                  .ok());
  EXPECT_THAT(lines, ElementsAre("one"));
  EXPECT_LT(absl::Now() - start, absl::Seconds(1));

  CancelFlag cancel;
  lines.clear();
  std::thread canceller([&] {
    absl::SleepFor(absl::Milliseconds(300));
    cancel.Cancel();
  });
  start = absl::Now();
  absl::Status s = client->StreamLog(
      "ns", "p", options,
      [&](absl::string_view line) {
        lines.emplace_back(line);
        return true;
      },
      &cancel);
  absl::Duration took = absl::Now() - start;
  canceller.join();
  EXPECT_TRUE(s.ok()) << s;
  EXPECT_THAT(lines, ElementsAre("one", "two"));
  EXPECT_LT(took, absl::Seconds(1));
  // A cancelled flag stops the next call at once.
  start = absl::Now();
  EXPECT_TRUE(client
                  ->StreamLog(
                      "ns", "p", options,
                      [](absl::string_view) { return true; }, &cancel)
                  .ok());
  EXPECT_LT(absl::Now() - start, absl::Milliseconds(500));
}

TEST(ClientTest, StreamLogErrorBeforeTheStreamIsAnApiError) {
  TestServer server;
  server.http().Get("/api/v1/namespaces/ns/pods/p/log",
                    [&](const httplib::Request&, httplib::Response& res) {
                      Reply(res, 400,
                            StatusBody(400, "BadRequest",
                                       "container \"task\" in pod \"p\" is "
                                       "waiting to start: PodInitializing"));
                    });
  server.Serve();
  auto client = MakeClient(server);
  absl::Status s = client->StreamLog(
      "ns", "p", LogOptions(), [](absl::string_view) { return true; }, nullptr);
  EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
  EXPECT_THAT(s.message(), HasSubstr("waiting to start"));
}

TEST(CancelFlagTest, WaitForReturnsWhenCancelled) {
  CancelFlag flag;
  EXPECT_FALSE(flag.WaitFor(absl::Milliseconds(20)));
  std::thread t([&] {
    absl::SleepFor(absl::Milliseconds(50));
    flag.Cancel();
  });
  absl::Time start = absl::Now();
  EXPECT_TRUE(flag.WaitFor(absl::Seconds(10)));
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));
  t.join();
  EXPECT_TRUE(flag.cancelled());
}

TEST(CancelFlagTest, CancelWakesRegisteredTransfersOnce) {
  CancelFlag flag;
  int woken = 0, removed_woken = 0;
  int id = flag.AddWaker([&] { ++woken; });
  int gone = flag.AddWaker([&] { ++removed_woken; });
  flag.RemoveWaker(gone);
  EXPECT_EQ(woken, 0);
  flag.Cancel();
  EXPECT_EQ(woken, 1);
  EXPECT_EQ(removed_woken, 0);
  flag.RemoveWaker(id);
  flag.Cancel();  // again: nothing registered any more
  EXPECT_EQ(woken, 1);
}

}  // namespace
}  // namespace kiln::kube
