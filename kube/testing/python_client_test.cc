// Honesty check with a second real client: Debian's python3-kubernetes
// lists, reads and follows logs, and watches through a 410 (ERROR event):
// it resumes once from its last resourceVersion, and raises 410 when that
// is compacted too.
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kube/testing/fake_api_server.h"
#include "kube/testing/process.h"

namespace kiln {
namespace kube {
namespace testing {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;

TEST(PythonClientTest, ListLogsAndWatchThroughGone) {
  auto s = FakeApiServer::Start();
  ASSERT_TRUE(s.ok()) << s.status();
  FakeApiServer& server = **s;
  std::string dir = getenv("TEST_TMPDIR");
  std::string kubeconfig = dir + "/kubeconfig";
  ASSERT_TRUE(server.WriteKubeconfig(kubeconfig, "default").ok());
  // Two pods, created by the Python client itself.
  auto py = TestProcess::Start(
      {"python3", "-c",
       "import sys, json\n"
       "from kubernetes import client, config\n"
       "config.load_kube_config(config_file=sys.argv[1])\n"
       "v1 = client.CoreV1Api()\n"
       "for name, app in (('web', 'demo'), ('db', 'data')):\n"
       "    v1.create_namespaced_pod('default', {'metadata': {'name': name, "
       "'labels': {'app': app}}, 'spec': {'containers': [{'name': 'main', "
       "'image': 'busybox:1'}]}})\n"
       "print('CREATED', flush=True)\n",
       kubeconfig},
      {{"HOME", dir}});
  ASSERT_TRUE(py.ok()) << py.status();
  auto code = (*py)->Wait(absl::Seconds(60));
  ASSERT_TRUE(code.ok()) << code.status();
  ASSERT_EQ(*code, 0) << (*py)->output();
  ASSERT_TRUE(server
                  .MutatePod("default", "web",
                             [](json& pod) {
                               pod["spec"]["nodeName"] = "node-1";
                               pod["status"]["phase"] = "Running";
                             })
                  .ok());
  absl::Time t0 = absl::FromUnixSeconds(1700000000);
  server.AppendLog("default", "web", "main", "first", t0);
  server.AppendLog("default", "web", "main", "second", t0 + absl::Seconds(1));

  auto check = TestProcess::Start(
      {"python3", "kube/testing/python_client_check.py", kubeconfig},
      {{"HOME", dir}});
  ASSERT_TRUE(check.ok()) << check.status();
  TestProcess& p = **check;
  ASSERT_TRUE(p.WaitForOutput("FOLLOWING\n", absl::Seconds(60))) << p.output();
  EXPECT_THAT(p.output(), HasSubstr("LIST web\n"));
  EXPECT_THAT(p.output(), HasSubstr("PHASE Running\n"));
  EXPECT_THAT(p.output(), HasSubstr("LOG first|second|\n"));
  EXPECT_THAT(p.output(), HasSubstr("STAMPED 2023-11-14T22:13:21Z second\n"));
  server.AppendLog("default", "web", "main", "third", t0 + absl::Seconds(2));
  ASSERT_TRUE(p.WaitForOutput("FOLLOW third\n", absl::Seconds(30)))
      << p.output();
  server.EndLog("default", "web", "main");
  ASSERT_TRUE(p.WaitForOutput("WATCHING", absl::Seconds(30))) << p.output();
  EXPECT_THAT(
      p.output(),
      HasSubstr("FOLLOW first\nFOLLOW second\nFOLLOW third\nFOLLOW-END\n"));

  // The watch sees changes; after an ERROR 410 it resumes from its last
  // resourceVersion (still in the window) and sees later changes.
  ASSERT_TRUE(
      server
          .MutatePod("default", "db",
                     [](json& pod) { pod["status"]["phase"] = "Running"; })
          .ok());
  ASSERT_TRUE(p.WaitForOutput(
      absl::StrCat("EVENT MODIFIED db ", server.resource_version(), "\n"),
      absl::Seconds(30)))
      << p.output();
  server.ExpireWatches();
  absl::SleepFor(absl::Milliseconds(300));
  ASSERT_TRUE(
      server
          .MutatePod("default", "web",
                     [](json& pod) { pod["status"]["phase"] = "Succeeded"; })
          .ok());
  ASSERT_TRUE(p.WaitForOutput(
      absl::StrCat("EVENT MODIFIED web ", server.resource_version(), "\n"),
      absl::Seconds(30)))
      << p.output();

  // Now its last resourceVersion is compacted away: the resumed watch gets
  // the ERROR 410 again and the client raises it.
  ASSERT_TRUE(
      server
          .MutatePod("default", "db",
                     [](json& pod) { pod["metadata"]["labels"]["x"] = "1"; })
          .ok());
  ASSERT_TRUE(p.WaitForOutput(
      absl::StrCat("EVENT MODIFIED db ", server.resource_version(), "\n"),
      absl::Seconds(30)))
      << p.output();
  // A change it does not watch moves the resourceVersion past its last one.
  server.RecordEvent("default", "web", "Normal", "Killing", "stopping");
  server.CompactHistory();
  server.ExpireWatches();
  ASSERT_TRUE(p.WaitForOutput("APIEXC 410", absl::Seconds(30))) << p.output();
  EXPECT_THAT(p.output(),
              HasSubstr("APIEXC 410 Expired: too old resource version"));
  code = p.Wait(absl::Seconds(30));
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_EQ(*code, 0) << p.output();
}

}  // namespace
}  // namespace testing
}  // namespace kube
}  // namespace kiln
