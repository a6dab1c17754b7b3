// PostWebhook against a receiver this test starts on loopback.
#include "engine/notify/webhook.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "base/mutex.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "httplib.h"
#include "nlohmann/json.hpp"

namespace kiln::notify {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// A receiver on 127.0.0.1: answers each POST with the next status of
// `statuses` (the last one repeats) and keeps the bodies.
class Receiver {
 public:
  explicit Receiver(std::vector<int> statuses)
      : statuses_(std::move(statuses)) {
    server_.Post(R"(/hooks/.*)", [this](const httplib::Request& req,
                                        httplib::Response& res) {
      MutexLock lock(&mu_);
      bodies_.push_back(req.body);
      content_types_.push_back(req.get_header_value("Content-Type"));
      size_t i = std::min(bodies_.size() - 1, statuses_.size() - 1);
      res.status = statuses_[i];
      res.set_content("ok", "text/plain");
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    while (!server_.is_running()) absl::SleepFor(absl::Milliseconds(1));
  }
  ~Receiver() {
    server_.stop();
    thread_.join();
  }
  std::string Url(const std::string& secret) const {
    return absl::StrCat("http://127.0.0.1:", port_, "/hooks/", secret);
  }
  std::vector<std::string> bodies() {
    MutexLock lock(&mu_);
    return bodies_;
  }
  std::vector<std::string> content_types() {
    MutexLock lock(&mu_);
    return content_types_;
  }

 private:
  httplib::Server server_;
  std::thread thread_;
  int port_ = 0;
  const std::vector<int> statuses_;
  Mutex mu_;
  std::vector<std::string> bodies_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> content_types_ ABSL_GUARDED_BY(mu_);
};

WebhookOptions Fast() {
  WebhookOptions o;
  o.first_backoff = absl::Milliseconds(20);
  o.max_backoff = absl::Milliseconds(100);
  o.total_timeout = absl::Seconds(5);
  o.attempt_timeout = absl::Seconds(2);
  return o;
}

TEST(WebhookTest, PostsTheJsonBody) {
  Receiver r({200});
  std::string body = TextBody("run 42 \"failed\" on main\n✓");
  auto d = PostWebhook(r.Url("T000/B000/XXXX"), body, Fast());
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->attempts, 1);
  EXPECT_EQ(d->http_status, 200);
  ASSERT_EQ(r.bodies().size(), 1u);
  nlohmann::json got = nlohmann::json::parse(r.bodies()[0]);
  EXPECT_EQ(got["text"], "run 42 \"failed\" on main\n✓");
  EXPECT_EQ(r.content_types()[0], "application/json");
}

TEST(WebhookTest, RetriesAfterA503) {
  Receiver r({503, 502, 200});
  auto d = PostWebhook(r.Url("x"), TextBody("hi"), Fast());
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->attempts, 3);
  EXPECT_EQ(r.bodies().size(), 3u);
}

TEST(WebhookTest, GivesUpWithinItsBoundWithoutShowingTheSecretPath) {
  Receiver r({503});
  WebhookOptions o = Fast();
  o.total_timeout = absl::Milliseconds(700);
  o.max_attempts = 1000;
  absl::Time start = absl::Now();
  auto d = PostWebhook(r.Url("s3cret-token-path"), TextBody("hi"), o);
  absl::Duration took = absl::Now() - start;
  ASSERT_FALSE(d.ok());
  EXPECT_TRUE(absl::IsDeadlineExceeded(d.status())) << d.status();
  EXPECT_LT(took, absl::Seconds(3));
  EXPECT_GE(r.bodies().size(), 2u);
  EXPECT_THAT(std::string(d.status().message()), HasSubstr("HTTP 503"));
  EXPECT_THAT(std::string(d.status().message()),
              Not(HasSubstr("s3cret-token-path")));
}

TEST(WebhookTest, AttemptsAreBounded) {
  Receiver r({500});
  WebhookOptions o = Fast();
  o.max_attempts = 3;
  auto d = PostWebhook(r.Url("x"), TextBody("hi"), o);
  EXPECT_TRUE(absl::IsUnavailable(d.status())) << d.status();
  EXPECT_EQ(r.bodies().size(), 3u);
}

TEST(WebhookTest, AClientErrorIsNotRetried) {
  Receiver r({404});
  auto d = PostWebhook(r.Url("gone"), TextBody("hi"), Fast());
  EXPECT_TRUE(absl::IsFailedPrecondition(d.status())) << d.status();
  EXPECT_EQ(r.bodies().size(), 1u);
}

TEST(WebhookTest, ConnectionRefusedIsRetriedThenReported) {
  // A loopback port that was free a moment ago: nothing listens there.
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  socklen_t len = sizeof(addr);
  ASSERT_EQ(getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  close(fd);
  WebhookOptions o = Fast();
  o.max_attempts = 3;
  absl::Time start = absl::Now();
  auto d = PostWebhook(
      absl::StrCat("http://127.0.0.1:", ntohs(addr.sin_port), "/hooks/k3y"),
      TextBody("hi"), o);
  ASSERT_TRUE(absl::IsUnavailable(d.status())) << d.status();
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));
  EXPECT_EQ(d.status().message().find("k3y"), std::string::npos);
}

TEST(WebhookTest, ASilentReceiverIsBoundedByTheBudget) {
  // Accepts connections (the kernel's backlog) but never answers.
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(listen(fd, 16), 0);
  socklen_t len = sizeof(addr);
  ASSERT_EQ(getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  WebhookOptions o = Fast();
  o.total_timeout = absl::Milliseconds(900);
  o.attempt_timeout = absl::Milliseconds(300);
  o.max_attempts = 100;
  absl::Time start = absl::Now();
  auto d = PostWebhook(
      absl::StrCat("http://127.0.0.1:", ntohs(addr.sin_port), "/hooks/k3y"),
      TextBody("hi"), o);
  absl::Duration took = absl::Now() - start;
  close(fd);
  EXPECT_TRUE(absl::IsDeadlineExceeded(d.status())) << d.status();
  EXPECT_LT(took, absl::Seconds(2));
  EXPECT_GE(took, absl::Milliseconds(800));
}

TEST(WebhookTest, OnlyHttpAndHttps) {
  auto d = PostWebhook("file:///etc/passwd", TextBody("hi"), Fast());
  EXPECT_TRUE(absl::IsInvalidArgument(d.status())) << d.status();
}

TEST(WebhookTest, RedactedUrlKeepsOnlySchemeAndHost) {
  EXPECT_EQ(RedactedUrl("https://user:pw@hooks.example/services/T/B/X?a=1"),
            "https://hooks.example/…");
  EXPECT_EQ(RedactedUrl("http://127.0.0.1:8080"), "http://127.0.0.1:8080/…");
  EXPECT_EQ(RedactedUrl("nonsense"), "(not a URL)");
}

}  // namespace
}  // namespace kiln::notify
