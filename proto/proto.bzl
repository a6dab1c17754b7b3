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
    cmd = "protoc -I%s -I/usr/include " % native.package_name()
    cmd += "--cpp_out=$(GENDIR)/proto "
    if grpc:
        cmd += "--grpc_out=$(GENDIR)/proto --plugin=protoc-gen-grpc=$$(command -v grpc_cpp_plugin) "
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
