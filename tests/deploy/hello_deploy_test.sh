#!/bin/bash
# See BUILD.bazel. examples/hello deployed for real: its image pushed to a
# registry this test starts on loopback, its deploy tasks applied to the API
# server double (a process with its simulated rollouts), the result read back
# with the real kubectl. Both are stopped by their pids at the end.
set -u
root="$TEST_SRCDIR/kiln"
kiln="$root/kiln"
double="$root/kube/testing/fake_api_server_main"
work="$TEST_TMPDIR/hello-deploy"
rm -rf "$work" && mkdir -p "$work/home"
fail=0
out="$work/out"
expect() {  # DESCRIPTION FILE PATTERN
  grep -qE -- "$3" "$2" || { echo "FAIL $1: no line matching /$3/ in:"; cat "$2"; fail=1; }
}
refuse() {  # DESCRIPTION FILE PATTERN
  if grep -qE -- "$3" "$2"; then echo "FAIL $1: a line matches /$3/ in:"; cat "$2"; fail=1; fi
}
for tool in docker-registry kubectl curl; do
  command -v "$tool" >/dev/null || { echo "FAIL: $tool is missing (scripts/install-deps)"; exit 1; }
done

double_pid=""
cleanup() {
  exec 3>&- 2>/dev/null  # the double stops when its stdin closes
  if [[ -n "$double_pid" ]]; then
    for _ in $(seq 1 50); do kill -0 "$double_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$double_pid" 2>/dev/null
    wait "$double_pid" 2>/dev/null
  fi
  "$root/scripts/local-registry" stop "$work/registry"
}
trap cleanup EXIT
registry=$("$root/scripts/local-registry" start "$work/registry") || exit 1

# The double serves until its stdin closes: stdin is a fifo this shell holds.
kubeconfig="$work/kubeconfig"
mkfifo "$work/double.in"
"$double" --rollouts "$kubeconfig" <"$work/double.in" >"$work/double.out" 2>"$work/double.err" &
double_pid=$!
exec 3>"$work/double.in"
for _ in $(seq 1 100); do
  [[ -s "$work/double.out" ]] && break
  kill -0 "$double_pid" 2>/dev/null || break
  sleep 0.1
done
[[ -s "$work/double.out" ]] || { echo "FAIL: the API server double did not start"; cat "$work/double.err"; exit 1; }
echo "registry at $registry, API server double: $(cat "$work/double.out")"

k() { kubectl --kubeconfig "$kubeconfig" --cache-dir "$work/kube-cache" --request-timeout=20s "$@"; }
# run_hello BRANCH MESSAGE REVISION: kiln run of a copy of examples/hello.
cp -rL "$root/examples/hello" "$work/hello" && chmod -R u+w "$work/hello"
run_hello() {
  env -u KUBECONFIG -u KUBERNETES_SERVICE_HOST HOME="$work/home" timeout 120 \
    "$kiln" run "$work/hello/pipeline.yaml" --store "$work/store" --no-git \
    --branch "$1" --message "$2" --revision "$3" --param "registry=$registry" \
    --kubeconfig "$kubeconfig" >"$out" 2>&1
}
# The digest the registry serves for hello:latest (the last push).
latest_digest() {
  curl -fsS -o /dev/null -D - -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
    "http://$registry/v2/hello/manifests/latest" | tr -d '\r' |
    sed -n 's/^[Dd]ocker-[Cc]ontent-[Dd]igest: //p'
}
# check_env NAMESPACE ENVIRONMENT DEPLOYMENT REPLICAS: what kiln applied.
check_env() {
  local ns=$1 env=$2 name=$3 replicas=$4 digest got
  digest=$(latest_digest)
  [[ $digest == sha256:* ]] || { echo "FAIL $env: no hello:latest in the registry"; fail=1; }
  got=$(k get deployment "$name" -n "$ns" -o jsonpath='{.spec.template.spec.containers[0].image}') ||
    { echo "FAIL $env: no Deployment $name in $ns"; fail=1; return; }
  [[ $got == "$registry/hello@$digest" ]] ||
    { echo "FAIL $env: image is '$got', want $registry/hello@$digest (pinned by digest)"; fail=1; }
  got=$(k get deployment "$name" -n "$ns" -o jsonpath='{.metadata.labels.kiln\.dev/environment} {.spec.template.metadata.labels.kiln\.dev/environment} {.metadata.labels.app\.kubernetes\.io/managed-by}')
  [[ $got == "$env $env kiln" ]] ||
    { echo "FAIL $env: labels (object, pod template, managed-by) are '$got'"; fail=1; }
  got=$(k get deployment "$name" -n "$ns" --show-managed-fields \
    -o jsonpath='{.metadata.managedFields[?(@.manager=="kiln")].operation}')
  [[ $got == Apply ]] || { echo "FAIL $env: manager kiln (Apply) missing: '$got'"; fail=1; }
  got=$(k get deployment "$name" -n "$ns" -o jsonpath='{.spec.replicas}')
  [[ $got == "$replicas" ]] || { echo "FAIL $env: $got replicas, want $replicas"; fail=1; }
  k get service "$name" -n "$ns" -o name >/dev/null || { echo "FAIL $env: no Service $name in $ns"; fail=1; }
  got=$(k get configmap -n "$ns" -l "kiln.dev/environment=$env" -o name)
  [[ $got == configmap/hello-config* ]] || { echo "FAIL $env: no hello-config ConfigMap: '$got'"; fail=1; }
}
# versions NAMESPACE: every object's kind, name, resourceVersion, generation.
versions() {
  k get deployment,service,configmap -n "$1" -l app.kubernetes.io/managed-by=kiln \
    -o jsonpath='{range .items[*]}{.kind}/{.metadata.name} {.metadata.resourceVersion} {.metadata.generation}{"\n"}{end}'
}

# A feature branch with a "shipit" message: the preview, in a namespace of
# its own that kiln creates.
run_hello feature/greeting "shipit: friendlier greeting" 1111111 ||
  { echo "FAIL: the feature branch run failed"; cat "$out"; fail=1; }
expect "preview created its namespace" "$out" '^deploy-preview \| created namespace hello-feature-greeting$'
expect "preview deployed" "$out" '^deploy-preview: succeeded'
expect "no stage deploy on a branch" "$out" '^deploy-stage: skipped'
check_env hello-feature-greeting preview hello-preview 1
# deploy-preview does not wait for its rollout: the double's controller is
# still writing the Deployment's status (a new resourceVersion). Compare
# versions only once the rollout is over.
settled=""
for _ in $(seq 1 100); do
  settled=$(k get deployment hello-preview -n hello-feature-greeting \
    -o jsonpath='{.status.availableReplicas} {.status.conditions[?(@.type=="Progressing")].reason}')
  [[ $settled == "1 NewReplicaSetAvailable" ]] && break
  sleep 0.1
done
[[ $settled == "1 NewReplicaSetAvailable" ]] ||
  { echo "FAIL: the preview rollout did not complete: '$settled'"; fail=1; }
versions hello-feature-greeting >"$work/preview.before"
run_hello feature/greeting "shipit: friendlier greeting" 1111111 ||
  { echo "FAIL: the second feature branch run failed"; cat "$out"; fail=1; }
expect "the build is cached" "$out" '^image: cached'
expect "the unchanged preview is not applied again" "$out" \
  '^deploy-preview \| unchanged since deployment [0-9]+ \(run r[^)]*\): 3 objects match, not re-applied$'
refuse "nothing re-applied to the preview" "$out" '^deploy-preview \| .* serverside-applied'
expect "the preview deploy is cached" "$out" '^deploy-preview: cached'
versions hello-feature-greeting >"$work/preview.after"
[[ $(wc -l <"$work/preview.before") -eq 3 ]] ||
  { echo "FAIL: the preview namespace does not hold 3 objects:"; cat "$work/preview.before"; fail=1; }
cmp -s "$work/preview.before" "$work/preview.after" ||
  { echo "FAIL: re-applying the same commit changed objects:"; diff "$work/preview.before" "$work/preview.after"; fail=1; }

# main: stage, then prod, permanent environments whose namespaces kiln never
# creates. Without them the deploy fails before writing anything.
run_hello main "friendlier greeting" 2222222 && { echo "FAIL: main ran without its namespaces"; fail=1; }
expect "a missing permanent namespace is refused" "$out" \
  '^deploy-stage: FAILED .*namespace "hello-stage" of permanent environment "stage" does not exist'
expect "prod is not reached" "$out" '^deploy-prod: skipped'
if k get namespace hello-stage >/dev/null 2>&1; then echo "FAIL: kiln created a permanent namespace"; fail=1; fi
for ns in hello-stage hello-prod; do
  k create namespace "$ns" --dry-run=client -o yaml | k apply -f - >/dev/null ||
    { echo "FAIL: creating namespace $ns"; fail=1; }
done
run_hello main "friendlier greeting" 2222222 || { echo "FAIL: the main run failed"; cat "$out"; fail=1; }
expect "stage waited for its rollout" "$out" '^deploy-stage \| Deployment/hello is ready$'
expect "prod waited for its rollout" "$out" '^deploy-prod \| Deployment/hello is ready$'
expect "prod after stage" "$out" '^deploy-prod: succeeded'
stage_done=$(grep -n '^deploy-stage: succeeded' "$out" | cut -d: -f1)
prod_start=$(grep -n '^deploy-prod: running' "$out" | cut -d: -f1)
[[ -n $stage_done && -n $prod_start && $prod_start -gt $stage_done ]] ||
  { echo "FAIL: deploy-prod did not start after deploy-stage succeeded"; fail=1; }
refuse "no preview on main" "$out" '^deploy-preview: succeeded'
check_env hello-stage stage hello 2
check_env hello-prod prod hello 3
# prod promotes stage's deployment: the same digest, said per image.
stage_image=$(k get deployment hello -n hello-stage -o jsonpath='{.spec.template.spec.containers[0].image}')
prod_image=$(k get deployment hello -n hello-prod -o jsonpath='{.spec.template.spec.containers[0].image}')
[[ $stage_image == "$registry/hello@sha256:"* && $prod_image == "$stage_image" ]] ||
  { echo "FAIL: prod runs '$prod_image', stage '$stage_image' (want stage's digest)"; fail=1; }
expect "prod promoted stage's digest" "$out" \
  "^deploy-prod \\| promoted ${stage_image//./\\.} from stage \\(deployment [0-9]+, run r[0-9a-z-]+\\)\$"
got=$(k get deployment hello -n hello-prod -o jsonpath='{.status.readyReplicas}/{.status.availableReplicas}')
[[ $got == 3/3 ]] || { echo "FAIL: prod rollout status is $got, want 3/3"; fail=1; }
versions hello-stage >"$work/stage.before"
versions hello-prod >"$work/prod.before"
run_hello main "friendlier greeting" 2222222 || { echo "FAIL: the second main run failed"; cat "$out"; fail=1; }
for env in stage prod; do
  expect "$env is unchanged" "$out" \
    "^deploy-$env \\| unchanged since deployment [0-9]+ \\(run r[^)]*\\): [0-9]+ objects match, not re-applied\$"
  refuse "nothing re-applied to $env" "$out" "^deploy-$env \\| .* serverside-applied"
  expect "$env is cached" "$out" "^deploy-$env: cached"
  versions "hello-$env" >"$work/$env.after"
  cmp -s "$work/$env.before" "$work/$env.after" ||
    { echo "FAIL: re-applying $env changed objects:"; diff "$work/$env.before" "$work/$env.after"; fail=1; }
done
expect "nothing ran again" "$out" '^run .*: succeeded .* 0 succeeded, 9 cached'
# The preview of the branch is untouched by main's deploys.
versions hello-feature-greeting >"$work/preview.last"
cmp -s "$work/preview.before" "$work/preview.last" ||
  { echo "FAIL: main changed the preview:"; diff "$work/preview.before" "$work/preview.last"; fail=1; }
[[ $fail -eq 0 ]] && echo "hello deploy ok"
exit $fail
