"""kiln_repositories(): what a workspace using an installed kiln needs offline.

Installed as PREFIX/share/kiln/bazel/repositories.bzl, next to the BUILD file
that defines @kiln//:kiln (docs/embedding.md):

    local_repository(name = "kiln", path = "PREFIX/share/kiln/bazel")
    load("@kiln//:repositories.bzl", "kiln_repositories")
    kiln_repositories()

Bazel 4.2.3 (Debian's bazel-bootstrap) downloads rules_cc, rules_java and
remote_coverage_tools as soon as a C++ target is analysed. Offline, each is
replaced by a stand-in that forwards to Bazel's native rules (all that
@bazel_tools loads from them). A repository the workspace already declares
(real rules, a newer Bazel's) is left alone. The installed library needs no
other Bazel repository: its system libraries are link flags of @kiln//:kiln.
"""

_FORWARDED = {
    "rules_cc": ("cc", [
        "cc_binary",
        "cc_import",
        "cc_library",
        "cc_proto_library",
        "cc_test",
        "cc_toolchain",
        "cc_toolchain_suite",
        "objc_import",
        "objc_library",
    ]),
    "rules_java": ("java", [
        "java_binary",
        "java_import",
        "java_library",
        "java_lite_proto_library",
        "java_plugin",
        "java_proto_library",
        "java_runtime",
        "java_test",
        "java_toolchain",
    ]),
}

def _stand_in_impl(ctx):
    ctx.file("WORKSPACE", 'workspace(name = "%s")\n' % ctx.name)
    if ctx.name == "remote_coverage_tools":
        ctx.file("BUILD.bazel", "\n".join([
            "# Offline stand-in: no coverage is collected through it.",
            'package(default_visibility = ["//visibility:public"])',
            'filegroup(name = "coverage_report_generator")',
            'filegroup(name = "lcov_merger")',
            "",
        ]))
        return
    package, rules = _FORWARDED[ctx.name]
    ctx.file("BUILD.bazel", "# Offline stand-in for %s.\n" % ctx.name)
    ctx.file(package + "/BUILD.bazel", "")
    ctx.file(package + "/defs.bzl", '"""Forwards to Bazel\'s native rules."""\n' + "".join([
        "\ndef %s(**attrs):\n    native.%s(**attrs)\n" % (r, r)
        for r in rules
    ]))

_stand_in = repository_rule(implementation = _stand_in_impl, local = True)

def kiln_repositories():
    """Declares the offline stand-ins the workspace does not have yet."""
    for name in ["rules_cc", "rules_java", "remote_coverage_tools"]:
        if not native.existing_rule(name):
            _stand_in(name = name)
