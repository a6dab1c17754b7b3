// The double over HTTP: storage, selectors, watch/RV/410, faults, graceful
// deletion with kubelet hooks, logs, limits, and a destructor that ends open
// streams.
#include "kube/testing/fake_api_server.h"

#include <httplib.h>

#include <atomic>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "base/mutex.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kiln {
namespace kube {
namespace testing {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;

class Http {
 public:
  explicit Http(const std::string& url) : cli_(url) {
    cli_.set_read_timeout(20, 0);
  }
  struct Resp {
    int code = 0;
    json body;
    std::string text;
    httplib::Headers headers;
  };
  Resp Do(const std::string& method, const std::string& path,
          const std::string& body = "",
          const std::string& ctype = "application/json") {
    auto run = [&]() -> httplib::Result {
      if (method == "POST") return cli_.Post(path.c_str(), body, ctype.c_str());
      if (method == "PUT") return cli_.Put(path.c_str(), body, ctype.c_str());
      if (method == "PATCH") {
        return cli_.Patch(path.c_str(), body, ctype.c_str());
      }
      if (method == "DELETE") {
        return cli_.Delete(path.c_str(), body, ctype.c_str());
      }
      return cli_.Get(path.c_str());
    };
    httplib::Result r = run();
    Resp out;
    if (!r) return out;
    out.code = r->status;
    out.text = r->body;
    out.headers = r->headers;
    out.body = json::parse(r->body, nullptr, false);
    return out;
  }

 private:
  httplib::Client cli_;
};

// A streaming GET read on its own thread.
class Stream {
 public:
  Stream(const std::string& url, const std::string& path) : cli_(url) {
    cli_.set_read_timeout(60, 0);
    thread_ = std::thread([this, path] {
      httplib::Result r = cli_.Get(
          path.c_str(),
          [this](const httplib::Response& res) {
            MutexLock l(&mu_);
            status_ = res.status;
            return true;
          },
          [this](const char* data, size_t n) {
            MutexLock l(&mu_);
            data_.append(data, n);
            return true;
          });
      MutexLock l(&mu_);
      done_ = true;
      error_ = !r;
    });
  }
  ~Stream() {
    cli_.stop();
    thread_.join();
  }
  std::vector<json> Events() const {
    std::vector<json> out;
    MutexLock l(&mu_);
    for (absl::string_view line :
         absl::StrSplit(data_, '\n', absl::SkipEmpty())) {
      out.push_back(json::parse(line, nullptr, false));
    }
    return out;
  }
  std::string data() const {
    MutexLock l(&mu_);
    return data_;
  }
  bool WaitFor(const std::function<bool(const std::string&)>& pred,
               absl::Duration timeout = absl::Seconds(10)) const {
    MutexLock l(&mu_);
    return mu_.AwaitWithDeadline(
               [&]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
                 return pred(data_) || done_;
               },
               absl::Now() + timeout) &&
           pred(data_);
  }
  bool WaitDone(absl::Duration timeout = absl::Seconds(10)) const {
    MutexLock l(&mu_);
    return mu_.AwaitWithDeadline(
        [&]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return done_; },
        absl::Now() + timeout);
  }
  bool error() const {
    MutexLock l(&mu_);
    return error_;
  }
  int status() const {
    MutexLock l(&mu_);
    return status_;
  }

 private:
  httplib::Client cli_;
  std::thread thread_;
  mutable Mutex mu_;
  std::string data_ ABSL_GUARDED_BY(mu_);
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  bool error_ ABSL_GUARDED_BY(mu_) = false;
  int status_ ABSL_GUARDED_BY(mu_) = 0;
};

json Pod(const std::string& name, json labels = json::object()) {
  return {{"apiVersion", "v1"},
          {"kind", "Pod"},
          {"metadata", {{"name", name}, {"labels", labels}}},
          {"spec",
           {{"restartPolicy", "Never"},
            {"containers", {{{"name", "main"}, {"image", "busybox:1"}}}}}}};
}

const char kPods[] = "/api/v1/namespaces/default/pods";

class FakeApiServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    FakeApiServerOptions opts;
    opts.bookmark_interval = absl::Milliseconds(200);
    opts.max_body_bytes = 1 << 20;
    auto s = FakeApiServer::Start(opts);
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = std::move(*s);
    http_ = std::make_unique<Http>(server_->url());
  }
  std::unique_ptr<FakeApiServer> server_;
  std::unique_ptr<Http> http_;
};

TEST_F(FakeApiServerTest, Discovery) {
  auto v = http_->Do("GET", "/version");
  EXPECT_EQ(v.code, 200);
  EXPECT_EQ(v.body["major"], "1");
  auto api = http_->Do("GET", "/api");
  EXPECT_EQ(api.body["versions"], json({"v1"}));
  auto v1 = http_->Do("GET", "/api/v1");
  std::vector<std::string> names;
  for (const json& r : v1.body["resources"]) names.push_back(r["name"]);
  EXPECT_THAT(names,
              ::testing::IsSupersetOf({"pods", "pods/log", "pods/status",
                                       "namespaces", "secrets", "configmaps",
                                       "events", "serviceaccounts"}));
  auto apps = http_->Do("GET", "/apis/apps/v1");
  EXPECT_EQ(apps.code, 200);
  EXPECT_EQ(apps.body["groupVersion"], "apps/v1");
  auto batch = http_->Do("GET", "/apis/batch/v1");
  EXPECT_EQ(batch.body["resources"][0]["name"], "jobs");
  auto missing = http_->Do("GET", "/apis/nope/v1");
  EXPECT_EQ(missing.code, 404);
  EXPECT_EQ(missing.body["kind"], "Status");
  auto oapi = http_->Do("GET", "/openapi/v2");
  EXPECT_EQ(oapi.code, 200);
  EXPECT_TRUE(oapi.body["definitions"].contains("io.k8s.api.core.v1.Pod"));
}

TEST_F(FakeApiServerTest, CreateGetListUpdateDelete) {
  auto c = http_->Do("POST", kPods, Pod("a", {{"app", "x"}}).dump());
  ASSERT_EQ(c.code, 201) << c.text;
  EXPECT_EQ(c.body["status"]["phase"], "Pending");
  EXPECT_FALSE(c.body["metadata"]["uid"].get<std::string>().empty());
  EXPECT_EQ(c.body["metadata"]["generation"], 1);
  EXPECT_FALSE(
      c.body["metadata"]["creationTimestamp"].get<std::string>().empty());
  std::string rv = c.body["metadata"]["resourceVersion"];

  auto dup = http_->Do("POST", kPods, Pod("a").dump());
  EXPECT_EQ(dup.code, 409);
  EXPECT_EQ(dup.body["reason"], "AlreadyExists");
  EXPECT_EQ(dup.body["message"], "pods \"a\" already exists");

  ASSERT_EQ(http_->Do("POST", kPods, Pod("b", {{"app", "y"}}).dump()).code,
            201);
  auto all = http_->Do("GET", kPods);
  EXPECT_EQ(all.body["kind"], "PodList");
  EXPECT_EQ(all.body["items"].size(), 2u);
  EXPECT_FALSE(all.body["items"][0].contains("kind"));
  auto sel = http_->Do("GET", std::string(kPods) + "?labelSelector=app%3Dy");
  ASSERT_EQ(sel.body["items"].size(), 1u);
  EXPECT_EQ(sel.body["items"][0]["metadata"]["name"], "b");
  auto fsel =
      http_->Do("GET", std::string(kPods) + "?fieldSelector=metadata.name%3Da");
  ASSERT_EQ(fsel.body["items"].size(), 1u);
  EXPECT_EQ(fsel.body["items"][0]["metadata"]["name"], "a");
  auto bad =
      http_->Do("GET", std::string(kPods) + "?fieldSelector=spec.foo%3Da");
  EXPECT_EQ(bad.code, 400);
  auto across =
      http_->Do("GET", "/api/v1/pods?fieldSelector=status.phase%3DPending");
  EXPECT_EQ(across.body["items"].size(), 2u);

  // Paging.
  auto page = http_->Do("GET", std::string(kPods) + "?limit=1");
  ASSERT_EQ(page.body["items"].size(), 1u);
  std::string cont = page.body["metadata"]["continue"];
  auto page2 =
      http_->Do("GET", std::string(kPods) + "?limit=1&continue=" + cont);
  ASSERT_EQ(page2.body["items"].size(), 1u);
  EXPECT_EQ(page2.body["items"][0]["metadata"]["name"], "b");
  EXPECT_FALSE(page2.body["metadata"].contains("continue"));

  // Update with a stale resourceVersion: Conflict.
  json obj = c.body;
  obj["metadata"]["labels"]["more"] = "1";
  auto up = http_->Do("PUT", std::string(kPods) + "/a", obj.dump());
  ASSERT_EQ(up.code, 200) << up.text;
  EXPECT_NE(up.body["metadata"]["resourceVersion"], rv);
  auto stale = http_->Do("PUT", std::string(kPods) + "/a", obj.dump());
  EXPECT_EQ(stale.code, 409);
  EXPECT_EQ(stale.body["reason"], "Conflict");

  // Pod spec is immutable apart from images.
  json spec_change = up.body;
  spec_change["spec"]["restartPolicy"] = "Always";
  auto forbidden =
      http_->Do("PUT", std::string(kPods) + "/a", spec_change.dump());
  EXPECT_EQ(forbidden.code, 422) << forbidden.text;
  json image_change = up.body;
  image_change["spec"]["containers"][0]["image"] = "busybox:2";
  auto image = http_->Do("PUT", std::string(kPods) + "/a", image_change.dump());
  EXPECT_EQ(image.code, 200) << image.text;
  EXPECT_EQ(image.body["metadata"]["generation"], 2);

  // Without a kubelet a delete is immediate; the pod comes back.
  auto del = http_->Do("DELETE", std::string(kPods) + "/a");
  EXPECT_EQ(del.code, 200);
  EXPECT_EQ(http_->Do("GET", std::string(kPods) + "/a").code, 404);
  auto nf = http_->Do("DELETE", std::string(kPods) + "/a");
  EXPECT_EQ(nf.code, 404);
  EXPECT_EQ(nf.body["reason"], "NotFound");
  EXPECT_EQ(nf.body["details"]["kind"], "pods");
}

TEST_F(FakeApiServerTest, Validation) {
  auto nons =
      http_->Do("POST", "/api/v1/namespaces/nope/pods", Pod("a").dump());
  EXPECT_EQ(nons.code, 404);
  EXPECT_EQ(nons.body["message"], "namespaces \"nope\" not found");
  json noimage = Pod("a");
  noimage["spec"]["containers"][0].erase("image");
  auto inv = http_->Do("POST", kPods, noimage.dump());
  EXPECT_EQ(inv.code, 422);
  EXPECT_EQ(inv.body["reason"], "Invalid");
  EXPECT_THAT(inv.body["message"].get<std::string>(),
              HasSubstr("spec.containers[0].image: Required value"));
  auto badname = http_->Do("POST", kPods, Pod("Bad_Name").dump());
  EXPECT_EQ(badname.code, 422);
  auto proto = http_->Do("POST", kPods, "\x6b\x38\x73\x00",
                         "application/vnd.kubernetes.protobuf");
  EXPECT_EQ(proto.code, 415);
  EXPECT_EQ(proto.body["kind"], "Status");
  EXPECT_THAT(proto.body["message"].get<std::string>(), HasSubstr("JSON"));
  auto notjson = http_->Do("POST", kPods, "{");
  EXPECT_EQ(notjson.code, 400);
  std::string huge(2 << 20, ' ');
  auto big = http_->Do("POST", kPods, huge);
  EXPECT_EQ(big.code, 413);
  auto gen = http_->Do(
      "POST", kPods,
      json{{"metadata", {{"generateName", "g-"}}}, {"spec", Pod("x")["spec"]}}
          .dump());
  ASSERT_EQ(gen.code, 201) << gen.text;
  EXPECT_EQ(gen.body["metadata"]["name"].get<std::string>().size(), 7u);
}

TEST_F(FakeApiServerTest, SecretsConfigMapsNamespacesServiceAccounts) {
  auto ns = http_->Do("POST", "/api/v1/namespaces",
                      json{{"metadata", {{"name", "team"}}}}.dump());
  ASSERT_EQ(ns.code, 201) << ns.text;
  EXPECT_EQ(ns.body["status"]["phase"], "Active");
  auto sa = http_->Do("GET", "/api/v1/namespaces/team/serviceaccounts/default");
  EXPECT_EQ(sa.code, 200);
  auto sec = http_->Do(
      "POST", "/api/v1/namespaces/team/secrets",
      json{{"metadata", {{"name", "s"}}}, {"stringData", {{"token", "abc"}}}}
          .dump());
  ASSERT_EQ(sec.code, 201) << sec.text;
  EXPECT_EQ(sec.body["data"]["token"], "YWJj");
  EXPECT_EQ(sec.body["type"], "Opaque");
  EXPECT_FALSE(sec.body.contains("stringData"));
  auto badsec = http_->Do(
      "POST", "/api/v1/namespaces/team/secrets",
      json{{"metadata", {{"name", "t"}}}, {"data", {{"x", "!!"}}}}.dump());
  EXPECT_EQ(badsec.code, 422);
  auto cm = http_->Do(
      "POST", "/api/v1/namespaces/team/configmaps",
      json{{"metadata", {{"name", "c"}}}, {"data", {{"k", "v"}}}}.dump());
  ASSERT_EQ(cm.code, 201);
  EXPECT_FALSE(cm.body["metadata"].contains("generation"));
  auto typed = http_->Do(
      "GET", "/api/v1/namespaces/team/secrets?fieldSelector=type%3DOpaque");
  EXPECT_EQ(typed.body["items"].size(), 1u);
  // Deleting the namespace deletes what it holds; the namespace stays
  // Terminating (refusing new content, 403) for a while, then is gone.
  auto deleted = http_->Do("DELETE", "/api/v1/namespaces/team");
  EXPECT_EQ(deleted.code, 200);
  EXPECT_EQ(deleted.body["status"]["phase"], "Terminating");
  EXPECT_TRUE(deleted.body["metadata"].contains("deletionTimestamp"));
  EXPECT_EQ(http_->Do("GET", "/api/v1/namespaces/team/secrets/s").code, 404);
  auto terminating = http_->Do("GET", "/api/v1/namespaces/team");
  EXPECT_EQ(terminating.code, 200);
  EXPECT_EQ(terminating.body["status"]["phase"], "Terminating");
  auto refused = http_->Do(
      "POST", "/api/v1/namespaces/team/configmaps",
      json{{"metadata", {{"name", "late"}}}, {"data", {{"k", "v"}}}}.dump());
  EXPECT_EQ(refused.code, 403);
  EXPECT_EQ(refused.body["reason"], "Forbidden");
  EXPECT_EQ(refused.body["details"]["causes"][0]["reason"],
            "NamespaceTerminating");
  EXPECT_THAT(refused.body["message"].get<std::string>(),
              ::testing::HasSubstr("unable to create new content in namespace "
                                   "team because it is being terminated"));
  int code = 200;
  for (int i = 0; i < 100 && code == 200; ++i) {
    absl::SleepFor(absl::Milliseconds(50));
    code = http_->Do("GET", "/api/v1/namespaces/team").code;
  }
  EXPECT_EQ(code, 404);
}

TEST_F(FakeApiServerTest, Patches) {
  json p = Pod("a", {{"app", "x"}});
  p["spec"]["containers"][0]["env"] = {{{"name", "A"}, {"value", "1"}}};
  ASSERT_EQ(http_->Do("POST", kPods, p.dump()).code, 201);
  std::string path = std::string(kPods) + "/a";
  auto merge = http_->Do("PATCH", path,
                         R"({"metadata":{"labels":{"app":null,"b":"2"}}})",
                         "application/merge-patch+json");
  ASSERT_EQ(merge.code, 200) << merge.text;
  EXPECT_EQ(merge.body["metadata"]["labels"], json({{"b", "2"}}));
  auto smp = http_->Do(
      "PATCH", path,
      R"({"metadata":{"annotations":{"k":"v"}},"spec":{"containers":[{"name":"main","image":"busybox:3"}]}})",
      "application/strategic-merge-patch+json");
  ASSERT_EQ(smp.code, 200) << smp.text;
  // Merged by name: env survives, image changed.
  EXPECT_EQ(smp.body["spec"]["containers"][0]["image"], "busybox:3");
  EXPECT_EQ(smp.body["spec"]["containers"][0]["env"][0]["value"], "1");
  auto jp =
      http_->Do("PATCH", path,
                R"([{"op":"add","path":"/metadata/labels/c","value":"3"}])",
                "application/json-patch+json");
  ASSERT_EQ(jp.code, 200) << jp.text;
  EXPECT_EQ(jp.body["metadata"]["labels"]["c"], "3");
  auto badjp = http_->Do(
      "PATCH", path, R"([{"op":"test","path":"/metadata/name","value":"z"}])",
      "application/json-patch+json");
  EXPECT_EQ(badjp.code, 422);
  auto stale =
      http_->Do("PATCH", path,
                R"({"metadata":{"resourceVersion":"1","labels":{"d":"4"}}})",
                "application/merge-patch+json");
  EXPECT_EQ(stale.code, 409);
  // Status subresource: only the status changes.
  auto st = http_->Do(
      "PATCH", path + "/status",
      R"({"status":{"phase":"Running"},"metadata":{"labels":{"e":"5"}}})",
      "application/merge-patch+json");
  ASSERT_EQ(st.code, 200) << st.text;
  EXPECT_EQ(st.body["status"]["phase"], "Running");
  EXPECT_FALSE(st.body["metadata"]["labels"].contains("e"));
  // The main resource ignores status.
  auto main = http_->Do("PATCH", path, R"({"status":{"phase":"Failed"}})",
                        "application/merge-patch+json");
  EXPECT_EQ(main.body["status"]["phase"], "Running");
}

TEST_F(FakeApiServerTest, WatchFromResourceVersionWithBookmarks) {
  auto list = http_->Do("GET", kPods);
  std::string rv = list.body["metadata"]["resourceVersion"];
  Stream w(server_->url(), std::string(kPods) +
                               "?watch=true&allowWatchBookmarks=true&"
                               "labelSelector=app%3Dx&resourceVersion=" +
                               rv);
  ASSERT_EQ(http_->Do("POST", kPods, Pod("a", {{"app", "x"}}).dump()).code,
            201);
  ASSERT_EQ(http_->Do("POST", kPods, Pod("other", {{"app", "y"}}).dump()).code,
            201);
  ASSERT_TRUE(
      server_
          ->MutatePod("default", "a",
                      [](json& pod) { pod["status"]["phase"] = "Running"; })
          .ok());
  // Relabelled out of the selector: DELETED for this watcher.
  ASSERT_EQ(http_
                ->Do("PATCH", std::string(kPods) + "/a",
                     R"({"metadata":{"labels":{"app":"z"}}})",
                     "application/merge-patch+json")
                .code,
            200);
  ASSERT_TRUE(w.WaitFor([](const std::string& d) {
    return d.find("DELETED") != std::string::npos &&
           d.find("BOOKMARK") != std::string::npos;
  }));
  std::vector<std::string> types;
  for (const json& e : w.Events()) {
    if (e["type"] == "BOOKMARK") {
      EXPECT_FALSE(e["object"]["metadata"]["resourceVersion"]
                       .get<std::string>()
                       .empty());
      continue;
    }
    EXPECT_EQ(e["object"]["metadata"]["name"], "a");
    types.push_back(e["type"]);
  }
  EXPECT_EQ(types, (std::vector<std::string>{"ADDED", "MODIFIED", "DELETED"}));

  // From "0": the current objects as ADDED.
  Stream w0(server_->url(), std::string(kPods) + "?watch=1&timeoutSeconds=1");
  ASSERT_TRUE(w0.WaitDone(absl::Seconds(5)));  // timeoutSeconds ends it
  EXPECT_FALSE(w0.error());
  EXPECT_EQ(w0.Events().size(), 2u);
}

TEST_F(FakeApiServerTest, CompactedResourceVersionIsGone) {
  ASSERT_EQ(http_->Do("POST", kPods, Pod("a").dump()).code, 201);
  auto list = http_->Do("GET", kPods + std::string("?limit=1"));
  std::string rv = list.body["metadata"]["resourceVersion"];
  ASSERT_EQ(http_->Do("POST", kPods, Pod("b").dump()).code, 201);
  server_->CompactHistory();
  Stream w(server_->url(),
           std::string(kPods) + "?watch=true&resourceVersion=" + rv);
  ASSERT_TRUE(w.WaitDone());
  auto events = w.Events();
  ASSERT_EQ(events.size(), 1u) << w.data();
  EXPECT_EQ(events[0]["type"], "ERROR");
  EXPECT_EQ(events[0]["object"]["code"], 410);
  EXPECT_EQ(events[0]["object"]["reason"], "Expired");
  // A watch from the current version still works.
  Stream ok(server_->url(), std::string(kPods) +
                                "?watch=true&resourceVersion=" +
                                absl::StrCat(server_->resource_version()));
  ASSERT_EQ(http_->Do("POST", kPods, Pod("c").dump()).code, 201);
  ASSERT_TRUE(ok.WaitFor([](const std::string& d) {
    return d.find("\"c\"") != std::string::npos;
  }));
  // ExpireWatches: an ERROR on the open watch, which then ends.
  server_->ExpireWatches();
  ASSERT_TRUE(ok.WaitDone());
  EXPECT_EQ(ok.Events().back()["object"]["code"], 410);
  // An old continue token is gone too.
  auto page = http_->Do("GET", kPods + std::string("?limit=1"));
  std::string cont = page.body["metadata"]["continue"];
  ASSERT_EQ(http_->Do("POST", kPods, Pod("d").dump()).code, 201);
  server_->CompactHistory();
  auto gone =
      http_->Do("GET", kPods + std::string("?limit=1&continue=") + cont);
  EXPECT_EQ(gone.code, 410);
}

TEST_F(FakeApiServerTest, HistoryWindowIsBounded) {
  FakeApiServerOptions opts;
  opts.history_limit = 3;
  auto s = FakeApiServer::Start(opts);
  ASSERT_TRUE(s.ok());
  Http h((*s)->url());
  int64_t start = (*s)->resource_version();
  for (int i = 0; i < 5; ++i) {
    ASSERT_EQ(h.Do("POST", kPods, Pod(absl::StrCat("p", i)).dump()).code, 201);
  }
  Stream old((*s)->url(), std::string(kPods) + "?watch=true&resourceVersion=" +
                              absl::StrCat(start));
  ASSERT_TRUE(old.WaitDone());
  EXPECT_EQ(old.Events().at(0)["type"], "ERROR");
  Stream recent((*s)->url(),
                std::string(kPods) +
                    "?watch=true&timeoutSeconds=1&resourceVersion=" +
                    absl::StrCat((*s)->resource_version() - 2));
  ASSERT_TRUE(recent.WaitDone());
  EXPECT_EQ(recent.Events().size(), 2u) << recent.data();
}

TEST_F(FakeApiServerTest, RequestCountsByVerbAndResource) {
  auto before = server_->request_counts();
  int64_t total_before = server_->request_count();
  std::string a = std::string(kPods) + "/a";
  ASSERT_EQ(http_->Do("GET", "/version").code, 200);
  ASSERT_EQ(http_->Do("POST", kPods, Pod("a").dump()).code, 201);
  ASSERT_EQ(http_->Do("GET", a).code, 200);
  ASSERT_EQ(http_->Do("GET", a).code, 200);
  ASSERT_EQ(http_->Do("GET", kPods).code, 200);
  ASSERT_EQ(http_
                ->Do("PATCH", a, R"({"metadata":{"labels":{"b":"2"}}})",
                     "application/merge-patch+json")
                .code,
            200);
  ASSERT_EQ(
      http_
          ->Do("PATCH", a + "/status", R"({"status":{"phase":"Running"}})",
               "application/merge-patch+json")
          .code,
      200);
  server_->AppendLog("default", "a", "main", "one", absl::Now());
  ASSERT_EQ(http_->Do("GET", a + "/log").code, 200);
  Stream w(server_->url(), std::string(kPods) + "?watch=1&timeoutSeconds=1");
  ASSERT_TRUE(w.WaitDone());
  ASSERT_EQ(http_->Do("GET", "/api/v1/namespaces/default/secrets").code, 200);
  ASSERT_EQ(http_->Do("DELETE", a).code, 200);
  // A fault is counted under the request it answered.
  server_->InjectFault("DELETE", ".*", 500, 1);
  ASSERT_EQ(http_->Do("DELETE", a).code, 500);
  auto after = server_->request_counts();
  std::map<std::string, int64_t> delta;
  int64_t sum = 0;
  for (const auto& [k, v] : after) {
    auto it = before.find(k);
    int64_t d = v - (it == before.end() ? 0 : it->second);
    if (d != 0) delta[k] = d;
    sum += d;
  }
  EXPECT_EQ(delta, (std::map<std::string, int64_t>{
                       {"GET nonresource", 1},
                       {"create pods", 1},
                       {"get pods", 2},
                       {"list pods", 1},
                       {"patch pods", 1},
                       {"patch pods/status", 1},
                       {"get pods/log", 1},
                       {"watch pods", 1},
                       {"list secrets", 1},
                       {"delete pods", 2},
                   }));
  EXPECT_EQ(sum, server_->request_count() - total_before);
}

TEST_F(FakeApiServerTest, Faults) {
  int64_t before = server_->request_count();
  server_->InjectFault("GET", "/api/v1/namespaces/default/pods", 429, 2, 3);
  auto a = http_->Do("GET", kPods);
  EXPECT_EQ(a.code, 429);
  EXPECT_EQ(a.body["reason"], "TooManyRequests");
  EXPECT_EQ(a.headers.count("Retry-After")
                ? a.headers.find("Retry-After")->second
                : "",
            std::string("3"));
  EXPECT_EQ(http_->Do("GET", kPods).code, 429);
  EXPECT_EQ(http_->Do("GET", kPods).code, 200);
  server_->InjectFault("", ".*/pods/.*", 503, 1);
  EXPECT_EQ(http_->Do("GET", std::string(kPods) + "/x").code, 503);
  EXPECT_EQ(http_->Do("GET", std::string(kPods) + "/x").code, 404);
  server_->InjectFault("POST", ".*", 409, 1);
  EXPECT_EQ(http_->Do("POST", kPods, Pod("a").dump()).code, 409);
  server_->InjectFault("GET", ".*/pods", 410, 1);
  Stream w(server_->url(), std::string(kPods) + "?watch=true");
  ASSERT_TRUE(w.WaitDone());
  EXPECT_EQ(w.status(), 200);
  EXPECT_EQ(w.Events().at(0)["type"], "ERROR");
  EXPECT_EQ(server_->request_count() - before, 7);

  // Dropped watches end without the final chunk.
  Stream d(server_->url(), std::string(kPods) + "?watch=true");
  ASSERT_EQ(http_->Do("POST", kPods, Pod("b").dump()).code, 201);
  ASSERT_TRUE(d.WaitFor([](const std::string& s) {
    return s.find("\"b\"") != std::string::npos;
  }));
  server_->DropWatches();
  ASSERT_TRUE(d.WaitDone());
  EXPECT_TRUE(d.error());
}

TEST_F(FakeApiServerTest, GracefulDeletionThroughKubeletHooks) {
  std::vector<std::string> created, deleting;
  Mutex mu;
  server_->SetKubelet(
      {[&](const json& pod) {
         MutexLock l(&mu);
         created.push_back(pod["metadata"]["name"]);
       },
       [&](const json& pod) {
         MutexLock l(&mu);
         deleting.push_back(pod["metadata"]["name"]);
         EXPECT_TRUE(pod["metadata"].contains("deletionTimestamp"));
         EXPECT_EQ(pod["metadata"]["deletionGracePeriodSeconds"], 30);
       }});
  ASSERT_EQ(http_->Do("POST", kPods, Pod("a").dump()).code, 201);
  {
    MutexLock l(&mu);
    EXPECT_EQ(created, std::vector<std::string>{"a"});
  }
  // Not bound yet: deleted at once, no hook (as the real server).
  ASSERT_EQ(http_->Do("DELETE", std::string(kPods) + "/a").code, 200);
  EXPECT_EQ(http_->Do("GET", std::string(kPods) + "/a").code, 404);

  ASSERT_EQ(http_->Do("POST", kPods, Pod("b").dump()).code, 201);
  ASSERT_TRUE(server_
                  ->MutatePod("default", "b",
                              [](json& pod) {
                                pod["spec"]["nodeName"] = "node-1";
                                pod["status"]["phase"] = "Running";
                              })
                  .ok());
  Stream w(server_->url(), std::string(kPods) + "?watch=true&resourceVersion=" +
                               absl::StrCat(server_->resource_version()));
  auto del = http_->Do("DELETE", std::string(kPods) + "/b");
  ASSERT_EQ(del.code, 200);
  EXPECT_TRUE(del.body["metadata"].contains("deletionTimestamp"));
  {
    MutexLock l(&mu);
    EXPECT_EQ(deleting, std::vector<std::string>{"b"});
  }
  auto still = http_->Do("GET", std::string(kPods) + "/b");
  EXPECT_EQ(still.code, 200);
  EXPECT_TRUE(still.body["metadata"].contains("deletionTimestamp"));
  ASSERT_TRUE(server_->FinalizePodDeletion("default", "b").ok());
  EXPECT_EQ(http_->Do("GET", std::string(kPods) + "/b").code, 404);
  EXPECT_EQ(server_->FinalizePodDeletion("default", "b").code(),
            absl::StatusCode::kNotFound);
  ASSERT_TRUE(w.WaitFor([](const std::string& d) {
    return d.find("DELETED") != std::string::npos;
  }));
  auto ev = w.Events();
  ASSERT_EQ(ev.size(), 2u);
  EXPECT_EQ(ev[0]["type"], "MODIFIED");
  EXPECT_EQ(ev[1]["type"], "DELETED");

  // grace 0 forces; a terminal pod goes at once.
  ASSERT_EQ(http_->Do("POST", kPods, Pod("c").dump()).code, 201);
  ASSERT_TRUE(
      server_
          ->MutatePod("default", "c",
                      [](json& pod) { pod["spec"]["nodeName"] = "node-1"; })
          .ok());
  ASSERT_EQ(
      http_->Do("DELETE", std::string(kPods) + "/c?gracePeriodSeconds=0").code,
      200);
  EXPECT_EQ(http_->Do("GET", std::string(kPods) + "/c").code, 404);
  MutexLock l(&mu);
  EXPECT_EQ(deleting.size(), 1u);
}

TEST_F(FakeApiServerTest, Logs) {
  ASSERT_EQ(http_->Do("POST", kPods, Pod("a").dump()).code, 201);
  std::string logs = std::string(kPods) + "/a/log";
  auto waiting = http_->Do("GET", logs);
  EXPECT_EQ(waiting.code, 400);
  EXPECT_THAT(waiting.text,
              HasSubstr("is waiting to start: ContainerCreating"));
  absl::Time t0 = absl::FromUnixMillis(1700000000250);
  server_->AppendLog("default", "a", "main", "one", t0);
  server_->AppendLog("default", "a", "main", "two",
                     t0 + absl::Milliseconds(500));
  server_->AppendLog("default", "a", "main", "three",
                     t0 + absl::Milliseconds(1000));
  auto all = http_->Do("GET", logs);
  EXPECT_EQ(all.text, "one\ntwo\nthree\n");
  auto ts = http_->Do("GET", logs + "?timestamps=true&container=main");
  EXPECT_EQ(ts.text,
            "2023-11-14T22:13:20.25Z one\n2023-11-14T22:13:20.75Z two\n"
            "2023-11-14T22:13:21.25Z three\n");
  // sinceTime in whole seconds: 22:13:20.75 repeats the whole second 20.
  auto since = http_->Do("GET", logs + "?sinceTime=2023-11-14T22:13:20.75Z");
  EXPECT_EQ(since.text, "one\ntwo\nthree\n");
  auto since21 = http_->Do("GET", logs + "?sinceTime=2023-11-14T22:13:21Z");
  EXPECT_EQ(since21.text, "three\n");
  EXPECT_EQ(http_->Do("GET", logs + "?tailLines=1").text, "three\n");
  EXPECT_EQ(http_->Do("GET", logs + "?limitBytes=5").text, "one\nt");
  EXPECT_EQ(http_->Do("GET", logs + "?container=nope").code, 400);

  // follow: streams new lines, ends at EndLog.
  Stream f(server_->url(), logs + "?follow=true");
  ASSERT_TRUE(
      f.WaitFor([](const std::string& d) { return d == "one\ntwo\nthree\n"; }));
  server_->AppendLog("default", "a", "main", "four", t0 + absl::Seconds(2));
  ASSERT_TRUE(f.WaitFor(
      [](const std::string& d) { return absl::EndsWith(d, "four\n"); }));
  server_->EndLog("default", "a", "main");
  ASSERT_TRUE(f.WaitDone());
  EXPECT_FALSE(f.error());
  EXPECT_EQ(f.data(), "one\ntwo\nthree\nfour\n");
  // After EndLog, follow returns at once.
  EXPECT_EQ(http_->Do("GET", logs + "?follow=true&tailLines=1").text, "four\n");
}

TEST_F(FakeApiServerTest, LogStreamsEndOnDropAndPodDeletion) {
  ASSERT_EQ(http_->Do("POST", kPods, Pod("a").dump()).code, 201);
  server_->AppendLog("default", "a", "main", "x", absl::Now());
  Stream dropped(server_->url(), std::string(kPods) + "/a/log?follow=true");
  ASSERT_TRUE(dropped.WaitFor([](const std::string& d) { return d == "x\n"; }));
  server_->DropLogStreams();
  ASSERT_TRUE(dropped.WaitDone());
  EXPECT_TRUE(dropped.error());
  Stream ended(server_->url(), std::string(kPods) + "/a/log?follow=true");
  ASSERT_TRUE(ended.WaitFor([](const std::string& d) { return d == "x\n"; }));
  ASSERT_EQ(http_->Do("DELETE", std::string(kPods) + "/a").code, 200);
  ASSERT_TRUE(ended.WaitDone());
  EXPECT_FALSE(ended.error());
}

TEST_F(FakeApiServerTest, EventsWithInvolvedObjectSelector) {
  ASSERT_EQ(http_->Do("POST", kPods, Pod("a").dump()).code, 201);
  ASSERT_EQ(http_->Do("POST", kPods, Pod("b").dump()).code, 201);
  server_->RecordEvent("default", "a", "Warning", "FailedScheduling",
                       "0/1 nodes are available");
  server_->RecordEvent("default", "b", "Normal", "Pulled", "pulled");
  auto evs = http_->Do("GET",
                       "/api/v1/namespaces/default/events?fieldSelector="
                       "involvedObject.name%3Da%2CinvolvedObject.kind%3DPod");
  ASSERT_EQ(evs.body["items"].size(), 1u) << evs.text;
  const json& e = evs.body["items"][0];
  EXPECT_EQ(e["reason"], "FailedScheduling");
  EXPECT_EQ(e["type"], "Warning");
  EXPECT_FALSE(e["involvedObject"]["uid"].get<std::string>().empty());
}

TEST_F(FakeApiServerTest, DestructorEndsOpenStreams) {
  ASSERT_EQ(http_->Do("POST", kPods, Pod("a").dump()).code, 201);
  server_->AppendLog("default", "a", "main", "x", absl::Now());
  auto w = std::make_unique<Stream>(server_->url(),
                                    std::string(kPods) + "?watch=true");
  auto l = std::make_unique<Stream>(server_->url(),
                                    std::string(kPods) + "/a/log?follow=true");
  ASSERT_TRUE(w->WaitFor([](const std::string& d) { return !d.empty(); }));
  ASSERT_TRUE(l->WaitFor([](const std::string& d) { return !d.empty(); }));
  absl::Time start = absl::Now();
  server_.reset();
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  EXPECT_TRUE(w->WaitDone(absl::Seconds(2)));
  EXPECT_TRUE(l->WaitDone(absl::Seconds(2)));
}

TEST_F(FakeApiServerTest, KubeconfigAndInProcessAccess) {
  std::string path = absl::StrCat(getenv("TEST_TMPDIR"), "/kubeconfig");
  ASSERT_TRUE(server_->WriteKubeconfig(path, "team").ok());
  std::ifstream f(path);
  std::string text((std::istreambuf_iterator<char>(f)), {});
  EXPECT_THAT(text, HasSubstr("server: " + server_->url()));
  EXPECT_THAT(text, HasSubstr("namespace: team"));
  EXPECT_THAT(text, HasSubstr("current-context: fake"));
  ASSERT_EQ(http_->Do("POST", kPods, Pod("a").dump()).code, 201);
  auto got = server_->GetObject(std::string(kPods) + "/a");
  ASSERT_TRUE(got.ok());
  EXPECT_EQ((*got)["metadata"]["name"], "a");
  EXPECT_EQ(server_->GetObject(std::string(kPods) + "/zz").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(server_->MutatePod("default", "zz", [](json&) {}).code(),
            absl::StatusCode::kNotFound);
}

TEST(FakeApiServerAuthTest, BearerTokenRequiredWhenSet) {
  FakeApiServerOptions opts;
  opts.bearer_token = "sekrit";
  auto s = FakeApiServer::Start(opts);
  ASSERT_TRUE(s.ok());
  httplib::Client cli((*s)->url());
  auto r = cli.Get("/api/v1/namespaces");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 401);
  auto ok = cli.Get("/api/v1/namespaces", {{"Authorization", "Bearer sekrit"}});
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200);
}

}  // namespace
}  // namespace testing
}  // namespace kube
}  // namespace kiln
