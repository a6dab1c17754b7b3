"""Compiles .proto files with the system protoc (and grpc_cpp_plugin)."""

def kiln_proto_library(name, srcs, deps = [], grpc = False, proto_deps = []):
    """A cc_library from srcs (paths under proto/), compiled by genrule.

    Args:
      name: the cc_library's name.
      srcs: .proto files, relative to this package.
      deps: kiln_proto_library targets these protos import.
      grpc: also generate gRPC service stubs.
      proto_deps: .proto files of deps (labels), needed on protoc's path.
    """
    outs = []
    for s in srcs:
        base = s[:-len(".proto")]
        outs += [base + ".pb.h", base + ".pb.cc"]
        if grpc:
            outs += [base + ".grpc.pb.h", base + ".grpc.pb.cc"]
    # Inside another workspace (kiln as an external repository, e.g. through
    # local_repository) sources and outputs live under external/kiln/.
    repo = native.repository_name()
    root = "" if repo == "@" else "external/%s/" % repo[1:]
    pkg = root + native.package_name()
    cmd = "protoc -I%s -I/usr/include " % pkg
    cmd += "--cpp_out=$(GENDIR)/%s " % pkg
    if grpc:
        cmd += "--grpc_out=$(GENDIR)/%s --plugin=protoc-gen-grpc=$$(command -v grpc_cpp_plugin) " % pkg
    cmd += " ".join(["$(location %s)" % s for s in srcs])
    native.genrule(
        name = name + "_gen",
        srcs = srcs + proto_deps,
        outs = outs,
        cmd = cmd,
    )
    native.cc_library(
        name = name,
        srcs = [o for o in outs if o.endswith(".cc")],
        hdrs = [o for o in outs if o.endswith(".h")],
        includes = ["."],
        deps = deps + ["@sys//:protobuf"] + (["@sys//:grpc"] if grpc else []),
    )
