#include "engine/service/auth.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <memory>

#include "gtest/gtest.h"

namespace kiln::service {
namespace {

constexpr char kTokens[] =
    "# kiln tokens\n"
    "\n"
    "viewer-token-0123456789 viewer alice\n"
    "submitter-token-0123456 submitter bob\n"
    "admin-token-01234567890 admin\n"
    "agent-token-01234567890 agent pods\n";

TEST(TokenTableTest, ParsesRolesAndNames) {
  absl::StatusOr<TokenTable> table = TokenTable::Parse(kTokens, "tokens");
  ASSERT_TRUE(table.ok()) << table.status();
  EXPECT_EQ(table->size(), 4u);
  auto pods = table->Find("agent-token-01234567890");
  ASSERT_TRUE(pods.has_value());
  EXPECT_EQ(pods->role, Role::kAgent);
  EXPECT_STREQ(RoleName(Role::kAgent), "agent");
  auto alice = table->Find("viewer-token-0123456789");
  ASSERT_TRUE(alice.has_value());
  EXPECT_EQ(alice->name, "alice");
  EXPECT_EQ(alice->role, Role::kViewer);
  auto admin = table->Find("admin-token-01234567890");
  ASSERT_TRUE(admin.has_value());
  EXPECT_EQ(admin->name, "token-5");
  EXPECT_EQ(admin->role, Role::kAdmin);
  EXPECT_FALSE(table->Find("viewer-token-012345678").has_value());
  EXPECT_FALSE(table->Find("").has_value());
}

TEST(TokenTableTest, RejectsBadLinesWithPosition) {
  struct Case {
    const char* text;
    const char* error;
  } cases[] = {
      {"short viewer\n", "tokens:1: token shorter than 16"},
      {"# c\nlong-enough-token-123 owner\n", "tokens:2: unknown role"},
      {"long-enough-token-123\n", "tokens:1: want TOKEN ROLE [NAME]"},
      {"long-enough-token-123 viewer a b\n", "want TOKEN ROLE"},
      {"long-enough-token-123 viewer\nlong-enough-token-123 admin\n",
       "tokens:2: duplicate token"},
      {"# only comments\n", "no tokens"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<TokenTable> table = TokenTable::Parse(c.text, "tokens");
    ASSERT_FALSE(table.ok()) << c.text;
    EXPECT_EQ(table.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(table.status().message().find(c.error), std::string::npos)
        << table.status();
  }
}

TEST(TokenTableTest, ReadFileRefusesGroupReadableFile) {
  std::string path = std::string(std::getenv("TEST_TMPDIR")) + "/tokens";
  {
    std::ofstream out(path);
    out << kTokens;
  }
  ASSERT_EQ(chmod(path.c_str(), 0640), 0);
  absl::StatusOr<TokenTable> table = TokenTable::ReadFile(path);
  EXPECT_EQ(table.status().code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_EQ(chmod(path.c_str(), 0600), 0);
  table = TokenTable::ReadFile(path);
  ASSERT_TRUE(table.ok()) << table.status();
  EXPECT_EQ(table->size(), 4u);
  auto pods = table->Find("agent-token-01234567890");
  ASSERT_TRUE(pods.has_value());
  EXPECT_EQ(pods->role, Role::kAgent);
  EXPECT_STREQ(RoleName(Role::kAgent), "agent");
  unlink(path.c_str());
}

TEST(AuthorizerTest, EveryMethodRoleAndCredential) {
  auto table =
      std::make_shared<const TokenTable>(*TokenTable::Parse(kTokens, "tokens"));
  Authorizer auth(table);
  struct Method {
    const char* name;
    Role needs;
  } methods[] = {
      {"ValidatePipeline", Role::kViewer},
      {"GetRun", Role::kViewer},
      {"ListRuns", Role::kViewer},
      {"WatchRun", Role::kViewer},
      {"StreamLogs", Role::kViewer},
      {"FindMissingBlobs", Role::kViewer},
      {"DownloadBlob", Role::kViewer},
      {"ListArtifacts", Role::kViewer},
      {"DownloadArtifact", Role::kViewer},
      {"SubmitRun", Role::kSubmitter},
      {"CancelRun", Role::kSubmitter},
      {"RetryRun", Role::kSubmitter},
      {"UploadBlob", Role::kSubmitter},
      {"SubmitAndWatchRun", Role::kSubmitter},
      {"SomethingNew", Role::kAdmin},
  };
  struct Caller {
    std::string authorization;
    absl::optional<Role> role;  // unset: not authenticated
  } callers[] = {
      {"", absl::nullopt},
      {"Bearer", absl::nullopt},
      {"Bearer wrong-token-0123456789", absl::nullopt},
      {"Basic viewer-token-0123456789", absl::nullopt},
      {"Bearer viewer-token-0123456789", Role::kViewer},
      {"bearer submitter-token-0123456", Role::kSubmitter},
      {"Bearer admin-token-01234567890", Role::kAdmin},
      {"Bearer agent-token-01234567890", Role::kAgent},
  };
  for (const Method& m : methods) {
    EXPECT_EQ(RequiredRole(m.name), m.needs) << m.name;
    for (const Caller& c : callers) {
      absl::StatusOr<Principal> who = auth.Authorize(c.authorization, m.name);
      SCOPED_TRACE(std::string(m.name) + " / " + c.authorization);
      if (!c.role.has_value()) {
        EXPECT_EQ(who.status().code(), absl::StatusCode::kUnauthenticated);
      } else if (*c.role == Role::kAgent) {
        // Outside the order: exactly the three blob methods.
        std::string name = m.name;
        if (name == "FindMissingBlobs" || name == "UploadBlob" ||
            name == "DownloadBlob") {
          ASSERT_TRUE(who.ok()) << who.status();
          EXPECT_EQ(who->role, Role::kAgent);
        } else {
          EXPECT_EQ(who.status().code(), absl::StatusCode::kPermissionDenied);
          EXPECT_NE(who.status().message().find("agent"), std::string::npos)
              << who.status();
        }
      } else if (static_cast<int>(*c.role) < static_cast<int>(m.needs)) {
        EXPECT_EQ(who.status().code(), absl::StatusCode::kPermissionDenied);
      } else {
        ASSERT_TRUE(who.ok()) << who.status();
        EXPECT_EQ(who->role, *c.role);
      }
    }
  }
}

TEST(AuthorizerTest, AgentIsNotOrderedWithTheOtherRoles) {
  // An admin may call the blob methods; an agent may call nothing an admin
  // alone may, nor a viewer's reads.
  EXPECT_TRUE(RoleMayCall(Role::kAdmin, "UploadBlob"));
  EXPECT_TRUE(RoleMayCall(Role::kViewer, "DownloadBlob"));
  EXPECT_FALSE(RoleMayCall(Role::kViewer, "UploadBlob"));
  EXPECT_TRUE(RoleMayCall(Role::kAgent, "UploadBlob"));
  EXPECT_FALSE(RoleMayCall(Role::kAgent, "GetRun"));
  EXPECT_FALSE(RoleMayCall(Role::kAgent, "SubmitRun"));
  EXPECT_FALSE(RoleMayCall(Role::kAgent, "SomethingNew"));
  EXPECT_FALSE(RoleMayCall(Role::kAgent, ""));
  EXPECT_EQ(*ParseRole("agent"), Role::kAgent);
  EXPECT_FALSE(ParseRole("agents").ok());
}

TEST(AuthorizerTest, ApproverReadsAndDecidesApprovalsOnly) {
  EXPECT_EQ(*ParseRole("approver"), Role::kApprover);
  EXPECT_STREQ(RoleName(Role::kApprover), "approver");
  EXPECT_TRUE(RoleMayCall(Role::kApprover, "DecideApproval"));
  EXPECT_TRUE(RoleMayCall(Role::kApprover, "GetRun"));
  EXPECT_TRUE(RoleMayCall(Role::kApprover, "WatchRun"));
  EXPECT_FALSE(RoleMayCall(Role::kApprover, "SubmitRun"));
  EXPECT_FALSE(RoleMayCall(Role::kApprover, "CancelRun"));
  EXPECT_FALSE(RoleMayCall(Role::kApprover, "UploadBlob"));
  EXPECT_FALSE(RoleMayCall(Role::kApprover, "SomethingNew"));
  // Deciding is not part of the viewer < submitter order: admin only.
  EXPECT_FALSE(RoleMayCall(Role::kViewer, "DecideApproval"));
  EXPECT_FALSE(RoleMayCall(Role::kSubmitter, "DecideApproval"));
  EXPECT_TRUE(RoleMayCall(Role::kAdmin, "DecideApproval"));
  EXPECT_FALSE(RoleMayCall(Role::kAgent, "DecideApproval"));
}

TEST(AuthorizerTest, WithoutTokensEveryoneIsLocalAdmin) {
  Authorizer auth(nullptr);
  EXPECT_FALSE(auth.requires_token());
  absl::StatusOr<Principal> who = auth.Authorize("", "SubmitRun");
  ASSERT_TRUE(who.ok());
  EXPECT_EQ(who->name, "local");
  EXPECT_EQ(who->role, Role::kAdmin);
}

}  // namespace
}  // namespace kiln::service
