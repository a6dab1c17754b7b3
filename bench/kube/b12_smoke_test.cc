// Smoke test of benchmark B12 (bench/kube/b12.cc): a few echo tasks through
// the pod executor against the double; every task succeeds, and the
// requests the bench reports are the double's own count, per task.
#include <map>
#include <string>

#include "bench/kube/b12_lib.h"
#include "gtest/gtest.h"
#include "kube/testing/fake_api_server.h"

namespace kiln {
namespace bench {
namespace {

using kube::testing::FakeApiServer;

class B12SmokeTest : public ::testing::TestWithParam<int> {};

TEST_P(B12SmokeTest, EveryTaskSucceedsAndRequestsAreCounted) {
  kube::testing::FakeApiServerOptions so;
  so.initial_namespaces.push_back(kB12Namespace);
  auto server = FakeApiServer::Start(so);
  ASSERT_TRUE(server.ok()) << server.status();
  auto rtt = MeasureGetRoundTrip(server->get(), 5);
  ASSERT_TRUE(rtt.ok()) << rtt.status();
  ASSERT_EQ(rtt->size(), 5u);

  const int kTasks = 10;
  int64_t before = (*server)->request_count();
  auto counts_before = (*server)->request_counts();
  B12PhaseOptions o;
  o.tasks = kTasks;
  o.concurrency = GetParam();
  auto phase = RunB12Phase(server->get(), o);
  ASSERT_TRUE(phase.ok()) << phase.status();
  EXPECT_EQ(phase->succeeded, kTasks);
  EXPECT_TRUE(phase->failures.empty()) << phase->failures[0];
  EXPECT_EQ(phase->task_ms.size(), static_cast<size_t>(kTasks));
  EXPECT_EQ(phase->kubelet_ms.size(), static_cast<size_t>(kTasks));

  // What the bench reports is what the double served.
  EXPECT_EQ(phase->requests_total, (*server)->request_count() - before);
  int64_t sum = 0;
  for (const auto& [kind, n] : phase->requests) {
    sum += n;
    int64_t was = counts_before.count(kind) ? counts_before.at(kind) : 0;
    EXPECT_EQ(n, (*server)->request_counts().at(kind) - was) << kind;
  }
  EXPECT_EQ(sum, phase->requests_total);
  // One pod created and one deleted per task, and one log stream each.
  EXPECT_EQ(phase->requests["create pods"], kTasks);
  EXPECT_EQ(phase->requests["delete pods"], kTasks);
  EXPECT_GE(phase->requests["get pods/log"], kTasks);

  nlohmann::json j = PhaseJson(*phase, (*rtt)[2]);
  double counted = 0;
  for (const auto& [kind, n] : phase->requests) {
    if (CountsTowardTarget(kind)) counted += static_cast<double>(n) / kTasks;
  }
  EXPECT_DOUBLE_EQ(j["requests_per_task_counted"].get<double>(), counted);
  EXPECT_EQ(j["target_met"].get<bool>(), counted <= 10);
  EXPECT_EQ(j["succeeded"], kTasks);
  // The executor's per-task budget (issue 19, B12): at most 10 requests
  // besides log streaming and watches.
  EXPECT_LE(counted, 10.0) << j.dump(2);
}

INSTANTIATE_TEST_SUITE_P(Concurrency, B12SmokeTest, ::testing::Values(1, 4));

TEST(B12Percentile, NearestRank) {
  std::vector<double> v = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
  EXPECT_EQ(Percentile(v, 0.5), 5);
  EXPECT_EQ(Percentile(v, 0.9), 9);
  EXPECT_EQ(Percentile(v, 0.99), 10);
  EXPECT_EQ(Percentile({}, 0.5), 0);
  EXPECT_TRUE(CountsTowardTarget("create pods"));
  EXPECT_FALSE(CountsTowardTarget("get pods/log"));
  EXPECT_FALSE(CountsTowardTarget("watch pods"));
}

}  // namespace
}  // namespace bench
}  // namespace kiln
