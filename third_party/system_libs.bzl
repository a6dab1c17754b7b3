"""A repository rule exposing Debian's -dev packages as cc_library targets.

Link flags and include paths come from pkg-config at fetch time, so the build
follows whatever the installed packages say instead of hand-written lists.

Every target links its libraries as shared libraries, except through
`:static_link` (see _static_link): a binary that depends on it links the
libraries named in `static` from their static archives instead. Only kiln's
own command-line binary does (process start-up, bench/README.md B11); tests,
libkiln and the install tree's link flags stay shared.
"""

# Always shared: the C and C++ runtimes. Everything else a static library
# needs (pkg-config --static) is static too unless listed in keep_shared.
_RUNTIME = ["c", "m", "dl", "rt", "pthread", "atomic", "stdc++", "gcc_s"]

def _pkg_config(ctx, args):
    res = ctx.execute(["pkg-config"] + args)
    if res.return_code != 0:
        fail("pkg-config %s failed: %s" % (" ".join(args), res.stderr))
    return res.stdout.strip().split(" ") if res.stdout.strip() else []

def _split_spec(spec):
    """'mod1 mod2 -lraw' -> (pkg-config modules, raw flags)."""
    modules = [m for m in spec.split(" ") if m and not m.startswith("-")]
    extra = [m for m in spec.split(" ") if m.startswith("-")]
    return modules, extra

def _append_new(items, x):
    if x not in items:
        items.append(x)

def _static_link(ctx, lazy_scripts):
    """The BUILD text of :static_link; symlinks static/lib*.a into the repo.

    Its link flags are `-L<this repo>/static` (a directory holding only the
    chosen archives, so every `-lNAME` of the whole link, including the ones
    the shared targets above carry, resolves to libNAME.a there before the
    linker reaches the system directory and its libNAME.so), then the
    archives in one --start-group (their order then does not matter), then
    the shared libraries they need under --as-needed (one not actually
    referenced is not loaded). No library is both: a shared library loaded
    by the binary must not itself need one linked statically (the test
    //third_party:kiln_binary_link_test checks the binary's whole closure).
    """
    static = []
    shared = []
    other = []
    libdirs = []
    for name in ctx.attr.static:
        if name not in ctx.attr.libs:
            fail("system_libs: static names %s, which is not in libs" % name)
        modules, extra = _split_spec(ctx.attr.libs[name])
        flags = []
        for m in modules:
            flags += _pkg_config(ctx, ["--static", "--libs", m])
            _append_new(libdirs, _pkg_config(ctx, ["--variable=libdir", m])[0])
        for f in flags + extra:
            if f.startswith("-l"):
                lib = f[2:]
                if lib in _RUNTIME or lib in ctx.attr.keep_shared:
                    _append_new(shared, lib)
                else:
                    _append_new(static, lib)
            elif f.startswith("-L"):
                _append_new(libdirs, f[2:])
            elif f.startswith("-Wl,--push-state") or f.startswith("-Wl,--pop-state"):
                continue
            else:
                _append_new(other, f)

    archives = []
    for lib in static:
        found = None
        for d in libdirs:
            candidate = ctx.path("%s/lib%s.a" % (d, lib))
            if candidate.exists:
                found = candidate
                break
        if found == None:
            fail(("system_libs: lib%s.a (needed to link %s statically into " +
                  "kiln's binary) is in none of %s; install the -dev package " +
                  "that ships it, or add %s to keep_shared") %
                 (lib, ", ".join(ctx.attr.static), ", ".join(libdirs), lib))
        ctx.symlink(found, "static/lib%s.a" % lib)
        archives.append("static/lib%s.a" % lib)

    # A shared library with no development link (libNAME.so) here, e.g.
    # libacl or liblz4 whose -dev packages libarchive-dev does not pull in:
    # left out. It is one of libarchive's optional parts kiln never reaches;
    # if that changes, the link fails on the undefined symbols.
    linkable = []
    unlinkable = []
    for lib in shared:
        if lib in _RUNTIME or [d for d in libdirs if ctx.path("%s/lib%s.so" % (d, lib)).exists]:
            linkable.append(lib)
        else:
            unlinkable.append(lib)

    linkopts = ["-Lexternal/%s/static" % ctx.name, "-Wl,--start-group"]
    linkopts += ["-l" + lib for lib in static]
    linkopts += ["-Wl,--end-group", "-Wl,--push-state,--as-needed"]
    linkopts += ["-l" + lib for lib in linkable]
    linkopts += ["-Wl,--pop-state"] + other
    # The list, for //third_party:kiln_binary_link_test.
    ctx.file("static_libs.txt", "".join([lib + "\n" for lib in static]))
    return "\n".join([
        "# Linked statically into kiln's own binary (see system_libs.bzl):",
        "# %s." % ", ".join(ctx.attr.static),
        "# Left out (no libNAME.so here): %s." % (", ".join(unlinkable) or "none"),
        'exports_files(["static_libs.txt"])',
        "",
        "kiln_static_link(",
        '    name = "static_link",',
        "    archives = %s," % repr(archives + lazy_scripts),
        "    linkopts = %s," % repr(linkopts),
        ")",
        "",
    ])

def _shared_lib(ctx, name, module):
    """(-l name, path, SONAME) of the shared library pkg-config links for `module`."""
    libs = [f[2:] for f in _pkg_config(ctx, ["--libs-only-l", module])]
    if not libs:
        fail("system_libs: pkg-config names no library for %s (%s)" % (module, name))
    libdir = _pkg_config(ctx, ["--variable=libdir", module])[0]
    path = "%s/lib%s.so" % (libdir, libs[0])
    res = ctx.execute(["readelf", "-d", path])
    if res.return_code != 0:
        fail("system_libs: readelf -d %s failed: %s" % (path, res.stderr))
    for line in res.stdout.split("\n"):
        if "(SONAME)" in line and "[" in line:
            return (libs[0], path, line.split("[")[1].split("]")[0])
    fail("system_libs: %s has no SONAME" % path)

def _lazy_libs(ctx):
    """For each library in `lazy`: its SONAME and a linker script.

    base/lazy binds those libraries' functions on first use, dlopen-ing the
    SONAME the build linked against (lazy_sonames.h: KILN_SONAME_<NAME>).
    static/libNAME.so is a linker script that names the real library
    AS_NEEDED: a binary linked with :static_link finds it first (its -L),
    so the library is recorded only if something still needs it, and in
    kiln's binary the stubs define every function it calls. Every other
    target links the library as usual. Returns the scripts' paths.
    """
    defines = []
    scripts = []
    for name in ctx.attr.lazy:
        if name not in ctx.attr.libs:
            fail("system_libs: lazy names %s, which is not in libs" % name)
        modules, _ = _split_spec(ctx.attr.libs[name])
        lib, path, soname = _shared_lib(ctx, name, modules[0])
        defines.append('#define KILN_SONAME_%s "%s"' % (name.upper(), soname))
        script = "static/lib%s.so" % lib
        ctx.file(script, "/* Generated by system_libs.bzl (lazy: %s). */\nINPUT(AS_NEEDED(%s))\n" % (name, path))
        scripts.append(script)
    ctx.file("lazy_sonames.h", "\n".join(["// Generated by system_libs.bzl."] + defines) + "\n")
    return scripts

def _lazy_sonames_target():
    return "\n".join([
        "cc_library(",
        '    name = "lazy_sonames",',
        '    hdrs = ["lazy_sonames.h"],',
        '    includes = ["."],',
        ")",
        "",
    ])

def _system_libs_impl(ctx):
    lines = [
        'load(":static_link.bzl", "kiln_static_link")',
        "",
        'package(default_visibility = ["//visibility:public"])',
        "",
    ]
    for name, spec in ctx.attr.libs.items():
        modules, extra = _split_spec(spec)
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
    lines.append(_static_link(ctx, _lazy_libs(ctx)))
    lines.append(_lazy_sonames_target())
    ctx.symlink(ctx.attr._static_link_bzl, "static_link.bzl")
    ctx.file("WORKSPACE", 'workspace(name = "%s")\n' % ctx.name)
    ctx.file("BUILD.bazel", "\n".join(lines))

system_libs = repository_rule(
    implementation = _system_libs_impl,
    attrs = {
        # target name -> space-separated pkg-config modules, plus raw "-l" flags.
        "libs": attr.string_dict(mandatory = True),
        # Names in libs that :static_link links from static archives, with
        # everything they need (pkg-config --static) but keep_shared.
        "static": attr.string_list(),
        # Libraries (-l names) that stay shared under :static_link too.
        "keep_shared": attr.string_list(),
        # Names in libs that kiln's binary binds lazily (base/lazy): linked
        # as needed under :static_link, their files in lazy_sonames.h.
        "lazy": attr.string_list(),
        "_static_link_bzl": attr.label(default = Label("//third_party:static_link.bzl")),
    },
    local = True,
)
