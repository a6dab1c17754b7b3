"""A repository rule exposing Debian's -dev packages as cc_library targets.

Link flags and include paths come from pkg-config at fetch time, so the build
follows whatever the installed packages say instead of hand-written lists.
"""

def _pkg_config(ctx, args):
    res = ctx.execute(["pkg-config"] + args)
    if res.return_code != 0:
        fail("pkg-config %s failed: %s" % (" ".join(args), res.stderr))
    return res.stdout.strip().split(" ") if res.stdout.strip() else []

def _system_libs_impl(ctx):
    lines = ['package(default_visibility = ["//visibility:public"])', ""]
    for name, spec in ctx.attr.libs.items():
        modules = [m for m in spec.split(" ") if m and not m.startswith("-")]
        extra = [m for m in spec.split(" ") if m.startswith("-")]
        linkopts = []
        for m in modules:
            for flag in _pkg_config(ctx, ["--libs", m]):
                if flag not in linkopts or flag.startswith("-Wl,"):
                    linkopts.append(flag)
        linkopts += extra
        copts = []
        for m in modules:
            for flag in _pkg_config(ctx, ["--cflags-only-other", m]):
                if flag and flag not in copts:
                    copts.append(flag)
        lines.append("cc_library(")
        lines.append('    name = "%s",' % name)
        lines.append("    linkopts = %s," % repr(linkopts))
        lines.append("    defines = %s," % repr([c[2:] for c in copts if c.startswith("-D")]))
        lines.append(")")
        lines.append("")
    ctx.file("WORKSPACE", 'workspace(name = "%s")\n' % ctx.name)
    ctx.file("BUILD.bazel", "\n".join(lines))

system_libs = repository_rule(
    implementation = _system_libs_impl,
    attrs = {
        # target name -> space-separated pkg-config modules, plus raw "-l" flags.
        "libs": attr.string_dict(mandatory = True),
    },
    local = True,
)
