// Runs the API server double until stdin closes: for trying kubectl (or a
// client) against it by hand. Prints the kubeconfig path and the URL.
//   bazel run //kube/testing:fake_api_server_main -- /tmp/kubeconfig [ns]
#include <cstdio>
#include <iostream>
#include <string>

#include "kube/testing/fake_api_server.h"

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s KUBECONFIG_OUT [NAMESPACE]\n", argv[0]);
    return 2;
  }
  auto server = kiln::kube::testing::FakeApiServer::Start();
  if (!server.ok()) {
    std::fprintf(stderr, "%s\n", server.status().ToString().c_str());
    return 1;
  }
  absl::Status s =
      (*server)->WriteKubeconfig(argv[1], argc > 2 ? argv[2] : "default");
  if (!s.ok()) {
    std::fprintf(stderr, "%s\n", s.ToString().c_str());
    return 1;
  }
  std::printf("%s %s\n", argv[1], (*server)->url().c_str());
  std::fflush(stdout);
  std::string line;
  while (std::getline(std::cin, line)) {
  }
  return 0;
}
