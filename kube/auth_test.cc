// Authentication end to end against a loopback server: exec credential
// plugins (real shell scripts), token files, and TLS with a throwaway CA
// made by `openssl` (server verification, tls-server-name, client
// certificates).
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <sstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "base/mutex.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kube/client.h"
#include "kube/test_server.h"

namespace kiln::kube {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using testing::TestServer;

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

void WriteFile(const std::string& path, const std::string& text,
               mode_t mode = 0644) {
  std::ofstream(path) << text;
  chmod(path.c_str(), mode);
}

std::string TempDir() {
  std::string tmpl = absl::StrCat(getenv("TEST_TMPDIR"), "/authXXXXXX");
  EXPECT_NE(mkdtemp(tmpl.data()), nullptr);
  return tmpl;
}

ClientOptions FastOptions() {
  ClientOptions o;
  o.initial_backoff = absl::Milliseconds(10);
  o.max_backoff = absl::Milliseconds(50);
  o.max_retries = 0;
  o.exec_plugin_timeout = absl::Seconds(10);
  return o;
}

// A server accepting exactly `accepted` bearer tokens (401 otherwise) on
// GET /version, recording each Authorization header.
class BearerServer {
 public:
  explicit BearerServer(std::vector<std::string> accepted)
      : accepted_(std::move(accepted)) {
    server_.http().Get("/version", [this](const httplib::Request& req,
                                          httplib::Response& res) {
      std::string auth = req.get_header_value("Authorization");
      MutexLock lock(&mu_);
      seen_.push_back(auth);
      for (const std::string& token : accepted_) {
        if (auth == "Bearer " + token) {
          res.set_content(R"({"gitVersion":"v1.32.0"})", "application/json");
          return;
        }
      }
      res.status = 401;
      res.set_content(
          R"({"kind":"Status","code":401,"reason":"Unauthorized","message":"Unauthorized"})",
          "application/json");
    });
    server_.Serve();
  }
  std::string url() const { return server_.url(); }
  std::vector<std::string> seen() {
    MutexLock lock(&mu_);
    return seen_;
  }

 private:
  TestServer server_;
  const std::vector<std::string> accepted_;
  Mutex mu_;
  std::vector<std::string> seen_;
};

// A plugin printing token "tok-N" (N counts its runs) that expires at
// `expiry`, recording its args, env and KUBERNETES_EXEC_INFO.
std::string WritePlugin(const std::string& dir, const std::string& expiry) {
  std::string path = dir + "/plugin.sh";
  WriteFile(path,
            absl::StrCat(R"(#!/bin/sh
n=$(cat "$PLUGIN_DIR/count" 2>/dev/null || echo 0)
n=$((n + 1))
echo $n > "$PLUGIN_DIR/count"
printf '%s' "$KUBERNETES_EXEC_INFO" > "$PLUGIN_DIR/info"
echo "$@" > "$PLUGIN_DIR/args"
echo "kiln-exec-plugin-ran" >&2
cat <<JSON
{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential",
 "status":{"token":"tok-$n","expirationTimestamp":")",
                         expiry, R"("}}
JSON
)"),
            0755);
  return path;
}

ClusterConfig ExecConfig(const std::string& server, const std::string& dir,
                         const std::string& command) {
  ClusterConfig config;
  config.context = "exec";
  config.server = server;
  ExecPlugin plugin;
  plugin.command = command;
  plugin.args = {"get-token", "--cluster=c"};
  plugin.env = {{"PLUGIN_DIR", dir}};
  plugin.api_version = "client.authentication.k8s.io/v1";
  config.exec = plugin;
  return config;
}

TEST(ExecPluginTest, TokenIsCachedAndThePluginReRunOnceOn401) {
  std::string dir = TempDir();
  BearerServer server({"tok-2"});
  auto client = Client::Create(
      ExecConfig(server.url(), dir, WritePlugin(dir, "2099-01-01T00:00:00Z")),
      FastOptions());
  ASSERT_TRUE(client.ok()) << client.status();
  ASSERT_TRUE((*client)->Get("/version").ok());
  // tok-1 was refused: the plugin ran again and tok-2 was accepted.
  EXPECT_THAT(server.seen(),
              ::testing::ElementsAre("Bearer tok-1", "Bearer tok-2"));
  ASSERT_TRUE((*client)->Get("/version").ok());
  EXPECT_EQ(ReadAll(dir + "/count"), "2\n");  // cached until it expires
  EXPECT_EQ(ReadAll(dir + "/args"), "get-token --cluster=c\n");
  nlohmann::json info = nlohmann::json::parse(ReadAll(dir + "/info"));
  EXPECT_EQ(info["apiVersion"], "client.authentication.k8s.io/v1");
  EXPECT_EQ(info["kind"], "ExecCredential");
  EXPECT_EQ(info["spec"]["interactive"], false);
}

TEST(ExecPluginTest, ExpiredCredentialIsRefreshed) {
  std::string dir = TempDir();
  BearerServer server({"tok-1", "tok-2", "tok-3"});
  auto client = Client::Create(
      ExecConfig(server.url(), dir, WritePlugin(dir, "2000-01-01T00:00:00Z")),
      FastOptions());
  ASSERT_TRUE(client.ok());
  ASSERT_TRUE((*client)->Get("/version").ok());
  ASSERT_TRUE((*client)->Get("/version").ok());
  EXPECT_THAT(server.seen(),
              ::testing::ElementsAre("Bearer tok-1", "Bearer tok-2"));
}

TEST(ExecPluginTest, StillRefusedIsUnauthenticatedAfterOneReRun) {
  std::string dir = TempDir();
  BearerServer server({"never"});
  auto client = Client::Create(
      ExecConfig(server.url(), dir, WritePlugin(dir, "2099-01-01T00:00:00Z")),
      FastOptions());
  ASSERT_TRUE(client.ok());
  auto got = (*client)->Get("/version");
  EXPECT_TRUE(absl::IsUnauthenticated(got.status())) << got.status();
  EXPECT_THAT(got.status().message(), Not(HasSubstr("tok-")));
  EXPECT_EQ(server.seen().size(), 2u);
}

TEST(ExecPluginTest, FailuresNameThePlugin) {
  std::string dir = TempDir();
  BearerServer server({"x"});
  auto run = [&](const std::string& command) {
    auto client =
        Client::Create(ExecConfig(server.url(), dir, command), FastOptions());
    EXPECT_TRUE(client.ok());
    auto status = (*client)->Get("/version").status();
    EXPECT_EQ((*client)->request_count(), 0) << "nothing is sent";
    return status;
  };
  absl::Status missing = run(dir + "/no-such-plugin");
  EXPECT_TRUE(absl::IsFailedPrecondition(missing)) << missing;
  EXPECT_THAT(missing.message(), HasSubstr("exec plugin \"" + dir +
                                           "/no-such-plugin\": not found"));
  absl::Status not_in_path = run("kiln-no-such-credential-plugin");
  EXPECT_THAT(not_in_path.message(), HasSubstr("not found"));

  WriteFile(dir + "/fails.sh",
            "#!/bin/sh\necho '{\"status\":{\"token\":\"secret-tok\"}}'\n"
            "echo boom >&2\nexit 3\n",
            0755);
  absl::Status fails = run(dir + "/fails.sh");
  EXPECT_TRUE(absl::IsFailedPrecondition(fails)) << fails;
  EXPECT_THAT(fails.message(),
              HasSubstr("fails.sh\": exited with status 3: boom"));
  EXPECT_THAT(fails.message(), Not(HasSubstr("secret-tok")));

  WriteFile(dir + "/garbage.sh", "#!/bin/sh\necho hello\n", 0755);
  absl::Status garbage = run(dir + "/garbage.sh");
  EXPECT_TRUE(absl::IsInvalidArgument(garbage)) << garbage;
  EXPECT_THAT(garbage.message(), HasSubstr("garbage.sh\": output is not"));

  WriteFile(
      dir + "/wrongversion.sh",
      "#!/bin/sh\necho '{\"apiVersion\":\"client.authentication.k8s.io/"
      "v1beta1\",\"kind\":\"ExecCredential\",\"status\":{\"token\":\"t\"}}'\n",
      0755);
  absl::Status version = run(dir + "/wrongversion.sh");
  EXPECT_TRUE(absl::IsInvalidArgument(version)) << version;
  EXPECT_THAT(version.message(), HasSubstr("apiVersion"));

  WriteFile(dir + "/hangs.sh", "#!/bin/sh\nexec sleep 30\n", 0755);
  ClusterConfig config = ExecConfig(server.url(), dir, dir + "/hangs.sh");
  ClientOptions options = FastOptions();
  options.exec_plugin_timeout = absl::Milliseconds(300);
  auto client = Client::Create(config, options);
  ASSERT_TRUE(client.ok());
  absl::Time start = absl::Now();
  absl::Status hangs = (*client)->Get("/version").status();
  EXPECT_TRUE(absl::IsDeadlineExceeded(hangs)) << hangs;
  EXPECT_THAT(hangs.message(), HasSubstr("hangs.sh\""));
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
}

TEST(TokenFileTest, ARotatedTokenIsReRead) {
  std::string dir = TempDir();
  BearerServer server({"one", "second"});
  ClusterConfig config;
  config.server = server.url();
  config.token = "ignored-when-a-file-is-set";
  config.token_file = dir + "/token";
  WriteFile(config.token_file, "one\n");
  auto client = Client::Create(config, FastOptions());
  ASSERT_TRUE(client.ok());
  ASSERT_TRUE((*client)->Get("/version").ok());
  WriteFile(config.token_file, "second\n");
  ASSERT_TRUE((*client)->Get("/version").ok());
  EXPECT_THAT(server.seen(),
              ::testing::ElementsAre("Bearer one", "Bearer second"));
  unlink(config.token_file.c_str());
  auto gone = (*client)->Get("/version");
  EXPECT_TRUE(absl::IsNotFound(gone.status())) << gone.status();
  EXPECT_THAT(gone.status().message(), HasSubstr("token file"));
}

// ---- TLS ----

class TlsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(TempDir());
    const std::string& d = *dir_;
    WriteFile(d + "/server.ext", "subjectAltName=DNS:kube.test\n");
    WriteFile(d + "/client.ext", "extendedKeyUsage=clientAuth\n");
    std::string script = absl::StrCat(
        "set -e; cd '", d, "'; exec >openssl.log 2>&1;",
        "openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt"
        " -days 2 -subj /CN=kiln-test-ca;",
        "openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr"
        " -subj /CN=kube.test;",
        "openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key"
        " -CAcreateserial -out server.crt -days 2 -extfile server.ext;",
        "openssl req -newkey rsa:2048 -nodes -keyout client.key -out client.csr"
        " -subj /CN=kiln-user;",
        "openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key"
        " -CAcreateserial -out client.crt -days 2 -extfile client.ext;");
    int rc = system(("/bin/sh -c \"" + script + "\"").c_str());
    ASSERT_EQ(rc, 0) << ReadAll(d + "/openssl.log");
  }
  static void TearDownTestSuite() { delete dir_; }

  void SetUp() override {
    const std::string& d = *dir_;
    server_ = std::make_unique<TestServer>(d + "/server.crt", d + "/server.key",
                                           d + "/ca.crt");
    server_->http().Get("/version", [this](const httplib::Request& req,
                                           httplib::Response& res) {
      std::string cn;
      if (req.ssl != nullptr) {
        X509* peer = SSL_get_peer_certificate(req.ssl);
        if (peer != nullptr) {
          char buf[256] = {0};
          X509_NAME_get_text_by_NID(X509_get_subject_name(peer), NID_commonName,
                                    buf, sizeof(buf));
          cn = buf;
          X509_free(peer);
        }
      }
      MutexLock lock(&mu_);
      client_cn_ = cn;
      res.set_content(R"({"gitVersion":"v1.32.0"})", "application/json");
    });
    server_->Serve();
  }

  ClusterConfig Config() const {
    const std::string& d = *dir_;
    ClusterConfig config;
    config.context = "tls";
    config.server = server_->url();
    config.ca_pem = ReadAll(d + "/ca.crt");
    config.tls_server_name = "kube.test";
    config.client_cert_pem = ReadAll(d + "/client.crt");
    config.client_key_pem = ReadAll(d + "/client.key");
    return config;
  }

  absl::Status Get(const ClusterConfig& config) {
    auto client = Client::Create(config, FastOptions());
    if (!client.ok()) return client.status();
    return (*client)->Get("/version").status();
  }

  std::string client_cn() {
    MutexLock lock(&mu_);
    return client_cn_;
  }

  static std::string* dir_;
  std::unique_ptr<TestServer> server_;
  Mutex mu_;
  std::string client_cn_;
};

std::string* TlsTest::dir_ = nullptr;

TEST_F(TlsTest, VerifiedServerAndClientCertificate) {
  absl::Status s = Get(Config());
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(client_cn(), "kiln-user");
}

TEST_F(TlsTest, ServerNameMustMatchTheCertificate) {
  ClusterConfig config = Config();
  config.tls_server_name = "";  // 127.0.0.1 is not in the certificate
  absl::Status s = Get(config);
  EXPECT_TRUE(absl::IsUnavailable(s)) << s;
  config.tls_server_name = "other.test";
  EXPECT_TRUE(absl::IsUnavailable(Get(config)));
}

TEST_F(TlsTest, UnknownCaIsRefusedUnlessVerificationIsOff) {
  ClusterConfig config = Config();
  config.ca_pem = "";  // the system's trust store does not know this CA
  absl::Status s = Get(config);
  EXPECT_TRUE(absl::IsUnavailable(s)) << s;
  config.insecure_skip_tls_verify = true;
  config.tls_server_name = "";
  s = Get(config);
  EXPECT_TRUE(s.ok()) << s;
  EXPECT_EQ(client_cn(), "kiln-user");
}

TEST_F(TlsTest, ServerRequiringAClientCertificateRefusesNone) {
  ClusterConfig config = Config();
  config.client_cert_pem = "";
  config.client_key_pem = "";
  absl::Status s = Get(config);
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(client_cn(), "");
}

TEST_F(TlsTest, ExecPluginSuppliesTheClientCertificate) {
  const std::string& d = *dir_;
  nlohmann::json cred = {
      {"apiVersion", "client.authentication.k8s.io/v1beta1"},
      {"kind", "ExecCredential"},
      {"status",
       {{"clientCertificateData", ReadAll(d + "/client.crt")},
        {"clientKeyData", ReadAll(d + "/client.key")}}}};
  WriteFile(d + "/cert-plugin.json", cred.dump());
  WriteFile(d + "/cert-plugin.sh",
            "#!/bin/sh\ncat \"$(dirname \"$0\")/cert-plugin.json\"\n", 0755);
  ClusterConfig config = Config();
  config.client_cert_pem = "";
  config.client_key_pem = "";
  ExecPlugin plugin;
  plugin.command = d + "/cert-plugin.sh";
  plugin.api_version = "client.authentication.k8s.io/v1beta1";
  config.exec = plugin;
  absl::Status s = Get(config);
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(client_cn(), "kiln-user");
}

}  // namespace
}  // namespace kiln::kube
