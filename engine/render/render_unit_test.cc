// Unit tests for the YAML model, emitter quoting, scalar typing, strategic
// merge, JSON patch, the generator hash and resource ordering.
#include <cstdlib>
#include <fstream>
#include <limits>
#include <string>

#include "engine/render/convert.h"
#include "engine/render/emit.h"
#include "engine/render/hash.h"
#include "engine/render/json_patch.h"
#include "engine/render/render.h"
#include "engine/render/resource.h"
#include "engine/render/scalar.h"
#include "engine/render/strategic_merge.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kiln::render {
namespace {

Value Parse(const std::string& text) {
  auto docs = ParseYamlStream(text, "test.yaml");
  EXPECT_TRUE(docs.ok()) << docs.status();
  return docs.ok() && !docs->empty() ? (*docs)[0] : Value();
}

std::string RoundTrip(const std::string& text) {
  return EmitDocument(Parse(text));
}

TEST(Emit, QuotingTable) {
  EXPECT_EQ(RoundTrip("a: yes\nb: \"yes\"\nc: yEs\n"),
            "a: \"yes\"\nb: \"yes\"\nc: yEs\n");
  EXPECT_EQ(RoundTrip("a: \"0755\"\nb: \"12:30\"\nc: \"2024-03-01\"\n"),
            "a: \"0755\"\nb: \"12:30\"\nc: \"2024-03-01\"\n");
  EXPECT_EQ(RoundTrip("a: \"*x\"\nb: \"- x\"\nc: \"a: b\"\nd: -Xmx2g\n"),
            "a: '*x'\nb: '- x'\nc: 'a: b'\nd: -Xmx2g\n");
  EXPECT_EQ(RoundTrip("a: \"\\U0001F680\"\nb: \"\\ta\"\nc: \"\"\n"),
            "a: \"\\U0001F680\"\nb: \"\\ta\"\nc: \"\"\n");
  EXPECT_EQ(RoundTrip("a: \"x\\ny\\n\"\nb: \"x\\ny\"\nc: \" x\\n\"\n"),
            "a: |\n  x\n  y\nb: |-\n  x\n  y\nc: |2\n   x\n");
  EXPECT_EQ(RoundTrip("\"on\": 1\n\"y\": 2\n"), "\"on\": 1\n\"y\": 2\n");
}

TEST(Emit, LayoutAndWrapping) {
  EXPECT_EQ(RoundTrip("l: [a, [b], {k: v}, [], {}]\n"),
            "l:\n- a\n- - b\n- k: v\n- []\n- {}\n");
  std::string long_text(
      "w: this is a long string with many many words that goes on and on and "
      "on past eighty columns for sure\n");
  EXPECT_EQ(RoundTrip(long_text),
            "w: this is a long string with many many words that goes on and "
            "on and on past eighty\n  columns for sure\n");
}

// Emitted text must read back as the same value (yaml_emit_fuzzer's rule).
void ExpectFixedPoint(const std::string& emitted) {
  EXPECT_EQ(RoundTrip(emitted), emitted);
}

TEST(Emit, RootScalarsAreIndented) {
  // A root literal block at column 0 would read back as a different stream.
  std::string out = RoundTrip("d \nm*l el:d \nm*l\n\n*");
  EXPECT_EQ(out, "|-\n  d m*l el:d m*l\n  *\n");
  ExpectFixedPoint(out);
}

TEST(Emit, LongAndMultilineKeysAreExplicit) {
  std::string long_key(129, 'k');
  std::string out = RoundTrip(long_key + ": 1\n");
  EXPECT_EQ(out, "? " + long_key + "\n: 1\n");
  ExpectFixedPoint(out);
  std::string at_limit(128, 'k');
  EXPECT_EQ(RoundTrip(at_limit + ": 1\n"), at_limit + ": 1\n");

  // As kubectl kustomize v5.5.0 prints it (tests/render/fixtures/
  // emitter-divergences checks this against a live kubectl): a block
  // collection value starts on the ":" line.
  out = RoundTrip("x:\n  \"a\\nb\": {y: 1}\n  \"c\\nd\": [1]\n");
  EXPECT_EQ(out,
            "x:\n  ? |-\n    a\n    b\n  : \"y\": 1\n"
            "  ? |-\n    c\n    d\n  : - 1\n");
  ExpectFixedPoint(out);
}

TEST(Emit, MergeKeyStringIsQuotedOnlyAsKey) {
  // kubectl kustomize v5.5.0 drops an entry with a quoted "<<" key.
  EXPECT_EQ(RoundTrip("\"<<\": \"<<\"\nk: \"<<\"\n"), "k: <<\n");
  // A "<<" key made some other way is quoted, so it cannot read back as a
  // merge key; a "<<" value stays plain.
  Value v = Value::EmptyMap();
  v.map["<<"] = Value::Str("<<");
  EXPECT_EQ(EmitDocument(v), "\"<<\": <<\n");
}

TEST(Scalar, EmptyFlowValueIsEmptyString) {
  // kubectl kustomize v5.5.0: an empty value in a flow collection is "",
  // in block style null.
  EXPECT_EQ(RoundTrip("a: {c: , d: ~}\nb: [e: ]\nf: {g}\nh:\n  c:\n"),
            "a:\n  c: \"\"\n  d: null\nb:\n- e: \"\"\nf:\n  g: \"\"\nh:\n  c: "
            "null\n");
}

TEST(Scalar, TypeResolution) {
  EXPECT_EQ(RoundTrip("a: 0644\nb: 0x1F\nc: 1e3\nd: 1.0\ne: 1.50\n"),
            "a: 420\nb: 31\nc: 1000\nd: 1\ne: 1.5\n");
  EXPECT_EQ(RoundTrip("a: 100000000000000000000\nb: 1e-7\nc: 1234567.5\n"),
            "a: 1e+20\nb: 1e-07\nc: 1.2345675e+06\n");
  EXPECT_EQ(RoundTrip("a: 2024-03-01\nb: ~\nc:\n"),
            "a: \"2024-03-01T00:00:00Z\"\nb: null\nc: null\n");
  EXPECT_FALSE(ParseYamlStream("a: .inf\n", "t.yaml").ok());
  // A float that overflows is no float JSON can hold (fuzzer finding:
  // ".5e888888888" reached the digit formatting as infinity).
  EXPECT_FALSE(ParseYamlStream("a: .5e888888888\n", "t.yaml").ok());
  EXPECT_FALSE(ParseYamlStream("a: 5e888888888\n", "t.yaml").ok());
  EXPECT_EQ(FormatNumber(std::numeric_limits<double>::infinity()), ".inf");
  EXPECT_FALSE(ParseYamlStream("1: x\n", "t.yaml").ok());
  EXPECT_TRUE(StringNeedsDoubleQuotes("1_000"));
  EXPECT_FALSE(StringNeedsDoubleQuotes("1e"));
}

TEST(Convert, MergeKeys) {
  EXPECT_EQ(RoundTrip("b: &b {x: 1, y: 2}\nm:\n  <<: *b\n  y: 3\n"),
            "b:\n  x: 1\n  \"y\": 2\nm:\n  x: 1\n  \"y\": 3\n");
}

TEST(StrategicMerge, ContainersByNamePatchFirst) {
  Value target = Parse(
      "spec:\n  containers:\n  - {name: app, image: a, env: [{name: A, "
      "value: '1'}, {name: B, value: '2'}]}\n");
  Value patch = Parse(
      "spec:\n  containers:\n  - name: side\n    image: s\n  - name: app\n"
      "    env:\n    - {name: B, $patch: delete}\n    - {name: C, value: "
      "'3'}\n");
  ASSERT_TRUE(StrategicMerge(patch, true, &target));
  EXPECT_EQ(EmitDocument(target),
            "spec:\n  containers:\n  - image: s\n    name: side\n  - env:\n"
            "    - name: C\n      value: \"3\"\n    - name: A\n      value: "
            "\"1\"\n    image: a\n    name: app\n");
}

TEST(StrategicMerge, NullDeletesAndCustomListsReplace) {
  Value target = Parse("a: 1\nb: 2\nl: [{name: x}, {name: y}]\n");
  Value patch = Parse("a: null\nl: [{name: z}]\n");
  ASSERT_TRUE(StrategicMerge(patch, false, &target));
  EXPECT_EQ(EmitDocument(target), "b: 2\nl:\n- name: z\n");
}

TEST(JsonPatch, Operations) {
  Value doc = Parse("a: {b: [1, 2]}\n");
  Value ops = Parse(
      "- {op: add, path: /a/b/-, value: 3}\n- {op: replace, path: /a/b/0, "
      "value: 9}\n- {op: copy, from: /a/b, path: /c}\n- {op: remove, path: "
      "/a/b/1}\n- {op: test, path: /c/2, value: 3}\n");
  ASSERT_TRUE(ApplyJsonPatch(ops, &doc).ok());
  EXPECT_EQ(EmitDocument(doc), "a:\n  b:\n  - 9\n  - 3\nc:\n- 9\n- 2\n- 3\n");
  Value bad = Parse("- {op: replace, path: /missing, value: 1}\n");
  EXPECT_FALSE(ApplyJsonPatch(bad, &doc).ok());
}

TEST(Hash, MatchesKustomize) {
  // Values observed from kubectl kustomize v5.5.0.
  Value cm = Parse("apiVersion: v1\nkind: ConfigMap\ndata: {a: '1'}\n");
  EXPECT_EQ(ContentHash(cm, ""), "h29d89cmmt");
  Value cm2 = Parse(
      "apiVersion: v1\nkind: ConfigMap\ndata: {a: '1', b: quoted, c: "
      "'yes'}\n");
  EXPECT_EQ(ContentHash(cm2, ""), "29kbd85fbb");
}

TEST(Ordering, LegacyOrder) {
  std::vector<Resource> rs;
  for (const char* doc :
       {"apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\n",
        "apiVersion: batch/v1\nkind: Job\nmetadata: {name: j}\n",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: b, namespace: "
        "x}\n"}) {
    Resource r;
    r.obj = Parse(doc);
    rs.push_back(r);
  }
  SortLegacy(&rs);
  std::string order;
  for (const Resource& r : rs) order += r.Kind() + "/" + r.Name() + " ";
  EXPECT_EQ(order, "ConfigMap/b ConfigMap/a Deployment/d Job/j Pod/p ");
}

// The pipeline's image overrides apply to the rendered images; one that
// matches nothing fails instead of leaving the old image in place.
TEST(Overrides, ImageDigestAppliesAndAnUnmatchedOverrideFails) {
  std::string dir = std::string(std::getenv("TEST_TMPDIR")) + "/overrides";
  ASSERT_EQ(system(("mkdir -p " + dir).c_str()), 0);
  std::ofstream(dir + "/kustomization.yaml") << "resources: [pod.yaml]\n";
  std::ofstream(dir + "/pod.yaml")
      << "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n"
         "  containers:\n  - name: c\n    image: hello:latest\n";
  const std::string digest =
      "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
  RenderOverrides ok;
  v1::ImageOverride image;
  image.set_name("hello");
  image.set_new_name("127.0.0.1:5000/hello");
  image.set_digest(digest);
  ok.images.push_back(image);
  auto out = RenderKustomization(dir, ok);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_THAT(*out,
              ::testing::HasSubstr("image: 127.0.0.1:5000/hello@" + digest));

  RenderOverrides missing;
  image.set_name("127.0.0.1:5000/other");
  missing.images.push_back(image);
  auto refused = RenderKustomization(dir, missing);
  ASSERT_FALSE(refused.ok());
  EXPECT_THAT(
      refused.status().message(),
      ::testing::HasSubstr("image override '127.0.0.1:5000/other' matches no "
                           "container image"));
}

}  // namespace
}  // namespace kiln::render
