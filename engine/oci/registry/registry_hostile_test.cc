// The registry client against a registry double that misbehaves: wrong
// bytes, truncation, oversize, redirect loops, stalls, error statuses, and
// the bearer-token challenge flow (docker-registry's own token auth needs a
// signing setup, so the token service here is a double too).
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/time/clock.h"
#include "engine/cas/digest.h"
#include "engine/oci/registry/push.h"
#include "engine/oci/registry/registry.h"
#include "engine/oci/registry/testing/fake_http_server.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kiln::oci::registry {
namespace {

using testing::FakeHttpServer;
using testing::FakeRequest;
using testing::FakeResponse;
using ::testing::HasSubstr;
using ::testing::Not;

RegistryOptions FastOptions() {
  RegistryOptions o;
  o.retry.max_attempts = 3;
  o.retry.initial_backoff = absl::Milliseconds(1);
  o.retry.max_backoff = absl::Milliseconds(5);
  o.stall_timeout = absl::Seconds(1);
  o.request_timeout = absl::Seconds(5);
  o.blob_timeout = absl::Seconds(10);
  o.connect_timeout = absl::Seconds(5);
  return o;
}

std::unique_ptr<RegistrySources> Sources(RegistryOptions o = FastOptions()) {
  auto s = RegistrySources::Create(std::move(o));
  EXPECT_TRUE(s.ok()) << s.status();
  return *std::move(s);
}

std::unique_ptr<ImageSource> OpenRepo(RegistrySources& sources,
                                      const std::string& ref) {
  auto opened = sources.Open(ref);
  EXPECT_TRUE(opened.ok()) << opened.status();
  return std::move(opened->source);
}

// An anonymous memory file to fetch blobs into.
struct MemFile {
  MemFile() : fd(memfd_create("blob", MFD_CLOEXEC)) {}
  ~MemFile() { close(fd); }
  std::string Contents() const {
    std::string out;
    char buf[65536];
    off_t off = 0;
    ssize_t n;
    while ((n = pread(fd, buf, sizeof buf, off)) > 0) {
      out.append(buf, n);
      off += n;
    }
    return out;
  }
  int fd;
};

const std::string kManifest =
    std::string(R"({"schemaVersion":2,"mediaType":")") + kOciManifest +
    R"(","config":{"mediaType":")" + kOciConfig + R"(","digest":"sha256:)" +
    std::string(64, 'a') + R"(","size":2},"layers":[]})";

std::string Blob() {
  std::string b;
  for (int i = 0; i < 300000; ++i) b.push_back(static_cast<char>(i * 7 % 251));
  return b;
}

Descriptor BlobDescriptor(const std::string& bytes) {
  Descriptor d;
  d.media_type = kOciLayerGzip;
  d.digest = cas::Digest::Of(bytes).ToString();
  d.size = bytes.size();
  return d;
}

FakeResponse ManifestResponse(const std::string& bytes) {
  FakeResponse r;
  r.headers = {{"Content-Type", kOciManifest}};
  r.body = bytes;
  return r;
}

TEST(RegistryHostileTest, ManifestByDigestWithOtherBytesIsDataLoss) {
  auto server = FakeHttpServer::Start(
      [](const FakeRequest&) { return ManifestResponse(kManifest); });
  ASSERT_TRUE(server.ok());
  auto sources = Sources();
  std::string asked = cas::Digest::Of("something else").ToString();
  auto repo = OpenRepo(*sources, (*server)->address() + "/x/app@" + asked);
  auto m = repo->GetManifest(asked);
  ASSERT_FALSE(m.ok());
  EXPECT_TRUE(absl::IsDataLoss(m.status())) << m.status();
  EXPECT_THAT(m.status().message(),
              HasSubstr(cas::Digest::Of(kManifest).ToString()));
  EXPECT_THAT(m.status().message(), HasSubstr("repository x/app"));
  // By tag, the same bytes are accepted (and their digest reported).
  auto ok = repo->GetManifest("1");
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->digest, cas::Digest::Of(kManifest).ToString());
  EXPECT_EQ(ok->media_type, kOciManifest);
  auto reqs = (*server)->Requests();
  ASSERT_FALSE(reqs.empty());
  EXPECT_THAT(reqs.back().Header("accept"), HasSubstr(kDockerManifestList));
  EXPECT_THAT(reqs.back().Header("accept"), HasSubstr(kOciIndex));
}

TEST(RegistryHostileTest, DockerContentDigestMismatchIsDataLoss) {
  auto server = FakeHttpServer::Start([](const FakeRequest&) {
    FakeResponse r = ManifestResponse(kManifest);
    r.headers.push_back(
        {"Docker-Content-Digest", "sha256:" + std::string(64, 'b')});
    return r;
  });
  ASSERT_TRUE(server.ok());
  auto sources = Sources();
  auto repo = OpenRepo(*sources, (*server)->address() + "/x/app:1");
  auto m = repo->GetManifest("1");
  ASSERT_FALSE(m.ok());
  EXPECT_TRUE(absl::IsDataLoss(m.status())) << m.status();
  EXPECT_THAT(m.status().message(), HasSubstr("Docker-Content-Digest"));
}

TEST(RegistryHostileTest, OversizedManifestIsRefused) {
  auto server = FakeHttpServer::Start([](const FakeRequest&) {
    return ManifestResponse(std::string(kMaxManifestBytes + 100, ' '));
  });
  ASSERT_TRUE(server.ok());
  auto sources = Sources();
  auto repo = OpenRepo(*sources, (*server)->address() + "/x/app:1");
  auto m = repo->GetManifest("1");
  ASSERT_FALSE(m.ok());
  EXPECT_TRUE(absl::IsResourceExhausted(m.status())) << m.status();
  EXPECT_THAT(m.status().message(), HasSubstr("over the limit"));
}

TEST(RegistryHostileTest, SchemaOneOrUnknownMediaTypeIsRefused) {
  auto server = FakeHttpServer::Start([](const FakeRequest&) {
    FakeResponse r;
    r.headers = {{"Content-Type",
                  "application/vnd.docker.distribution.manifest.v1+prettyjws"}};
    r.body = R"({"schemaVersion":1})";
    return r;
  });
  ASSERT_TRUE(server.ok());
  auto sources = Sources();
  auto repo = OpenRepo(*sources, (*server)->address() + "/x/app:1");
  auto m = repo->GetManifest("1");
  ASSERT_FALSE(m.ok());
  EXPECT_TRUE(absl::IsInvalidArgument(m.status())) << m.status();
  EXPECT_THAT(m.status().message(), HasSubstr("schema 1"));
}

TEST(RegistryHostileTest, ErrorsNameRegistryRepositoryStatusAndCode) {
  auto server = FakeHttpServer::Start([](const FakeRequest&) {
    FakeResponse r;
    r.status = 404;
    r.headers = {{"Content-Type", "application/json"}};
    r.body =
        R"({"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{}}]})";
    return r;
  });
  ASSERT_TRUE(server.ok());
  auto sources = Sources();
  auto repo = OpenRepo(*sources, (*server)->address() + "/team/app:9");
  auto m = repo->GetManifest("9");
  ASSERT_FALSE(m.ok());
  EXPECT_TRUE(absl::IsNotFound(m.status())) << m.status();
  EXPECT_THAT(m.status().message(),
              HasSubstr("registry " + (*server)->address()));
  EXPECT_THAT(m.status().message(), HasSubstr("repository team/app"));
  EXPECT_THAT(m.status().message(), HasSubstr("HTTP 404"));
  EXPECT_THAT(m.status().message(),
              HasSubstr("MANIFEST_UNKNOWN: manifest unknown"));
}

TEST(RegistryHostileTest, RetriesServerErrorsAndHonoursRetryAfter) {
  std::atomic<int> calls{0};
  std::atomic<bool> always_busy{false};
  auto server = FakeHttpServer::Start([&](const FakeRequest&) {
    int n = ++calls;
    FakeResponse r;
    if (always_busy) n = 2;
    if (n == 1) {
      r.status = 503;
      return r;
    }
    if (n == 2) {
      r.status = 429;
      r.headers = {{"Retry-After", "0"}};
      return r;
    }
    return ManifestResponse(kManifest);
  });
  ASSERT_TRUE(server.ok());
  auto sources = Sources();
  auto repo = OpenRepo(*sources, (*server)->address() + "/x/app:1");
  auto m = repo->GetManifest("1");
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(calls.load(), 3);

  // Past the attempt limit the last error is returned.
  always_busy = true;
  calls = 0;
  auto failed = repo->GetManifest("1");
  ASSERT_FALSE(failed.ok());
  EXPECT_TRUE(absl::IsResourceExhausted(failed.status())) << failed.status();
  EXPECT_THAT(failed.status().message(), HasSubstr("HTTP 429"));
  EXPECT_EQ(calls.load(), 3);
}

TEST(RegistryHostileTest, BlobWithWrongBytesIsDataLoss) {
  std::string blob = Blob();
  std::string other = blob;
  other[1000] ^= 1;
  auto server = FakeHttpServer::Start([&](const FakeRequest&) {
    FakeResponse r;
    r.body = other;
    return r;
  });
  ASSERT_TRUE(server.ok());
  auto sources = Sources();
  auto repo = OpenRepo(*sources, (*server)->address() + "/x/app:1");
  MemFile out;
  absl::Status s = repo->FetchBlob(BlobDescriptor(blob), out.fd);
  ASSERT_FALSE(s.ok());
  EXPECT_TRUE(absl::IsDataLoss(s)) << s;
  EXPECT_THAT(s.message(), HasSubstr(cas::Digest::Of(other).ToString()));
  EXPECT_THAT(s.message(), HasSubstr(cas::Digest::Of(blob).ToString()));
}

TEST(RegistryHostileTest, BlobLongerThanItsSizeIsDataLoss) {
  std::string blob = Blob();
  auto server = FakeHttpServer::Start([&](const FakeRequest&) {
    FakeResponse r;
    r.body = blob + "extra";
    return r;
  });
  ASSERT_TRUE(server.ok());
  auto sources = Sources();
  auto repo = OpenRepo(*sources, (*server)->address() + "/x/app:1");
  MemFile out;
  absl::Status s = repo->FetchBlob(BlobDescriptor(blob), out.fd);
  EXPECT_TRUE(absl::IsDataLoss(s)) << s;
  EXPECT_THAT(s.message(), HasSubstr("more than the blob's size"));
}

TEST(RegistryHostileTest, InterruptedBlobResumesWithRange) {
  std::string blob = Blob();
  const size_t cut = 100000;
  auto server = FakeHttpServer::Start([&](const FakeRequest& req) {
    FakeResponse r;
    std::string range = req.Header("range");
    if (range.empty()) {
      r.body = blob.substr(0, cut);  // then the connection drops
      r.content_length = blob.size();
      return r;
    }
    size_t from = std::stoul(range.substr(strlen("bytes=")));
    r.status = 206;
    r.headers = {
        {"Content-Range",
         absl::StrCat("bytes ", from, "-", blob.size() - 1, "/", blob.size())}};
    r.body = blob.substr(from);
    return r;
  });
  ASSERT_TRUE(server.ok());
  auto sources = Sources();
  auto repo = OpenRepo(*sources, (*server)->address() + "/x/app:1");
  MemFile out;
  absl::Status s = repo->FetchBlob(BlobDescriptor(blob), out.fd);
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(out.Contents(), blob);
  auto reqs = (*server)->Requests();
  ASSERT_EQ(reqs.size(), 2u);
  EXPECT_EQ(reqs[1].Header("range"), absl::StrCat("bytes=", cut, "-"));
}

TEST(RegistryHostileTest, RangeIgnoredRestartsFromTheStart) {
  std::string blob = Blob();
  std::atomic<int> calls{0};
  auto server = FakeHttpServer::Start([&](const FakeRequest&) {
    FakeResponse r;
    r.body = blob;
    if (++calls == 1) {
      r.body = blob.substr(0, 5000);
      r.content_length = blob.size();
    }
    return r;  // 200 with everything, whatever the Range
  });
  ASSERT_TRUE(server.ok());
  auto sources = Sources();
  auto repo = OpenRepo(*sources, (*server)->address() + "/x/app:1");
  MemFile out;
  ASSERT_EQ(write(out.fd, "prefix", 6), 6);  // FetchBlob writes from here
  absl::Status s = repo->FetchBlob(BlobDescriptor(blob), out.fd);
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(out.Contents(), "prefix" + blob);
}

TEST(RegistryHostileTest, AlwaysTruncatedBlobFailsAfterTheAttempts) {
  std::string blob = Blob();
  auto server = FakeHttpServer::Start([&](const FakeRequest&) {
    FakeResponse r;
    r.body = blob.substr(0, 10);
    r.content_length = blob.size();
    return r;
  });
  ASSERT_TRUE(server.ok());
  auto sources = Sources();
  auto repo = OpenRepo(*sources, (*server)->address() + "/x/app:1");
  MemFile out;
  absl::Status s = repo->FetchBlob(BlobDescriptor(blob), out.fd);
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(s.message(), HasSubstr("gave up after 3 attempts"));
  EXPECT_THAT(s.message(), HasSubstr("GET blob"));
  EXPECT_EQ((*server)->Requests().size(), 3u);
}

TEST(RegistryHostileTest, RedirectLoopIsRefused) {
  std::string address;
  auto server = FakeHttpServer::Start([&](const FakeRequest& req) {
    FakeResponse r;
    r.status = 302;
    r.headers = {{"Location", "http://" + address + req.target}};
    return r;
  });
  ASSERT_TRUE(server.ok());
  address = (*server)->address();
  auto sources = Sources();
  auto repo = OpenRepo(*sources, address + "/x/app:1");
  MemFile out;
  absl::Status s = repo->FetchBlob(BlobDescriptor(Blob()), out.fd);
  ASSERT_FALSE(s.ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s;
  EXPECT_THAT(s.message(), HasSubstr("redirect"));
  EXPECT_LE((*server)->Requests().size(), 7u);
}

TEST(RegistryHostileTest, StalledServerTimesOut) {
  auto server = FakeHttpServer::Start([](const FakeRequest&) {
    FakeResponse r;
    r.hang = true;
    return r;
  });
  ASSERT_TRUE(server.ok());
  RegistryOptions o = FastOptions();
  o.retry.max_attempts = 1;
  auto sources = Sources(o);
  auto repo = OpenRepo(*sources, (*server)->address() + "/x/app:1");
  absl::Time start = absl::Now();
  auto m = repo->GetManifest("1");
  ASSERT_FALSE(m.ok());
  EXPECT_TRUE(absl::IsDeadlineExceeded(m.status())) << m.status();
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
}

// The bearer flow: 401 with a challenge, a token from the realm (basic auth
// with the configured credentials, the scope asked for), the request again
// with the token; the token is reused for the scope.
struct TokenRegistry {
  std::atomic<int> token_requests{0};
  std::string address;
  std::string last_token_query;
  Mutex mu;

  FakeResponse Handle(const FakeRequest& req) {
    FakeResponse r;
    if (req.Path() == "/token") {
      ++token_requests;
      {
        MutexLock lock(&mu);
        last_token_query = req.target;
      }
      if (req.Header("authorization") !=
          BasicAuthorization({"alice", "s3cret", ""})) {
        r.status = 401;
        r.body =
            R"({"errors":[{"code":"UNAUTHORIZED","message":"bad login"}]})";
        return r;
      }
      r.body = R"({"token":"tok-123","expires_in":300})";
      return r;
    }
    if (req.Header("authorization") != "Bearer tok-123") {
      r.status = 401;
      r.headers = {{"WWW-Authenticate",
                    "Bearer realm=\"http://" + address +
                        "/token\",service=\"fake-registry\",scope=\"x\""}};
      return r;
    }
    return ManifestResponse(kManifest);
  }
};

TEST(RegistryHostileTest, BearerChallengeFlow) {
  TokenRegistry reg;
  auto server = FakeHttpServer::Start(
      [&](const FakeRequest& req) { return reg.Handle(req); });
  ASSERT_TRUE(server.ok());
  reg.address = (*server)->address();
  RegistryOptions o = FastOptions();
  o.credentials[reg.address] = {"alice", "s3cret", ""};
  auto sources = Sources(o);
  auto repo = OpenRepo(*sources, reg.address + "/team/app:1");
  auto m = repo->GetManifest("1");
  ASSERT_TRUE(m.ok()) << m.status();
  auto again = repo->GetManifest("1");
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(reg.token_requests.load(), 1);
  {
    MutexLock lock(&reg.mu);
    EXPECT_THAT(reg.last_token_query, HasSubstr("service=fake-registry"));
    EXPECT_THAT(reg.last_token_query,
                HasSubstr("scope=repository%3Ateam%2Fapp%3Apull"));
  }
}

TEST(RegistryHostileTest, BearerWithWrongCredentialsNeverShowsThem) {
  TokenRegistry reg;
  auto server = FakeHttpServer::Start(
      [&](const FakeRequest& req) { return reg.Handle(req); });
  ASSERT_TRUE(server.ok());
  reg.address = (*server)->address();
  RegistryOptions o = FastOptions();
  o.credentials[reg.address] = {"alice", "wrong-password-xyz", ""};
  auto sources = Sources(o);
  auto repo = OpenRepo(*sources, reg.address + "/team/app:1");
  auto m = repo->GetManifest("1");
  ASSERT_FALSE(m.ok());
  EXPECT_TRUE(absl::IsUnauthenticated(m.status())) << m.status();
  EXPECT_THAT(m.status().message(), HasSubstr("credentials were refused"));
  EXPECT_THAT(m.status().message(), HasSubstr("bad login"));
  EXPECT_THAT(m.status().message(), Not(HasSubstr("wrong-password-xyz")));
  EXPECT_THAT(
      m.status().message(),
      Not(HasSubstr(
          BasicAuthorization({"alice", "wrong-password-xyz", ""}).substr(6))));
}

TEST(RegistryHostileTest, PlainHttpRealmOffLoopbackIsRefused) {
  auto server = FakeHttpServer::Start([](const FakeRequest&) {
    FakeResponse r;
    r.status = 401;
    r.headers = {{"WWW-Authenticate",
                  R"(Bearer realm="http://auth.example/token",service="s")"}};
    return r;
  });
  ASSERT_TRUE(server.ok());
  RegistryOptions o = FastOptions();
  o.credentials[(*server)->address()] = {"alice", "s3cret", ""};
  auto sources = Sources(o);
  auto repo = OpenRepo(*sources, (*server)->address() + "/x/app:1");
  auto m = repo->GetManifest("1");
  ASSERT_FALSE(m.ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(m.status())) << m.status();
  EXPECT_THAT(m.status().message(), HasSubstr("not HTTPS"));
  EXPECT_EQ((*server)->Requests().size(), 1u);
}

TEST(RegistryHostileTest, BasicChallengeWithoutCredentialsSaysSo) {
  auto server = FakeHttpServer::Start([](const FakeRequest&) {
    FakeResponse r;
    r.status = 401;
    r.headers = {{"WWW-Authenticate", R"(Basic realm="r")"}};
    return r;
  });
  ASSERT_TRUE(server.ok());
  auto sources = Sources();
  auto repo = OpenRepo(*sources, (*server)->address() + "/x/app:1");
  auto m = repo->GetManifest("1");
  ASSERT_FALSE(m.ok());
  EXPECT_TRUE(absl::IsUnauthenticated(m.status())) << m.status();
  EXPECT_THAT(m.status().message(), HasSubstr("none are configured"));
}

TEST(RegistryHostileTest, UploadLocationOnAnotherOriginIsRefused) {
  auto server = FakeHttpServer::Start([](const FakeRequest& req) {
    FakeResponse r;
    if (req.method == "HEAD") {
      r.status = 404;
      return r;
    }
    r.status = 202;
    r.headers = {{"Location", "http://elsewhere.example/upload/1"}};
    return r;
  });
  ASSERT_TRUE(server.ok());
  auto sources = Sources();
  auto opened = sources->Open((*server)->address() + "/x/app:1");
  ASSERT_TRUE(opened.ok());
  auto* repo = static_cast<RegistrySource*>(opened->source.get());
  std::string blob = "hello";
  MemFile in;
  ASSERT_EQ(write(in.fd, blob.data(), blob.size()), 5);
  absl::Status s = repo->PushBlob(BlobDescriptor(blob), in.fd);
  ASSERT_FALSE(s.ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s;
  EXPECT_THAT(s.message(), HasSubstr("not on the registry itself"));
}

// A chunked upload whose second chunk fails: the client asks the registry
// how much it has and resumes there.
TEST(RegistryHostileTest, ChunkedUploadResumesAfterAFailedChunk) {
  std::string blob = Blob();
  std::string received;
  int patches = 0;
  std::string put_digest;
  auto server = FakeHttpServer::Start([&](const FakeRequest& req) {
    FakeResponse r;
    if (req.method == "HEAD") {
      r.status = 404;
      return r;
    }
    if (req.method == "POST") {
      r.status = 202;
      r.headers = {{"Location", "/v2/x/app/blobs/uploads/u1"}};
      return r;
    }
    auto range = [&] {
      return absl::StrCat("0-", received.empty() ? 0 : received.size() - 1);
    };
    if (req.method == "PATCH") {
      if (++patches == 2) {
        r.status = 500;
        return r;
      }
      std::string cr = req.Header("content-range");
      size_t from = std::stoul(cr.substr(0, cr.find('-')));
      EXPECT_EQ(from, received.size());
      received += req.body;
      r.status = 202;
      r.headers = {{"Location", "/v2/x/app/blobs/uploads/u1"},
                   {"Range", range()}};
      return r;
    }
    if (req.method == "GET") {
      r.status = 204;
      r.headers = {{"Location", "/v2/x/app/blobs/uploads/u1"},
                   {"Range", range()}};
      return r;
    }
    if (req.method == "PUT") {
      put_digest = req.target.substr(req.target.find("digest=") + 7);
      r.status = cas::Digest::Of(received).ToString() ==
                         absl::StrReplaceAll(put_digest, {{"%3A", ":"}})
                     ? 201
                     : 400;
      return r;
    }
    r.status = 500;
    return r;
  });
  ASSERT_TRUE(server.ok());
  RegistryOptions o = FastOptions();
  o.chunked_upload_threshold = 1000;
  o.chunk_bytes = 64 << 10;
  auto sources = Sources(o);
  auto opened = sources->Open((*server)->address() + "/x/app:1");
  ASSERT_TRUE(opened.ok());
  auto* repo = static_cast<RegistrySource*>(opened->source.get());
  MemFile in;
  ASSERT_EQ(write(in.fd, blob.data(), blob.size()),
            static_cast<ssize_t>(blob.size()));
  absl::Status s = repo->PushBlob(BlobDescriptor(blob), in.fd);
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(received, blob);
  EXPECT_EQ(patches, 6);  // 5 chunks of 64 KiB, one of them sent twice
}

}  // namespace
}  // namespace kiln::oci::registry

namespace kiln::oci::registry {
namespace {

TEST(RegistryTransportTest, PlainHttpOnlyForLoopbackOrListedRegistries) {
  auto server = FakeHttpServer::Start(
      [](const FakeRequest&) { return ManifestResponse(kManifest); });
  ASSERT_TRUE(server.ok());
  const std::string addr = (*server)->address();
  // Loopback without the loopback allowance: HTTPS is spoken, and fails
  // against a plain-HTTP server (never falling back).
  RegistryOptions strict = FastOptions();
  strict.plain_http_loopback = false;
  strict.retry.max_attempts = 1;
  strict.connect_timeout = absl::Seconds(1);  // the TLS handshake stalls
  auto sources = Sources(strict);
  auto m = OpenRepo(*sources, addr + "/x/app:1")->GetManifest("1");
  ASSERT_FALSE(m.ok());
  EXPECT_THAT(m.status().message(), HasSubstr("https://" + addr));
  for (const FakeRequest& r : (*server)->Requests()) {
    EXPECT_NE(r.method, "GET") << "a plain-HTTP request reached the server";
  }
  // Listed as insecure: plain HTTP.
  strict.insecure_registries = {addr};
  auto listed = Sources(strict);
  auto ok = OpenRepo(*listed, addr + "/x/app:1")->GetManifest("1");
  EXPECT_TRUE(ok.ok()) << ok.status();
}

// One RegistrySources shared by threads: one token per scope is enough,
// every pull verified.
TEST(RegistryTransportTest, ConcurrentPullsShareOneSources) {
  TokenRegistry reg;
  std::string blob = Blob();
  auto server = FakeHttpServer::Start([&](const FakeRequest& req) {
    if (req.Path().find("/blobs/") != std::string::npos &&
        req.Header("authorization") == "Bearer tok-123") {
      FakeResponse r;
      r.body = blob;
      return r;
    }
    return reg.Handle(req);
  });
  ASSERT_TRUE(server.ok());
  reg.address = (*server)->address();
  RegistryOptions o = FastOptions();
  o.credentials[reg.address] = {"alice", "s3cret", ""};
  auto sources = Sources(o);
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&] {
      auto opened = sources->Open(reg.address + "/team/app:1");
      if (!opened.ok()) return;
      auto m = opened->source->GetManifest("1");
      MemFile out;
      absl::Status s = opened->source->FetchBlob(BlobDescriptor(blob), out.fd);
      if (m.ok() && s.ok() && out.Contents() == blob) ++ok;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), 4);
  EXPECT_GE(reg.token_requests.load(), 1);
  EXPECT_LE(reg.token_requests.load(), 4);
}

TEST(RegistryTransportTest, CredentialsAreNotSentToARedirectTarget) {
  std::string blob = Blob();
  auto storage = FakeHttpServer::Start([&](const FakeRequest&) {
    FakeResponse r;
    r.body = blob;
    return r;
  });
  ASSERT_TRUE(storage.ok());
  std::string storage_addr = (*storage)->address();
  auto server = FakeHttpServer::Start([&](const FakeRequest& req) {
    FakeResponse r;
    if (req.Header("authorization").empty()) {
      r.status = 401;
      r.headers = {{"WWW-Authenticate", R"(Basic realm="r")"}};
      return r;
    }
    r.status = 307;
    r.headers = {{"Location", "http://" + storage_addr + "/blob"}};
    return r;
  });
  ASSERT_TRUE(server.ok());
  RegistryOptions o = FastOptions();
  o.credentials[(*server)->address()] = {"alice", "s3cret", ""};
  auto sources = Sources(o);
  auto repo = OpenRepo(*sources, (*server)->address() + "/x/app:1");
  MemFile out;
  absl::Status s = repo->FetchBlob(BlobDescriptor(blob), out.fd);
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(out.Contents(), blob);
  auto reqs = (*storage)->Requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].Header("authorization"), "");
}

}  // namespace
}  // namespace kiln::oci::registry
