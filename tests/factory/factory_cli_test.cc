// `kiln factory plan|apply FILE` as a process against the API server double:
// exit codes, what it prints, that a second apply sends no write request,
// positioned file errors, and that a secret value appears in no output.
#include <sys/stat.h>

#include <algorithm>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kube/testing/fake_api_server.h"
#include "kube/testing/process.h"
#include "nlohmann/json.hpp"

namespace kiln {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kDbPassword[] = "cli-db-pa55word-value";
constexpr char kRegistryToken[] = "cli-registry-t0ken-value";

class FactoryCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto server = kube::testing::FakeApiServer::Start();
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    dir_ = getenv("TEST_TMPDIR");
    kubeconfig_ = dir_ + "/kubeconfig";
    ASSERT_TRUE(server_->WriteKubeconfig(kubeconfig_, "default").ok());
    secrets_ = dir_ + "/secrets";
    mkdir(secrets_.c_str(), 0700);
    std::ofstream(secrets_ + "/db-password") << kDbPassword << "\n";
    std::ofstream(secrets_ + "/registry-token") << kRegistryToken;
    std::ifstream in("examples/factory/shop.factory.yaml");
    std::stringstream s;
    s << in.rdbuf();
    example_ = s.str();
  }

  std::string Write(const std::string& name, const std::string& text) {
    std::string path = dir_ + "/" + name;
    std::ofstream(path) << text;
    return path;
  }

  // `kiln factory VERB FILE --kubeconfig ... --secrets-dir ...`.
  std::pair<int, std::string> Kiln(const std::string& verb,
                                   const std::string& file) {
    auto r = kube::testing::RunProcess(
        {"./kiln", "factory", verb, file, "--kubeconfig", kubeconfig_,
         "--kube-context", "fake", "--secrets-dir", secrets_},
        {{"HOME", dir_}}, absl::Seconds(60));
    EXPECT_TRUE(r.ok()) << r.status();
    if (!r.ok()) return {-1, ""};
    all_output_ += r->second;
    return *r;
  }

  int64_t Writes() {
    int64_t n = 0;
    for (const auto& [what, count] : server_->request_counts()) {
      for (const char* verb : {"create ", "update ", "patch ", "delete "}) {
        if (what.rfind(verb, 0) == 0) n += count;
      }
    }
    return n;
  }

  std::unique_ptr<kube::testing::FakeApiServer> server_;
  std::string dir_, kubeconfig_, secrets_, example_, all_output_;
};

TEST_F(FactoryCliTest, PlanApplyApplyAgain) {
  std::string file = Write("shop.factory.yaml", example_);
  auto [code, out] = Kiln("plan", file);
  EXPECT_EQ(code, 0) << out;
  EXPECT_THAT(out, HasSubstr("+ create Namespace shop-prod\n"));
  EXPECT_THAT(out, HasSubstr(" to create, 0 to update, 0 to delete\n"));
  EXPECT_EQ(Writes(), 0);

  std::tie(code, out) = Kiln("apply", file);
  EXPECT_EQ(code, 0) << out;
  EXPECT_THAT(out, HasSubstr("created Secret shop-prod/database\n"));
  EXPECT_THAT(out, HasSubstr("applied: "));
  auto secret =
      server_->GetObject("/api/v1/namespaces/shop-prod/secrets/database");
  ASSERT_TRUE(secret.ok()) << secret.status();
  EXPECT_EQ((*secret)["data"]["password"], absl::Base64Escape(kDbPassword));

  const int64_t writes = Writes();
  std::tie(code, out) = Kiln("apply", file);
  EXPECT_EQ(code, 0) << out;
  EXPECT_EQ(out, "no changes: the cluster matches the factory\n");
  EXPECT_EQ(Writes(), writes);

  // A rotated secret shows as changed, without its value.
  std::ofstream(secrets_ + "/db-password") << "rotated-" << kDbPassword;
  std::tie(code, out) = Kiln("plan", file);
  EXPECT_EQ(code, 0) << out;
  EXPECT_THAT(out, HasSubstr("~ update Secret shop-prod/database\n"
                             "    data.password: (secret value changed)\n"));
  for (const std::string& v :
       {std::string(kDbPassword), std::string(kRegistryToken)}) {
    EXPECT_THAT(all_output_, Not(HasSubstr(v)));
    EXPECT_THAT(all_output_, Not(HasSubstr(absl::Base64Escape(v))));
  }
}

TEST_F(FactoryCliTest, FileErrorsArePositionedAndNothingIsSent) {
  const std::string bad = absl::StrReplaceAll(
      example_, {{"requests.memory: 8Gi", "requests.memory: 8 gigs"},
                 {"db-password", "db-passwd"}});
  std::string file = Write("bad.factory.yaml", bad);
  // Where the bad quantity is: its line and the column of the value.
  const size_t at = bad.find("8 gigs");
  ASSERT_NE(at, std::string::npos);
  const size_t line_start = bad.rfind('\n', at) + 1;  // npos + 1 == 0
  const int line = 1 + std::count(bad.begin(), bad.begin() + at, '\n');
  const int column = static_cast<int>(at - line_start) + 1;
  auto [code, out] = Kiln("apply", file);
  EXPECT_EQ(code, 1) << out;
  EXPECT_THAT(out, HasSubstr(absl::StrCat(
                       "bad.factory.yaml:", line, ":", column,
                       ": factory.factories[0].namespaces[0].quota.hard."
                       "requests.memory: '8 gigs' is not a Kubernetes "
                       "quantity")));
  EXPECT_THAT(out, HasSubstr("no kiln secret named 'db-passwd'"));
  EXPECT_THAT(out, Not(HasSubstr(kDbPassword)));
  EXPECT_EQ(server_->request_count(), 0);

  std::tie(code, out) = Kiln("destroy", file);
  EXPECT_EQ(code, 2) << out;
}

}  // namespace
}  // namespace kiln
