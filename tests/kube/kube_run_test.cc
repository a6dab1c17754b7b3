// `kiln run --executor kubernetes` as a process against the API server
// double: every misconfiguration fails before any task runs, naming the
// problem (never a silent fallback to the local sandbox); a run's task
// becomes a pod that reaches the run's agent blob endpoint with the token
// of its Secret, and its log and result are the run's; at start, pods of
// runs that are no longer running are deleted.
#include <algorithm>
#include <cstdlib>

#include "absl/strings/match.h"
#include "tests/kube/kube_cli_fixture.h"

// Under ASan: gRPC 1.51 keeps 576 bytes it allocated (gpr_realloc, in
// libgpr) once a TLS channel has been used, in this process (the playing
// kubelet dials the TLS agent endpoint) as in the kiln process
// (TheAgentEndpointServesTlsWithTheGivenCa passes the same suppression to
// it). Only allocations made inside libgpr are suppressed.
extern "C" const char* __lsan_default_suppressions() {
  return "leak:libgpr.so\n";
}

namespace kiln::testing {
namespace {

constexpr char kPipeline[] =
    "name: pod\n"
    "tasks:\n"
    "  - name: hello\n"
    "    run:\n"
    "      image: %IMAGE%\n"
    "      command: [/bin/sh, -c, 'echo hello']\n";

class KubeRunTest : public KubeCliTest {
 protected:
  std::string Pipeline() {
    std::string text = kPipeline;
    text.replace(text.find("%IMAGE%"), 7, kTaskImage);
    // Its own directory: the run stashes it as the source.
    mkdir((dir_ + "/src").c_str(), 0700);
    std::string path = dir_ + "/src/p.yaml";
    WriteText(path, text);
    return path;
  }
  std::vector<std::string> Args(std::vector<std::string> more) {
    std::vector<std::string> args = {"run",
                                     Pipeline(),
                                     "--store",
                                     dir_ + "/store",
                                     "--executor",
                                     "kubernetes",
                                     "--kube-agent-image",
                                     kAgentImage,
                                     "--kubeconfig",
                                     kubeconfig_};
    args.insert(args.end(), more.begin(), more.end());
    return args;
  }
  // Fails before any task ran: no run was submitted, no pod created.
  void ExpectRefused(const Result& r, const std::string& needle) {
    EXPECT_NE(r.exit_code, 0) << r.err;
    EXPECT_TRUE(absl::StrContains(r.err, needle)) << r.err;
    EXPECT_FALSE(absl::StrContains(r.err, "kiln: run ")) << r.err;
    EXPECT_TRUE(kubelet_->created().empty());
  }
};

TEST_F(KubeRunTest, ATaskRunsAsAPodThatReachesTheRunsAgentEndpoint) {
  kubelet_->Release();
  Result r = Kiln(Args({"--namespace", kNs}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(absl::StrContains(r.err, "namespace ci")) << r.err;
  std::vector<json> pods = kubelet_->created();
  ASSERT_EQ(pods.size(), 1u);
  const json& pod = pods[0];
  EXPECT_EQ(pod["spec"]["containers"][0]["image"], kTaskImage);
  EXPECT_EQ(pod["spec"]["initContainers"][0]["image"], kAgentImage);
  // Labelled with this store's instance.
  std::string instance = ReadText(dir_ + "/store/kubernetes/instance");
  instance = instance.substr(0, instance.find('\n'));
  ASSERT_FALSE(instance.empty());
  EXPECT_EQ(pod["metadata"]["labels"]["kiln.dev/instance"], instance);
  // The pod's agent reached the endpoint with the Secret's token.
  EXPECT_EQ(kubelet_->uploads(), std::vector<std::string>{""});
  // The pod's log is the task's; the finished pod is gone.
  EXPECT_TRUE(absl::StrContains(r.out + r.err, "finished in "))
      << r.out << r.err;
  EXPECT_TRUE(PodNames().empty());
  // The endpoint stopped with the run: the token no longer opens anything.
  std::string server;
  for (const json& e : pod["spec"]["containers"][0]["env"]) {
    if (e["name"] == "KILN_AGENT_SERVER") server = e["value"];
  }
  ASSERT_FALSE(server.empty());
  service::ClientOptions options;
  options.server = server;
  options.token = "x";
  service::KilnClient after(options);
  EXPECT_FALSE(after.UploadBytes("late").ok());
}

TEST_F(KubeRunTest, TheNamespaceComesFromTheContext) {
  kubelet_->Release();
  Result r = Kiln(Args({}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(kubelet_->created().size(), 1u);
}

TEST_F(KubeRunTest, AnAgentImageByTagIsRefused) {
  std::vector<std::string> args = Args({});
  *std::find(args.begin(), args.end(), kAgentImage) =
      "registry.test/kiln-agent:latest";
  Result r = Kiln(args);
  EXPECT_EQ(r.exit_code, 2);
  ExpectRefused(r, "must be pinned by digest");
}

TEST_F(KubeRunTest, NoAgentImageIsRefused) {
  Result r = Kiln({"run", Pipeline(), "--store", dir_ + "/store", "--executor",
                   "kubernetes", "--kubeconfig", kubeconfig_});
  EXPECT_EQ(r.exit_code, 2);
  ExpectRefused(r, "needs --kube-agent-image");
}

TEST_F(KubeRunTest, KubernetesFlagsWithoutTheExecutorAreRefused) {
  Result r =
      Kiln({"run", Pipeline(), "--store", dir_ + "/store", "--namespace", kNs});
  EXPECT_EQ(r.exit_code, 2);
  ExpectRefused(r, "--namespace configures the kubernetes executor");
}

TEST_F(KubeRunTest, AnUnreadableKubeconfigIsNamed) {
  std::vector<std::string> args = Args({});
  *std::find(args.begin(), args.end(), kubeconfig_) = dir_ + "/missing";
  Result r = Kiln(args);
  ExpectRefused(r, dir_ + "/missing");
}

TEST_F(KubeRunTest, AnUnknownContextIsNamed) {
  Result r = Kiln(Args({"--kube-context", "nowhere"}));
  ExpectRefused(r, "nowhere");
}

TEST_F(KubeRunTest, NoNamespaceIsRefused) {
  // A context without a namespace, and no --namespace.
  WriteText(dir_ + "/bare",
            absl::StrCat("apiVersion: v1\nkind: Config\n"
                         "clusters:\n- name: c\n  cluster:\n    server: ",
                         server_->url(),
                         "\nusers:\n- name: u\n  user:\n    token: t\n"
                         "contexts:\n- name: bare\n  context:\n"
                         "    cluster: c\n    user: u\n"
                         "current-context: bare\n"));
  std::vector<std::string> args = Args({});
  *std::find(args.begin(), args.end(), kubeconfig_) = dir_ + "/bare";
  Result r = Kiln(args);
  ExpectRefused(r, "no namespace: pass --namespace");
}

TEST_F(KubeRunTest, AMissingNamespaceIsNamed) {
  Result r = Kiln(Args({"--namespace", "absent"}));
  ExpectRefused(r, "namespace 'absent' does not exist");
}

TEST_F(KubeRunTest, AnUnreachableApiServerIsNamed) {
  const std::string url = server_->url();
  WriteText(dir_ + "/down",
            absl::StrCat("apiVersion: v1\nkind: Config\n"
                         "clusters:\n- name: c\n  cluster:\n    server: "
                         "http://127.0.0.1:",
                         FreePort(),
                         "\nusers:\n- name: u\n  user:\n    token: t\n"
                         "contexts:\n- name: down\n  context:\n"
                         "    cluster: c\n    user: u\n    namespace: ci\n"
                         "current-context: down\n"));
  std::vector<std::string> args = Args({});
  *std::find(args.begin(), args.end(), kubeconfig_) = dir_ + "/down";
  Result r = Kiln(args, absl::Seconds(60));
  ExpectRefused(r, "the API server does not answer (context 'down'");
}

TEST_F(KubeRunTest, AnAgentEndpointHalfConfiguredIsRefused) {
  Result r = Kiln(Args({"--agent-tls-cert", dir_ + "/cert.pem"}));
  EXPECT_EQ(r.exit_code, 2);
  ExpectRefused(r, "--agent-tls-cert and --agent-tls-key go together");
}

// --agent-tls-cert/--agent-tls-key/--agent-ca: the pods get the CA and
// reach the endpoint over TLS verified with it.
TEST_F(KubeRunTest, TheAgentEndpointServesTlsWithTheGivenCa) {
  const std::string d = dir_ + "/tls";
  ASSERT_EQ(mkdir(d.c_str(), 0700), 0);
  WriteText(d + "/server.ext", "subjectAltName=IP:127.0.0.1\n");
  std::string script = absl::StrCat(
      "set -e; cd '", d, "'; exec >openssl.log 2>&1;",
      "openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt"
      " -days 2 -subj /CN=kiln-agent-test-ca;",
      "openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr"
      " -subj /CN=127.0.0.1;",
      "openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key"
      " -CAcreateserial -out server.crt -days 2 -extfile server.ext;");
  ASSERT_EQ(system(("/bin/sh -c \"" + script + "\"").c_str()), 0)
      << ReadText(d + "/openssl.log");
  // Under ASan, LeakSanitizer reports 576 bytes that gRPC 1.51 itself
  // allocates (gpr_realloc) and keeps after a TLS server shuts down; only
  // allocations made by gRPC's allocator are suppressed, for this kiln
  // process only: by library when gRPC is shared (libgpr.so), by function
  // when it is linked into the binary (//:kiln links it statically).
  WriteText(d + "/lsan.supp", "leak:libgpr.so\nleak:gpr_realloc\n");
  child_env_.push_back({"LSAN_OPTIONS", "suppressions=" + d + "/lsan.supp"});
  kubelet_->Release();
  Result r =
      Kiln(Args({"--agent-tls-cert", d + "/server.crt", "--agent-tls-key",
                 d + "/server.key", "--agent-ca", d + "/ca.crt"}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::vector<json> pods = kubelet_->created();
  ASSERT_EQ(pods.size(), 1u);
  std::string ca;
  for (const json& e : pods[0]["spec"]["containers"][0]["env"]) {
    if (e["name"] == "KILN_AGENT_CA") ca = e["value"];
  }
  EXPECT_EQ(ca, ReadText(d + "/ca.crt"));
  // The pod's upload went over TLS verified with that CA.
  EXPECT_EQ(kubelet_->uploads(), std::vector<std::string>{""});
}

TEST_F(KubeRunTest, PodsOfRunsNoLongerRunningAreDeletedAtStart) {
  // This store's instance, and pods left by runs it does not know.
  ASSERT_EQ(mkdir((dir_ + "/store").c_str(), 0700), 0);
  ASSERT_EQ(mkdir((dir_ + "/store/kubernetes").c_str(), 0700), 0);
  WriteText(dir_ + "/store/kubernetes/instance", "kmine\n");
  ASSERT_EQ(chmod((dir_ + "/store/kubernetes/instance").c_str(), 0600), 0);
  CreateKilnPod("left-over", "run-gone", "kmine");
  CreateKilnPod("another-kilns", "run-gone", "kother");
  kubelet_->Release();
  Result r = Kiln(Args({}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(absl::StrContains(r.err, "1 pod(s) of finished runs deleted"))
      << r.err;
  EXPECT_EQ(PodNames(), std::vector<std::string>{"another-kilns"});
  // The run's own pod carried the same instance.
  ASSERT_GE(kubelet_->created().size(), 3u);
  EXPECT_EQ(
      kubelet_->created().back()["metadata"]["labels"]["kiln.dev/instance"],
      "kmine");
}

}  // namespace
}  // namespace kiln::testing
