// Shared by the deploy end-to-end tests (deploy, environments, history,
// promote): a fresh scratch directory per test, the Kubernetes API server
// double in this process (with its rollout controller when a test asks for
// it) and a kubeconfig for it, the real `kiln` binary run with a deadline,
// and the real kubectl against the double. Every file a test writes and
// every client's HOME and cache live in the scratch directory.
#ifndef KILN_TESTS_DEPLOY_DEPLOY_FIXTURE_H_
#define KILN_TESTS_DEPLOY_DEPLOY_FIXTURE_H_

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "kube/testing/fake_api_server.h"
#include "kube/testing/rollout.h"

namespace kiln::deploy_testing {

// Where a `kiln` run's stderr goes.
enum class Stderr {
  kMerged,    // interleaved with stdout into KilnResult::out
  kSeparate,  // into KilnResult::err
};

// What a `kiln` run left behind.
struct KilnResult {
  int exit_code = -1;  // -1 when it was signalled (or killed at the deadline)
  std::string out;     // stdout (and stderr with Stderr::kMerged)
  std::string err;     // stderr with Stderr::kSeparate, else empty
};

class DeployFixture : public ::testing::Test {
 protected:
  // The scratch directory (emptied), the double, its kubeconfig.
  void SetUp() override;
  // Stops the rollout controller, then the double.
  void TearDown() override;

  // Starts the double's rollout controller (Deployments become available
  // as a real cluster's would). REQUIRES: after DeployFixture::SetUp.
  void StartRollouts();

  // Writes `text` to <dir_>/<rel>, creating missing directories.
  void Write(const std::string& rel, const std::string& text) const;

  // The real kiln with `args` and `--store <dir_>/store`, HOME set to the
  // scratch directory and no KUBECONFIG; killed (and the test failed)
  // after two minutes.
  KilnResult RunKiln(const std::vector<std::string>& args,
                     Stderr stderr_to) const;

  // `kubectl --kubeconfig <the double's> ARGS...`: {exit code, output}, or
  // {-1, ""} (and a test failure) when kubectl could not be run.
  std::pair<int, std::string> Kubectl(
      const std::vector<std::string>& args) const;

  std::string kiln_;        // the kiln binary under test
  std::string dir_;         // the scratch directory
  std::string kubeconfig_;  // <dir_>/kubeconfig, for the double
  std::unique_ptr<kube::testing::FakeApiServer> server_;
  std::unique_ptr<kube::testing::RolloutController> rollouts_;

 private:
  mutable int runs_ = 0;  // numbers each run's output files
};

}  // namespace kiln::deploy_testing

#endif  // KILN_TESTS_DEPLOY_DEPLOY_FIXTURE_H_
