"""kiln_static_link: link flags plus the static archives they name, as CcInfo.

The system libraries' repository (system_libs.bzl) links some libraries into
kiln's own binary statically. Their archives must be inputs of the link
action (the sandbox sees nothing else), and Bazel 4.2.3's cc_library cannot
declare linker inputs (its additional_linker_inputs came in Bazel 6.4), so
this rule builds the CcInfo itself. Loaded by the generated @sys BUILD file.
"""

def _kiln_static_link_impl(ctx):
    linker_input = cc_common.create_linker_input(
        owner = ctx.label,
        user_link_flags = depset(ctx.attr.linkopts),
        additional_inputs = depset(ctx.files.archives),
    )
    return [CcInfo(linking_context = cc_common.create_linking_context(
        linker_inputs = depset([linker_input]),
    ))]

kiln_static_link = rule(
    implementation = _kiln_static_link_impl,
    attrs = {
        # The archives, and linker scripts (.so) of base/lazy's libraries.
        "archives": attr.label_list(allow_files = [".a", ".so"]),
        "linkopts": attr.string_list(),
    },
    doc = "Link flags and the static archives they reach through -L.",
)
