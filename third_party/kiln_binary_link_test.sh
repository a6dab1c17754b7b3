#!/usr/bin/env bash
# kiln_binary_link_test KILN STATIC_LIBS_TXT
#
# KILN links the libraries listed in STATIC_LIBS_TXT (one -l name a line,
# written by @sys) from their static archives. Checks that:
#   - none of them is also a shared library the binary loads, directly or
#     through another shared library (ldd: the loader's whole closure);
#   - libarchive's xar support (libxml2, and ICU behind it) is not linked:
#     loading them was a large part of kiln's start-up (bench/README.md B11);
#   - libcurl, libgit2, cpp-httplib (and what they pull in: gnutls,
#     Kerberos, LDAP, mbedtls, ...) and OpenSSL are not loaded at start
#     (base/lazy binds them on first use, x86-64); a warm run and a render
#     do not load OpenSSL at all on a CPU with SHA-NI (base/sha256), while
#     a run into a fresh store reaches it through the stubs (the store's
#     key is random bytes);
#   - the binary starts (every static initializer, e.g. protobuf's generated
#     descriptors and Abseil's flags, registers once) and runs verbs that
#     reach protobuf, yaml-cpp, libarchive and SQLite, and, through the lazy
#     stubs, libgit2 (a git trigger) and libcurl (a webhook).
set -euo pipefail
kiln=$(realpath "$1")
static_libs=$2
failures=0
fail() {
  echo "FAIL: $*" >&2
  failures=$((failures + 1))
}

[[ -s $static_libs ]] || { echo "FAIL: $static_libs is empty" >&2; exit 1; }
grep -qx "absl_base" "$static_libs" || fail "absl_base is not in $static_libs"
grep -qx "protobuf" "$static_libs" || fail "protobuf is not in $static_libs"

# The shared objects the loader maps for kiln, by file name.
closure=$(ldd "$kiln") || { echo "FAIL: ldd $kiln: $closure" >&2; exit 1; }
loaded=$(awk '{print $1}' <<<"$closure" | sed 's#.*/##')
echo "kiln loads $(wc -l <<<"$loaded") shared objects:" $loaded
if grep -q "not found" <<<"$closure"; then
  fail "a shared library is missing: $(grep "not found" <<<"$closure")"
fi
while read -r lib; do
  [[ -n $lib ]] || continue
  # libNAME.so or libNAME.so.VERSION; libNAME-x.so would be another library.
  hit=$(grep -E "^lib${lib//+/\\+}\.so(\.|$)" <<<"$loaded" || true)
  [[ -z $hit ]] || fail "lib$lib is linked statically but also loaded shared: $hit"
done <"$static_libs"
for lib in xml2 icuuc icudata; do
  hit=$(grep -E "^lib$lib\.so" <<<"$loaded" || true)
  [[ -z $hit ]] || fail "kiln loads $hit (libarchive's xar support)"
done

if [[ $(uname -m) == x86_64 ]]; then
  for lib in curl git2 cpp-httplib gnutls krb5 ldap-2.5 mbedtls ssh2 ssl crypto; do
    hit=$(grep -E "^lib$lib\.so" <<<"$loaded" || true)
    [[ -z $hit ]] || fail "kiln loads $hit at start (base/lazy should bind it on first use; is a function missing from base/lazy/*.S?)"
  done
fi

work=${TEST_TMPDIR:-$(mktemp -d)}
"$kiln" --help >"$work/help.out" 2>&1 || fail "kiln --help: $(cat "$work/help.out")"
grep -q "^usage: kiln VERB" "$work/help.out" || fail "kiln --help printed: $(head -3 "$work/help.out")"

# validate: the YAML loader and the pipeline protos, and an error path
# (a FILE:LINE:COL diagnostic).
mkdir -p "$work/src"
echo data >"$work/src/in.txt"
cat >"$work/src/pipeline.yaml" <<'YAML'
name: link-check
tasks:
  - name: copy
    run:
      image: host
      command: [sh, -c, "cat in.txt in.txt > out.txt"]
    inputs: [source]
    outputs:
      - {artifact: copy, paths: [out.txt]}
YAML
"$kiln" validate "$work/src/pipeline.yaml" >"$work/validate.out" 2>&1 ||
  fail "kiln validate: $(cat "$work/validate.out")"
printf 'name: bad\ntasks:\n  - name: x\n    nosuch: 1\n' >"$work/bad.yaml"
if "$kiln" validate "$work/bad.yaml" >"$work/bad.out" 2>&1; then
  fail "kiln validate accepted an unknown field"
fi
grep -q "bad.yaml:4:5: unknown field 'nosuch'" "$work/bad.out" ||
  fail "kiln validate bad.yaml said: $(cat "$work/bad.out")"

# run, twice: SQLite (run store, action cache), libarchive (the source
# stash, the output artifact), the engine; the second run is a cache hit.
# The loader's log (LD_DEBUG=files, on stderr) also shows that a run with
# no git work tree and no HTTP loads neither libgit2 nor libcurl.
LD_DEBUG=files "$kiln" run "$work/src/pipeline.yaml" --store "$work/store" \
  >"$work/run1.out" 2>"$work/run1.ld" || fail "kiln run: $(tail -5 "$work/run1.ld")"
if [[ $(uname -m) == x86_64 ]] && grep -E "file=lib(curl|git2|cpp-httplib)" "$work/run1.ld"; then
  fail "a run without git or HTTP loaded libcurl, libgit2 or cpp-httplib"
fi
grep -q "file=libc.so" "$work/run1.ld" || fail "LD_DEBUG=files logged nothing: $(head -3 "$work/run1.ld")"
# x86-64 binds OpenSSL lazily; SHA-NI keeps hashing off it (base/sha256).
lazy_openssl=0
if [[ $(uname -m) == x86_64 ]]; then
  lazy_openssl=1
  grep -q "file=libcrypto.so" "$work/run1.ld" ||
    fail "a run into a fresh store did not reach libcrypto (its key file's random bytes) through the lazy stubs"
fi
sha_ni=0
grep -qw sha_ni /proc/cpuinfo && sha_ni=1
LD_DEBUG=files "$kiln" run "$work/src/pipeline.yaml" --store "$work/store" \
  >"$work/run2.out" 2>"$work/run2.ld" ||
  fail "kiln run (again): $(tail -5 "$work/run2.ld")"
# (The summary is on stderr, with the loader's log.)
grep -q "0 succeeded, 1 cached" "$work/run2.ld" ||
  fail "the second run was not a cache hit: $(grep -v "^ *[0-9]*:" "$work/run2.ld" | tail -3)"
if ((lazy_openssl && sha_ni)) && grep -E "file=lib(ssl|crypto)" "$work/run2.ld"; then
  fail "a warm run loaded OpenSSL (hashing should use SHA-NI, base/sha256)"
fi

# render, with a configMapGenerator (its name hash is SHA-256): the same
# output as kubectl kustomize (settings-h29d89cmmt), and OpenSSL not
# loaded with SHA-NI.
mkdir -p "$work/k"
cat >"$work/k/kustomization.yaml" <<'YAML'
configMapGenerator:
  - name: settings
    literals: [a=1]
YAML
LD_DEBUG=files "$kiln" render "$work/k" >"$work/render.out" 2>"$work/render.ld" ||
  fail "kiln render: $(tail -5 "$work/render.ld")"
grep -q "name: settings-h29d89cmmt$" "$work/render.out" ||
  fail "kiln render named the ConfigMap otherwise: $(cat "$work/render.out")"
if ((lazy_openssl && sha_ni)) && grep -E "file=lib(ssl|crypto)" "$work/render.ld"; then
  fail "a render loaded OpenSSL (the name hash should use SHA-NI, base/sha256)"
fi

# The lazily bound libraries, reached for real: a git work tree (the git
# trigger: libgit2 reads HEAD and the status) and a webhook (libcurl posts
# the run's notification to a loopback receiver).
mkdir -p "$work/repo"
cat >"$work/repo/pipeline.yaml" <<'YAML'
name: lazy-check
params:
  - {name: hook}
notify:
  - url: ${params.hook}
    on: succeeded
    template: '{"text": "${pipeline.name} ${run.state}"}'
    retries: 0
tasks:
  - name: rev
    run:
      image: host
      command: [sh, -c, "echo revision=${trigger.revision} branch=${trigger.branch}"]
YAML
git -C "$work/repo" init -q -b trunk
git -C "$work/repo" add pipeline.yaml
git -C "$work/repo" -c user.email=t@example.invalid -c user.name=t commit -qm one
head=$(git -C "$work/repo" rev-parse HEAD)
python3 - "$work/port" "$work/hook.body" <<'PY' &
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        open(sys.argv[2], "wb").write(body)
        self.send_response(200)
        self.end_headers()
    def log_message(self, *a):
        pass
s = http.server.HTTPServer(("127.0.0.1", 0), H)
open(sys.argv[1] + ".tmp", "w").write(str(s.server_port))
import os; os.rename(sys.argv[1] + ".tmp", sys.argv[1])
s.timeout = 30
s.handle_request()
PY
receiver=$!
for _ in $(seq 100); do [[ -s $work/port ]] && break; sleep 0.1; done
port=$(cat "$work/port" 2>/dev/null || true)
[[ -n $port ]] || fail "the webhook receiver did not start"
(cd "$work/repo" && LD_DEBUG=files "$kiln" run pipeline.yaml --store "$work/store2" \
  --param "hook=http://127.0.0.1:$port/hook") >"$work/run3.out" 2>"$work/run3.ld" ||
  fail "kiln run in a git work tree: $(grep -v "^ *[0-9]*:" "$work/run3.ld" | tail -5)"
for lib in curl git2; do
  grep -q "file=lib$lib" "$work/run3.ld" || fail "the git and webhook run did not load lib$lib"
done
grep -q "revision=$head branch=trunk" "$work/run3.out" "$work/run3.ld" ||
  fail "the git trigger did not give the work tree's HEAD ($head): $(grep -h revision= "$work/run3.out" "$work/run3.ld")"
wait "$receiver" || true
grep -q '"lazy-check succeeded"' "$work/hook.body" 2>/dev/null ||
  fail "the webhook was not delivered: $(cat "$work/hook.body" 2>/dev/null)"

if ((failures > 0)); then
  echo "$failures failed" >&2
  exit 1
fi
echo "ok"
