#!/bin/bash
# See BUILD.bazel. Everything runs against a registry this test starts on
# loopback and stops by its pid.
set -u
root="$TEST_SRCDIR/kiln"
kiln="$root/kiln"
work="$TEST_TMPDIR/e2e"
rm -rf "$work" && mkdir -p "$work"
fail=0
expect() {  # DESCRIPTION FILE PATTERN
  grep -qE -- "$3" "$2" || { echo "FAIL $1: no line matching /$3/ in:"; cat "$2"; fail=1; }
}
for tool in docker-registry skopeo umoci; do
  command -v "$tool" >/dev/null || { echo "FAIL: $tool is missing (scripts/install-deps)"; exit 1; }
done
registry=$("$root/scripts/local-registry" start "$work/registry") || exit 1
trap '"$root/scripts/local-registry" stop "$work/registry"' EXIT
echo "registry at $registry"

# A busybox image made apart from kiln (umoci), pushed by skopeo.
layout="$work/layout" bundle="$work/bundle"
umoci init --layout "$layout" &&
  umoci new --image "$layout:bb" &&
  umoci unpack --rootless --image "$layout:bb" "$bundle" >/dev/null || exit 1
mkdir -p "$bundle/rootfs/bin" "$bundle/rootfs/etc"
cp /bin/busybox "$bundle/rootfs/bin/busybox"
for c in sh ls cat echo test head grep; do ln -s busybox "$bundle/rootfs/bin/$c"; done
echo "root:x:0:0:root:/root:/bin/sh" >"$bundle/rootfs/etc/passwd"
umoci repack --image "$layout:bb" "$bundle" &&
  umoci config --image "$layout:bb" --config.env PATH=/bin --config.workingdir /work &&
  skopeo copy -q --dest-tls-verify=false "oci:$layout:bb" "docker://$registry/bb:1" || exit 1

src="$work/src"
mkdir -p "$src/deploy"
cat >"$src/deploy/kustomization.yaml" <<'YAML'
resources: [pod.yaml]
YAML
cat >"$src/deploy/pod.yaml" <<'YAML'
apiVersion: v1
kind: Pod
metadata:
  name: app
spec:
  containers:
  - name: app
    image: app
YAML
cat >"$src/pipeline.yaml" <<'YAML'
name: images
params:
  - name: registry
tasks:
  - name: plain
    run:
      image: ${params.registry}/bb:1
      command: [sh, -c, 'test ! -e /etc/debian_version && echo "plain image in $(pwd)"']
  - name: app
    run:
      image: host
      command: [sh, -c, 'mkdir -p out && printf "#!/bin/sh\necho from-app\n" >out/app && chmod 755 out/app']
    outputs: [{artifact: app, paths: [out]}]
  - name: image
    needs: [app]
    containerize:
      base: ${params.registry}/bb:1
      layers: [{artifact: app, to: /opt}]
      entrypoint: [/opt/out/app]
      push: ${params.registry}/app:1
  - name: inside
    needs: [image]
    run:
      image: ${tasks.image.outputs.image}
      command: [sh, -c, 'test ! -e /etc/debian_version && /opt/out/app && echo in-built-image']
  - name: manifests
    needs: [image]
    render:
      kustomization: deploy
      images:
        - {name: app, new_name: "${params.registry}/app", digest: "${tasks.image.outputs.digest}"}
  - name: show
    needs: [manifests]
    run:
      image: host
      command: [cat, manifests.yaml]
    inputs: [manifests]
YAML
out="$work/out"
"$kiln" run "$src/pipeline.yaml" --store "$work/store" --no-git --param "registry=$registry" >"$out" 2>&1 ||
  { echo "FAIL: the image pipeline failed"; cat "$out"; fail=1; }
expect "run.image runs in the pulled image" "$out" '^plain \| plain image in /work$'
expect "the built image runs" "$out" '^inside \| from-app$'
expect "the built image runs" "$out" '^inside \| in-built-image$'
digest=$(skopeo inspect --tls-verify=false "docker://$registry/app:1" | sed -n 's/.*"Digest": "\(sha256:[0-9a-f]*\)".*/\1/p')
[ -n "$digest" ] || { echo "FAIL: skopeo sees no app:1"; fail=1; }
expect "manifests pinned to the pushed digest" "$out" "^show \|   - image: $registry/app@$digest\$"
skopeo copy -q --src-tls-verify=false "docker://$registry/app:1" "oci:$work/pulled:app" &&
  umoci unpack --rootless --image "$work/pulled:app" "$work/unpacked" >/dev/null ||
  { echo "FAIL: skopeo/umoci cannot take kiln's image"; fail=1; }
[ -x "$work/unpacked/rootfs/opt/out/app" ] || { echo "FAIL: the layer's file is not in the image"; fail=1; }
grep -q '"/opt/out/app"' "$work/unpacked/config.json" || { echo "FAIL: entrypoint not in the config"; fail=1; }

# Again: every task from the cache, the push re-checked (nothing changes).
"$kiln" run "$src/pipeline.yaml" --store "$work/store" --no-git --param "registry=$registry" >"$out" 2>&1 || fail=1
expect "cached second run" "$out" 'succeeded in .* 0 succeeded, [0-9]+ cached'

# The tag moved to another image behind kiln's back: the cached run sees
# the tag no longer names its image and pushes it again.
skopeo copy -q --src-tls-verify=false --dest-tls-verify=false \
  "docker://$registry/bb:1" "docker://$registry/app:1" || fail=1
"$kiln" run "$src/pipeline.yaml" --store "$work/store" --no-git --param "registry=$registry" >"$out" 2>&1 || fail=1
expect "cached run after the tag moved" "$out" 'succeeded in .* 0 succeeded, [0-9]+ cached'
again=$(skopeo inspect --tls-verify=false "docker://$registry/app:1" | sed -n 's/.*"Digest": "\(sha256:[0-9a-f]*\)".*/\1/p')
[ "$again" = "$digest" ] || { echo "FAIL: app:1 is $again after the cached run, not kiln's $digest"; fail=1; }

# An image that does not exist fails the task, naming it; nothing runs on the host.
sed -i "s#/bb:1#/nothing:here#" "$src/pipeline.yaml"
"$kiln" run "$src/pipeline.yaml" --store "$work/store" --no-git --param "registry=$registry" >"$out" 2>&1 &&
  { echo "FAIL: a missing image succeeded"; fail=1; }
expect "missing image named" "$out" "nothing"

# A task result feeds the pushed image's tag: `version` writes it to
# $KILN_RESULTS, `image` pushes app:<it>; `kiln runs RUN` shows it.
mkdir -p "$work/tagged"
cat >"$work/tagged/pipeline.yaml" <<'YAML'
name: tagged
params:
  - name: registry
tasks:
  - name: version
    run:
      image: host
      command: [sh, -c, 'echo 7.1.$((6 * 7)) >"$KILN_RESULTS/tag"']
      results: [tag]
  - name: image
    needs: [version]
    containerize:
      base: scratch
      layers: [{artifact: source, to: /src}]
      labels: {version: "${tasks.version.results.tag}"}
      push: ${params.registry}/tagged:v${tasks.version.results.tag}
YAML
"$kiln" run "$work/tagged/pipeline.yaml" --store "$work/store" --no-git --param "registry=$registry" >"$out" 2>&1 ||
  { echo "FAIL: the tagged pipeline failed"; cat "$out"; fail=1; }
skopeo inspect --tls-verify=false "docker://$registry/tagged:v7.1.42" >"$work/tagged.json" ||
  { echo "FAIL: no image tagged with the task's result"; cat "$out"; fail=1; }
expect "the result is the image's label" "$work/tagged.json" '"version": "7.1.42"'
run_id=$("$kiln" runs --store "$work/store" --pipeline tagged --limit 1 --json | sed -n 's/.*"id": "\([^"]*\)".*/\1/p' | head -1)
"$kiln" runs "$run_id" --store "$work/store" >"$out" 2>&1 || { echo "FAIL: kiln runs $run_id"; cat "$out"; fail=1; }
expect "kiln runs shows the result" "$out" '^    result tag = 7\.1\.42$'

# A registry that requires a password: the push takes credentials from a
# secret param (never shown), and refuses a password that is not a secret.
authreg=$("$root/scripts/local-registry" start "$work/authreg" pusher s3cr3t-pw) || exit 1
trap '"$root/scripts/local-registry" stop "$work/registry"; "$root/scripts/local-registry" stop "$work/authreg"' EXIT
mkdir -p "$work/auth"
cat >"$work/auth/pipeline.yaml" <<'YAML'
name: authpush
params:
  - name: registry
  - name: regpass
    secret: true
  - name: plain
tasks:
  - name: image
    containerize:
      base: scratch
      layers: [{artifact: source, to: /src}]
      push: ${params.registry}/secure:1
      auth: {username: pusher, password: "${params.regpass}"}
YAML
"$kiln" run "$work/auth/pipeline.yaml" --store "$work/store" --no-git --param "registry=$authreg" \
  --param regpass=s3cr3t-pw --param plain=x >"$out" 2>&1 || { echo "FAIL: authenticated push"; cat "$out"; fail=1; }
skopeo inspect --tls-verify=false --creds pusher:s3cr3t-pw "docker://$authreg/secure:1" >/dev/null ||
  { echo "FAIL: the authenticated push is not in the registry"; fail=1; }
if grep -rqa s3cr3t-pw "$out" "$work/store"; then echo "FAIL: the password was written out"; fail=1; fi
sed 's/password: "${params.regpass}"/password: "${params.plain}"/' "$work/auth/pipeline.yaml" >"$work/auth/plain.yaml"
"$kiln" run "$work/auth/plain.yaml" --store "$work/store" --no-git --param "registry=$authreg" \
  --param regpass=unused --param plain=s3cr3t-pw >"$out" 2>&1 && { echo "FAIL: a non-secret password was used"; fail=1; }
expect "non-secret password refused" "$out" "not a secret param"
sed '/auth:/d' "$work/auth/pipeline.yaml" >"$work/auth/noauth.yaml"
"$kiln" run "$work/auth/noauth.yaml" --store "$work/store" --no-git --param "registry=$authreg" \
  --param regpass=x --param plain=x >"$out" 2>&1 && { echo "FAIL: an unauthenticated push succeeded"; fail=1; }
expect "unauthenticated push says why" "$out" "requires credentials \(basic auth\)"

# examples/hello: its image is built and pushed, the renders pinned to it.
cp -rL "$root/examples/hello" "$work/hello" && chmod -R u+w "$work/hello"
# No cluster here (a HOME without ~/.kube, no $KUBECONFIG, not in a pod):
# the example skips its deploy with the reason rather than failing in it.
mkdir -p "$work/home"
env -u KUBECONFIG -u KUBERNETES_SERVICE_HOST HOME="$work/home" \
  "$kiln" run "$work/hello/pipeline.yaml" --store "$work/store" --no-git --branch feature/x \
  --message "shipit: e2e" --param "registry=$registry" >"$out" 2>&1 ||
  { echo "FAIL: hello failed"; cat "$out"; fail=1; }
expect "hello image" "$out" '^image: succeeded'
expect "hello deploy skipped without a cluster" "$out" '^deploy-preview: skipped \(deploy has no cluster: no kubeconfig'
skopeo inspect --tls-verify=false "docker://$registry/hello:latest" >"$work/hello.json" ||
  { echo "FAIL: hello:latest was not pushed"; fail=1; }
exit $fail
