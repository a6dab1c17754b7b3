// Runs the API server double until stdin closes: for trying kubectl (or a
// client) against it by hand, and for end-to-end tests that start it as a
// process. Prints "KUBECONFIG URL" on one line once it serves.
//   fake_api_server_main [--kubelet=none|sandbox] [--kubelet-dir=DIR]
//       KUBECONFIG_OUT [NAMESPACE]
// --kubelet=sandbox runs every created pod for real (SandboxKubelet: the
// local sandbox in image mode, images pulled from their registries into
// DIR/images, pods' volumes under DIR/pods). The default, none, leaves
// pods Pending (and deletes them at once), as with no node.
// --rollouts runs the simulated workload controller (rollout.h):
// Deployments/StatefulSets/DaemonSets become ready, Jobs complete.
#include <cstdio>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "kube/testing/fake_api_server.h"
#include "kube/testing/kubelet/registry_images.h"
#include "kube/testing/kubelet/sandbox_kubelet.h"
#include "kube/testing/rollout.h"

namespace {

int Usage(const char* argv0) {
  std::fprintf(
      stderr,
      "usage: %s [--kubelet=none|sandbox] [--kubelet-dir=DIR] [--rollouts] "
      "KUBECONFIG_OUT [NAMESPACE]\n",
      argv0);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::string kubelet = "none";
  std::string kubelet_dir;
  bool rollouts = false;
  std::vector<std::string> positional;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (absl::StartsWith(arg, "--kubelet=")) {
      kubelet = arg.substr(10);
    } else if (arg == "--rollouts") {
      rollouts = true;
    } else if (absl::StartsWith(arg, "--kubelet-dir=")) {
      kubelet_dir = arg.substr(14);
    } else if (absl::StartsWith(arg, "--")) {
      std::fprintf(stderr, "unknown flag %s\n", arg.c_str());
      return Usage(argv[0]);
    } else {
      positional.push_back(arg);
    }
  }
  if (positional.empty() || positional.size() > 2) return Usage(argv[0]);
  if (kubelet != "none" && kubelet != "sandbox") {
    std::fprintf(stderr, "--kubelet must be none or sandbox, got '%s'\n",
                 kubelet.c_str());
    return 2;
  }
  if (kubelet == "sandbox" && (kubelet_dir.empty() || kubelet_dir[0] != '/')) {
    std::fprintf(stderr,
                 "--kubelet=sandbox needs --kubelet-dir=DIR (absolute)\n");
    return 2;
  }
  auto server = kiln::kube::testing::FakeApiServer::Start();
  if (!server.ok()) {
    std::fprintf(stderr, "%s\n", server.status().ToString().c_str());
    return 1;
  }
  std::unique_ptr<kiln::ImageAccess> images;
  std::unique_ptr<kiln::kube::testing::SandboxKubelet> node;
  if (kubelet == "sandbox") {
    auto opened =
        kiln::kube::testing::OpenRegistryImages(kubelet_dir + "/images");
    if (!opened.ok()) {
      std::fprintf(stderr, "%s\n", opened.status().ToString().c_str());
      return 1;
    }
    images = std::move(*opened);
    kiln::kube::testing::SandboxKubeletOptions options;
    options.root = kubelet_dir + "/pods";
    options.images = images.get();
    auto started =
        kiln::kube::testing::SandboxKubelet::Start(server->get(), options);
    if (!started.ok()) {
      std::fprintf(stderr, "%s\n", started.status().ToString().c_str());
      return 1;
    }
    node = std::move(*started);
  }
  std::unique_ptr<kiln::kube::testing::RolloutController> controller;
  if (rollouts) {
    controller = kiln::kube::testing::RolloutController::Start(server->get());
  }
  absl::Status s = (*server)->WriteKubeconfig(
      positional[0], positional.size() > 1 ? positional[1] : "default");
  if (!s.ok()) {
    std::fprintf(stderr, "%s\n", s.ToString().c_str());
    return 1;
  }
  std::printf("%s %s\n", positional[0].c_str(), (*server)->url().c_str());
  std::fflush(stdout);
  std::string line;
  while (std::getline(std::cin, line)) {
  }
  controller.reset();
  node.reset();  // kills what still runs before the server stops
  return 0;
}
