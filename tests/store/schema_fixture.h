// The content of a populated store written by schema_fixture_main and
// checked by schema_upgrade_test: every checked-in schema_fixtures/vN store
// (made by the kiln whose schema was N) must open with today's code with
// this content intact.
#ifndef KILN_TESTS_STORE_SCHEMA_FIXTURE_H_
#define KILN_TESTS_STORE_SCHEMA_FIXTURE_H_

namespace kiln::store::fixture {

constexpr char kPipeline[] = "fixture";
constexpr char kBranch[] = "feature/fixture";
constexpr char kParam[] = "registry";
constexpr char kParamValue[] = "localhost:5000";
constexpr char kSourceDir[] = "checkout";
constexpr char kIdempotencyKey[] = "fixture-key";
constexpr char kLogText[] = "hello from a v1 store";
constexpr char kActionKey[] =
    "sha256:0000000000000000000000000000000000000000000000000000000000000001";
constexpr char kArtifactDigest[] =
    "sha256:00000000000000000000000000000000000000000000000000000000000000aa";
constexpr char kResultKey[] = "version";
constexpr char kResultValue[] = "1.2.3";
constexpr char kComponent[] = "input.source";
constexpr char kComponentDigest[] = "sha256:bb";
// The failed task's TaskStatus.error_code (absl::StatusCode::kDataLoss),
// recorded from schema 4 on; stores of older schemas read 0.
constexpr int kErrorCode = 15;
constexpr int kFirstVersionWithErrorCode = 4;
// A deployment record (schema 6 on): stores of older schemas have none,
// and record their first as id 1 once migrated.
constexpr char kEnvironment[] = "stage";
constexpr char kNamespace[] = "fixture-stage";
constexpr char kImage[] = "nginx:1";
constexpr int kFirstVersionWithDeployments = 6;
// Schema 7 on: the deployment's force flag and each object's uid,
// resourceVersion and generation (older stores read false, "", "", 0).
constexpr char kObjectUid[] = "0d1c7a3e-0000-4000-8000-000000000001";
constexpr char kObjectResourceVersion[] = "4242";
constexpr int kObjectGeneration = 3;
constexpr int kFirstVersionWithLiveState = 7;

}  // namespace kiln::store::fixture

#endif  // KILN_TESTS_STORE_SCHEMA_FIXTURE_H_
