#include "engine/pipeline/params.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kiln::pipeline {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

v1::Param MakeParam(const char* name, v1::ParamType type,
                    const char* def = nullptr) {
  v1::Param p;
  p.set_name(name);
  p.set_type(type);
  if (def != nullptr) p.set_default_(def);
  return p;
}

TEST(ParamsTest, CheckParamValue) {
  v1::Param b = MakeParam("b", v1::BOOL);
  EXPECT_EQ(CheckParamValue(b, "true"), "");
  EXPECT_EQ(CheckParamValue(b, "false"), "");
  EXPECT_THAT(CheckParamValue(b, "yes"), HasSubstr("expected true or false"));
  v1::Param i = MakeParam("i", v1::INT);
  EXPECT_EQ(CheckParamValue(i, "-42"), "");
  EXPECT_THAT(CheckParamValue(i, "4x"), HasSubstr("expected an integer"));
  EXPECT_THAT(CheckParamValue(i, "99999999999999999999"),
              HasSubstr("expected an integer"));
  v1::Param c = MakeParam("c", v1::CHOICE);
  c.add_choices("dev");
  c.add_choices("prod");
  EXPECT_EQ(CheckParamValue(c, "prod"), "");
  EXPECT_THAT(CheckParamValue(c, "prd"), HasSubstr("(did you mean 'prod'?)"));
  v1::Param s = MakeParam("s", v1::STRING);
  EXPECT_EQ(CheckParamValue(s, "; rm -rf / $(x) `y`\n"), "");
  // A NUL byte (trigger params arrive over gRPC too) is refused up front.
  EXPECT_THAT(CheckParamValue(s, std::string("a\0b", 3)),
              HasSubstr("contains a NUL byte"));
  v1::Param secret = MakeParam("k", v1::INT);
  secret.set_secret(true);
  EXPECT_THAT(CheckParamValue(secret, "hunter2"), Not(HasSubstr("hunter2")));
}

TEST(ParamsTest, Resolve) {
  v1::Pipeline p;
  *p.add_params() = MakeParam("registry", v1::STRING, "localhost:5000");
  *p.add_params() = MakeParam("replicas", v1::INT, "1");
  *p.add_params() = MakeParam("required", v1::STRING);
  google::protobuf::Map<std::string, std::string> given;
  given["required"] = "x";
  given["replicas"] = "3";
  auto resolved = ResolveParams(p, given);
  ASSERT_TRUE(resolved.ok()) << resolved.status();
  EXPECT_EQ(resolved->at("registry"), "localhost:5000");
  EXPECT_EQ(resolved->at("replicas"), "3");
  EXPECT_EQ(resolved->at("required"), "x");

  given.erase("required");
  given["replicas"] = "many";
  given["registy"] = "r";
  auto bad = ResolveParams(p, given);
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.status().message(), HasSubstr("param required is required"));
  EXPECT_THAT(bad.status().message(),
              HasSubstr("param replicas: expected an integer"));
  EXPECT_THAT(bad.status().message(),
              HasSubstr("unknown param registy (did you mean 'registry'?)"));
}

}  // namespace
}  // namespace kiln::pipeline
