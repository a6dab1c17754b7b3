"""A Python gRPC client of `kiln serve`, from the .proto files alone.

Compiles kiln/v1/*.proto with protoc and grpc_python_plugin into a scratch
directory, then: submits a run whose task produces an output artifact,
watches it to the end (the task-finished event carries the output's tree
digest), lists the run's artifacts, downloads the artifact with
DownloadArtifact in both formats and checks the bytes (the archive's
SHA-256 against its announced digest, every file against what the task
wrote), and checks the refusals (unknown run, task, artifact; a
path-traversal name; no token; a wrong token).

Environment: KILN_ADDR, KILN_TOKEN (submitter), KILN_VIEWER_TOKEN,
KILN_PROTO_DIR, WORK_DIR.
"""

import hashlib
import io
import os
import shutil
import subprocess
import sys
import tarfile

ADDR = os.environ["KILN_ADDR"]
TOKEN = os.environ["KILN_TOKEN"]
VIEWER_TOKEN = os.environ["KILN_VIEWER_TOKEN"]
PROTO_DIR = os.environ["KILN_PROTO_DIR"]
WORK = os.environ["WORK_DIR"]


def compile_protos():
    out = os.path.join(WORK, "py")
    os.makedirs(out, exist_ok=True)
    plugin = shutil.which("grpc_python_plugin")
    if plugin is None:
        sys.exit("grpc_python_plugin not found (protobuf-compiler-grpc)")
    protos = ["kiln/v1/pod.proto", "kiln/v1/pipeline.proto",
              "kiln/v1/run.proto", "kiln/v1/service.proto"]
    subprocess.run(
        ["protoc", "-I", PROTO_DIR, "--python_out", out,
         "--grpc_python_out", out,
         "--plugin=protoc-gen-grpc_python=" + plugin] + protos,
        check=True)
    sys.path.insert(0, out)


compile_protos()

import grpc  # noqa: E402
from kiln.v1 import service_pb2, service_pb2_grpc  # noqa: E402

# The task writes a small tree with a nested directory, an executable and
# bytes that are not text, so a download that mangled anything shows.
FILES = {
    "dist/app.sh": b"#!/bin/sh\necho hello\n",
    "dist/data/blob.bin": bytes(range(256)) * 40,
    "dist/notes.txt": b"made by kiln for python\n",
}
PIPELINE = """name: pyclient
tasks:
  - name: build
    run:
      command:
        - /bin/sh
        - -c
        - |
          mkdir -p dist/data
          printf '#!/bin/sh\\necho hello\\n' > dist/app.sh
          chmod +x dist/app.sh
          i=0; while [ $i -lt 40 ]; do
            printf "$BYTES"; i=$((i+1)); done > dist/data/blob.bin
          printf 'made by kiln for python\\n' > dist/notes.txt
      env: {BYTES: "PLACEHOLDER"}
    outputs:
      - {artifact: app, paths: [dist]}
      - {artifact: notes, paths: [dist/notes.txt]}
"""
# printf in sh takes octal escapes: all 256 byte values, in order.
_ESCAPED = "".join("\\\\%03o" % b for b in range(256))
PIPELINE = PIPELINE.replace("PLACEHOLDER", _ESCAPED)


def check(cond, what):
    if not cond:
        sys.exit("FAIL: " + what)
    print("ok:", what)


def expect_code(fn, code, what):
    try:
        result = fn()
        # A stream fails when it is read.
        if hasattr(result, "__iter__") and not isinstance(result, (bytes, str)):
            list(result)
    except grpc.RpcError as e:
        check(e.code() == code,
              "%s: %s (got %s: %s)" % (what, code, e.code(), e.details()))
        return e
    sys.exit("FAIL: %s: expected %s, call succeeded" % (what, code))


def main():
    channel = grpc.insecure_channel(ADDR)
    grpc.channel_ready_future(channel).result(timeout=30)
    stub = service_pb2_grpc.KilnStub(channel)
    auth = [("authorization", "Bearer " + TOKEN)]
    # Reading outputs needs only the viewer role.
    view = [("authorization", "Bearer " + VIEWER_TOKEN)]

    submitted = stub.SubmitRun(
        service_pb2.SubmitRunRequest(yaml=PIPELINE, filename="py.yaml"),
        metadata=auth, timeout=60)
    run_id = submitted.run_id
    check(bool(run_id), "SubmitRun returned run " + run_id)

    event_outputs = {}
    final = None
    for event in stub.WatchRun(service_pb2.WatchRunRequest(run_id=run_id),
                               metadata=auth, timeout=120):
        kind = event.WhichOneof("kind")
        if kind == "task_state" and event.task_state.task == "build":
            if event.task_state.outputs:
                event_outputs = dict(event.task_state.outputs)
        if kind == "log":
            print("  log:", event.log.text)
        if kind == "run_state":
            final = event.run_state
    check(final is not None and final.state == 3,  # RUN_SUCCEEDED
          "run succeeded (%s)" % (final.reason if final else "no final"))
    check("app" in event_outputs and
          event_outputs["app"].startswith("sha256:"),
          "task-finished event carries output app -> " +
          event_outputs.get("app", "?"))

    run = stub.GetRun(service_pb2.GetRunRequest(run_id=run_id),
                      metadata=auth, timeout=30)
    check(run.tasks[0].outputs["app"] == event_outputs["app"],
          "GetRun records the same output digest")

    listed = stub.ListArtifacts(
        service_pb2.ListArtifactsRequest(run_id=run_id), metadata=view,
        timeout=30)
    check([a.name for a in listed.artifacts] == ["app", "notes"],
          "ListArtifacts lists app and notes")
    check(listed.next_page_token == "", "one page holds both")
    # Pages of one: each has a token to the next, the last none.
    paged, token, pages = [], "", 0
    while True:
        page = stub.ListArtifacts(
            service_pb2.ListArtifactsRequest(run_id=run_id, page_size=1,
                                             page_token=token),
            metadata=view, timeout=30)
        paged += [a.name for a in page.artifacts]
        pages += 1
        token = page.next_page_token
        if not token or pages > 5:
            break
    check(paged == ["app", "notes"] and pages == 2,
          "pages of one: %s in %d pages" % (paged, pages))
    expect_code(lambda: stub.ListArtifacts(
        service_pb2.ListArtifactsRequest(run_id=run_id, page_size=-1),
        metadata=view, timeout=30), grpc.StatusCode.INVALID_ARGUMENT,
        "a negative page_size")
    expect_code(lambda: stub.ListArtifacts(
        service_pb2.ListArtifactsRequest(run_id=run_id, page_token="@@"),
        metadata=view, timeout=30), grpc.StatusCode.INVALID_ARGUMENT,
        "a malformed page_token")
    art = listed.artifacts[0]
    check(art.task == "build" and art.name == "app" and art.stored,
          "the artifact is build/app, stored")
    check(art.tree_digest == event_outputs["app"], "same tree digest")
    check(art.files == len(FILES), "files = %d" % art.files)
    check(art.file_bytes == sum(len(v) for v in FILES.values()),
          "file_bytes = %d" % art.file_bytes)

    # The stored archive, as is: its bytes hash to archive_digest.
    header, data, data_digest = None, bytearray(), None
    for msg in stub.DownloadArtifact(
            service_pb2.DownloadArtifactRequest(run_id=run_id, task="build",
                                                artifact="app"),
            metadata=view, timeout=60):
        if header is None:
            header = msg.artifact
        data += msg.data
        if msg.data_digest:
            data_digest = msg.data_digest
    sha = "sha256:" + hashlib.sha256(bytes(data)).hexdigest()
    check(header.tree_digest == art.tree_digest, "download header names the tree")
    check(len(data) == header.archive_size,
          "archive is %d bytes as announced" % len(data))
    check(sha == header.archive_digest, "archive bytes hash to archive_digest")
    check(data_digest == sha, "trailer data_digest matches")
    check(bytes(data[:4]) == b"\x28\xb5\x2f\xfd", "archive is zstd")

    # The tar stream (decompressed by the server), read with tarfile.
    tar_bytes, tar_digest = bytearray(), None
    for msg in stub.DownloadArtifact(
            service_pb2.DownloadArtifactRequest(
                run_id=run_id, task="build", artifact="app",
                format=service_pb2.DownloadArtifactRequest.TAR),
            metadata=view, timeout=60):
        tar_bytes += msg.data
        if msg.data_digest:
            tar_digest = msg.data_digest
    check(tar_digest == "sha256:" + hashlib.sha256(bytes(tar_bytes)).hexdigest(),
          "tar stream hashes to its trailer digest")
    got = {}
    modes = {}
    with tarfile.open(fileobj=io.BytesIO(bytes(tar_bytes)), mode="r:") as tar:
        for member in tar.getmembers():
            check(not member.name.startswith("/") and
                  ".." not in member.name.split("/"),
                  "entry %s is relative" % member.name)
            if member.isfile():
                got[member.name.lstrip("./")] = tar.extractfile(member).read()
                modes[member.name.lstrip("./")] = member.mode
    check(got == FILES, "downloaded files equal what the task wrote (%s)" %
          sorted(got))
    check(modes["dist/app.sh"] & 0o100, "the executable stays executable")

    # Refusals.
    def download(run, task, name, md=view):
        return stub.DownloadArtifact(
            service_pb2.DownloadArtifactRequest(run_id=run, task=task,
                                                artifact=name),
            metadata=md, timeout=30)
    expect_code(lambda: download("no-such-run", "build", "app"),
                grpc.StatusCode.NOT_FOUND, "unknown run")
    expect_code(lambda: download(run_id, "nope", "app"),
                grpc.StatusCode.NOT_FOUND, "unknown task")
    expect_code(lambda: download(run_id, "build", "nope"),
                grpc.StatusCode.NOT_FOUND, "unknown artifact")
    expect_code(lambda: download(run_id, "build", "../../../../etc/passwd"),
                grpc.StatusCode.NOT_FOUND, "path-traversal artifact name")
    expect_code(lambda: download(run_id, "../build", "app"),
                grpc.StatusCode.NOT_FOUND, "path-traversal task name")
    expect_code(lambda: download(run_id, "", ""),
                grpc.StatusCode.INVALID_ARGUMENT, "no task and artifact")
    expect_code(lambda: download(run_id, "build", "app", md=[]),
                grpc.StatusCode.UNAUTHENTICATED, "no token")
    expect_code(lambda: download(run_id, "build", "app",
                                 md=[("authorization", "Bearer wrong")]),
                grpc.StatusCode.UNAUTHENTICATED, "wrong token")
    expect_code(lambda: stub.ListArtifacts(
        service_pb2.ListArtifactsRequest(run_id="no-such-run"),
        metadata=auth, timeout=30), grpc.StatusCode.NOT_FOUND,
        "ListArtifacts of an unknown run")
    print("python client: all checks passed")


if __name__ == "__main__":
    main()
