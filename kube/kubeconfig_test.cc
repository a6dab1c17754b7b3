#include "kube/kubeconfig.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kiln::kube {
namespace {

using ::testing::HasSubstr;

constexpr char kCaPem[] =
    "-----BEGIN CERTIFICATE-----\nCA\n-----END CERTIFICATE-----\n";
constexpr char kCertPem[] =
    "-----BEGIN CERTIFICATE-----\nCERT\n-----END CERTIFICATE-----\n";
constexpr char kKeyPem[] =
    "-----BEGIN PRIVATE KEY-----\nKEY\n-----END PRIVATE KEY-----\n";

class KubeconfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = absl::StrCat(getenv("TEST_TMPDIR"), "/kcXXXXXX");
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    unsetenv("KUBECONFIG");
    unsetenv("KUBERNETES_SERVICE_HOST");
    unsetenv("KUBERNETES_SERVICE_PORT");
    setenv("HOME", (dir_ + "/home").c_str(), 1);
  }
  std::string Write(const std::string& rel, const std::string& text) {
    std::string path = dir_ + "/" + rel;
    size_t slash = path.rfind('/');
    std::string parent = path.substr(0, slash);
    std::string cmd = "mkdir -p '" + parent + "'";
    EXPECT_EQ(system(cmd.c_str()), 0);
    std::ofstream(path) << text;
    return path;
  }
  std::string dir_;
};

TEST_F(KubeconfigTest, MergesFilesFirstDefinitionWins) {
  std::string a = Write("a/config", R"(
apiVersion: v1
kind: Config
current-context: one
clusters:
- name: c
  cluster: {server: "https://first:6443/"}
contexts:
- name: one
  context: {cluster: c, user: u, namespace: team-cicd}
users:
- name: u
  user: {token: from-a}
)");
  std::string b = Write("b/config", R"(
current-context: two
clusters:
- name: c
  cluster: {server: "https://second:6443"}
- name: d
  cluster: {server: "http://127.0.0.1:8080"}
contexts:
- name: one
  context: {cluster: d}
- name: two
  context: {cluster: d, user: v}
users:
- name: u
  user: {token: from-b}
- name: v
  user: {token: vee}
)");
  // A missing entry of the KUBECONFIG list is skipped, as client-go does.
  setenv("KUBECONFIG", (a + ":" + dir_ + "/missing:" + b).c_str(), 1);
  auto config = LoadClusterConfig({});
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->context, "one");
  EXPECT_EQ(config->server, "https://first:6443");
  EXPECT_EQ(config->token, "from-a");
  EXPECT_EQ(config->namespace_name, "team-cicd");

  LoadOptions options;
  options.context = "two";
  config = LoadClusterConfig(options);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->server, "http://127.0.0.1:8080");
  EXPECT_EQ(config->token, "vee");
  EXPECT_EQ(config->namespace_name, "");

  // Explicit paths in the other order: b's entries win now.
  options.kubeconfig_paths = {b, a};
  options.context = "";
  config = LoadClusterConfig(options);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->context, "two");
}

TEST_F(KubeconfigTest, HomeKubeConfigIsTheDefault) {
  Write("home/.kube/config", R"(
current-context: x
clusters: [{name: c, cluster: {server: "https://h:1"}}]
contexts: [{name: x, context: {cluster: c}}]
)");
  auto config = LoadClusterConfig({});
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->server, "https://h:1");
  EXPECT_EQ(config->token, "");
}

TEST_F(KubeconfigTest, CertificatesFromDataOrRelativeFiles) {
  Write("k/pki/ca.crt", kCaPem);
  Write("k/pki/client.crt", kCertPem);
  Write("k/pki/client.key", kKeyPem);
  Write("k/token", "  file-token\n");
  std::string path =
      Write("k/config", absl::StrCat(R"(
current-context: files
clusters:
- name: files
  cluster:
    server: https://h:1
    certificate-authority: pki/ca.crt
    tls-server-name: kube.test
- name: data
  cluster:
    server: https://h:2
    certificate-authority: does-not-matter
    certificate-authority-data: )",
                                     absl::Base64Escape(kCaPem),
                                     R"(
    insecure-skip-tls-verify: true
contexts:
- {name: files, context: {cluster: files, user: files}}
- {name: data, context: {cluster: data, user: data}}
users:
- name: files
  user:
    client-certificate: pki/client.crt
    client-key: pki/client.key
    tokenFile: token
- name: data
  user:
    client-certificate-data: )",
                                     absl::Base64Escape(kCertPem),
                                     R"(
    client-key-data: )",
                                     absl::Base64Escape(kKeyPem),
                                     R"(
)"));
  LoadOptions options;
  options.kubeconfig_paths = {path};
  auto config = LoadClusterConfig(options);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->ca_pem, kCaPem);
  EXPECT_EQ(config->client_cert_pem, kCertPem);
  EXPECT_EQ(config->client_key_pem, kKeyPem);
  EXPECT_EQ(config->token_file, dir_ + "/k/token");
  EXPECT_EQ(config->tls_server_name, "kube.test");
  EXPECT_FALSE(config->insecure_skip_tls_verify);

  options.context = "data";
  config = LoadClusterConfig(options);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->ca_pem, kCaPem);  // data wins over the file
  EXPECT_EQ(config->client_cert_pem, kCertPem);
  EXPECT_EQ(config->client_key_pem, kKeyPem);
  EXPECT_TRUE(config->insecure_skip_tls_verify);
}

TEST_F(KubeconfigTest, ExecPlugin) {
  std::string path = Write("e/config", R"(
current-context: rel
clusters: [{name: c, cluster: {server: "https://h:1"}}]
contexts:
- {name: rel, context: {cluster: c, user: rel}}
- {name: bare, context: {cluster: c, user: bare}}
- {name: old, context: {cluster: c, user: old}}
users:
- name: rel
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1
      command: ./bin/plugin
      args: [get-token, --cluster, c]
      env: [{name: A, value: "1"}, {name: B, value: two}]
      interactiveMode: Never
      installHint: install it
- name: bare
  user:
    exec: {apiVersion: client.authentication.k8s.io/v1beta1, command: aws}
- name: old
  user:
    exec: {apiVersion: client.authentication.k8s.io/v1alpha1, command: aws}
)");
  LoadOptions options;
  options.kubeconfig_paths = {path};
  auto config = LoadClusterConfig(options);
  ASSERT_TRUE(config.ok()) << config.status();
  ASSERT_TRUE(config->exec.has_value());
  EXPECT_EQ(config->exec->command, dir_ + "/e/./bin/plugin");
  EXPECT_THAT(config->exec->args,
              ::testing::ElementsAre("get-token", "--cluster", "c"));
  ASSERT_EQ(config->exec->env.size(), 2u);
  EXPECT_EQ(config->exec->env[1].first, "B");
  EXPECT_EQ(config->exec->env[1].second, "two");
  EXPECT_EQ(config->exec->api_version, "client.authentication.k8s.io/v1");
  EXPECT_EQ(config->exec->install_hint, "install it");

  options.context = "bare";
  config = LoadClusterConfig(options);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->exec->command, "aws");  // looked up in PATH when run

  options.context = "old";
  config = LoadClusterConfig(options);
  EXPECT_TRUE(absl::IsInvalidArgument(config.status()));
  EXPECT_THAT(config.status().message(), HasSubstr("v1alpha1"));
}

TEST_F(KubeconfigTest, ClearErrors) {
  LoadOptions options;
  options.in_cluster_fallback = false;
  options.kubeconfig_paths = {dir_ + "/nope"};
  EXPECT_TRUE(absl::IsNotFound(LoadClusterConfig(options).status()));

  options.kubeconfig_paths = {Write("bad", "clusters: [\n  - {name: x\n")};
  auto bad = LoadClusterConfig(options);
  EXPECT_TRUE(absl::IsInvalidArgument(bad.status()));
  EXPECT_THAT(bad.status().message(), HasSubstr(dir_ + "/bad:"));

  options.kubeconfig_paths = {Write("nocurrent", R"(
clusters: [{name: c, cluster: {server: "https://h:1"}}]
contexts: [{name: x, context: {cluster: c}}]
)")};
  auto none = LoadClusterConfig(options);
  EXPECT_TRUE(absl::IsInvalidArgument(none.status()));
  EXPECT_THAT(none.status().message(), HasSubstr("no current-context"));
  options.context = "y";
  auto unknown = LoadClusterConfig(options);
  EXPECT_TRUE(absl::IsNotFound(unknown.status()));
  EXPECT_THAT(unknown.status().message(), HasSubstr("context \"y\" not found"));

  options.context = "";
  options.kubeconfig_paths = {Write("dangling", R"(
current-context: x
contexts: [{name: x, context: {cluster: gone, user: u}}]
)")};
  auto dangling = LoadClusterConfig(options);
  EXPECT_TRUE(absl::IsNotFound(dangling.status()));
  EXPECT_THAT(dangling.status().message(), HasSubstr("cluster \"gone\""));

  options.kubeconfig_paths = {Write("provider", R"(
current-context: x
clusters: [{name: c, cluster: {server: "https://h:1"}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
users: [{name: u, user: {auth-provider: {name: gcp}}}]
)")};
  auto provider = LoadClusterConfig(options);
  EXPECT_TRUE(absl::IsUnimplemented(provider.status()));
  EXPECT_THAT(provider.status().message(), HasSubstr("auth-provider"));

  options.kubeconfig_paths = {Write("missing-ca", R"(
current-context: x
clusters: [{name: c, cluster: {server: "https://h:1", certificate-authority: ca.pem}}]
contexts: [{name: x, context: {cluster: c}}]
)")};
  auto missing_ca = LoadClusterConfig(options);
  EXPECT_TRUE(absl::IsNotFound(missing_ca.status()));
  EXPECT_THAT(missing_ca.status().message(), HasSubstr(dir_ + "/ca.pem"));

  options.kubeconfig_paths = {Write("noscheme", R"(
current-context: x
clusters: [{name: c, cluster: {server: "h:1"}}]
contexts: [{name: x, context: {cluster: c}}]
)")};
  EXPECT_TRUE(absl::IsInvalidArgument(LoadClusterConfig(options).status()));

  options.kubeconfig_paths = {Write("badtokenfile", R"(
current-context: x
clusters: [{name: c, cluster: {server: "https://h:1"}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
users: [{name: u, user: {tokenFile: /nonexistent/token}}]
)")};
  EXPECT_TRUE(absl::IsNotFound(LoadClusterConfig(options).status()));
}

TEST_F(KubeconfigTest, InClusterFromAnInjectedRoot) {
  std::string sa = "root/var/run/secrets/kubernetes.io/serviceaccount/";
  Write(sa + "token", "sa-token\n");
  Write(sa + "ca.crt", kCaPem);
  Write(sa + "namespace", "team-cicd\n");
  LoadOptions options;
  options.in_cluster_root = dir_ + "/root";
  // No kubeconfig and no service environment: not in a cluster.
  auto outside = LoadClusterConfig(options);
  EXPECT_TRUE(absl::IsNotFound(outside.status()));
  EXPECT_THAT(outside.status().message(), HasSubstr("KUBERNETES_SERVICE_HOST"));

  setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1", 1);
  setenv("KUBERNETES_SERVICE_PORT", "443", 1);
  auto config = LoadClusterConfig(options);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->server, "https://10.96.0.1:443");
  EXPECT_EQ(config->token_file, dir_ + "/" + sa + "token");
  EXPECT_EQ(config->ca_pem, kCaPem);
  EXPECT_EQ(config->namespace_name, "team-cicd");

  setenv("KUBERNETES_SERVICE_HOST", "fd00::1", 1);
  config = LoadInClusterConfig(dir_ + "/root");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->server, "https://[fd00::1]:443");

  // The fallback can be turned off, and a kubeconfig takes precedence.
  options.in_cluster_fallback = false;
  EXPECT_TRUE(absl::IsNotFound(LoadClusterConfig(options).status()));
  Write("home/.kube/config", R"(
current-context: x
clusters: [{name: c, cluster: {server: "https://h:1"}}]
contexts: [{name: x, context: {cluster: c}}]
)");
  options.in_cluster_fallback = true;
  config = LoadClusterConfig(options);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->server, "https://h:1");
}

}  // namespace
}  // namespace kiln::kube
