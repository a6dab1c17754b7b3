"""kiln_install_tree: the library as an install tree (a tar), from Bazel.

The tree (docs/embedding.md) holds:
  bin/kiln
  libexec/kiln/kiln-sandbox-init
  include/kiln/...             api/kiln.h and every header it reaches in
                               this workspace; generated protos as kiln/v1/
  lib/libkiln.a                every static archive of this workspace the
                               library links, merged
  lib/libkiln.so.MAJOR.MINOR   the same objects as one shared library
                               (SONAME libkiln.so.MAJOR.MINOR), libkiln.so
  lib/pkgconfig/kiln.pc        relocatable (${pcfiledir})
  lib/cmake/kiln/kilnConfig.cmake, kilnConfigVersion.cmake
                               kiln::kiln (shared), kiln::kiln_static
  share/kiln/bazel/            a Bazel repository (local_repository) with
                               @kiln//:kiln over the prebuilt library;
                               include, lib and libexec link to the
                               tree's own (relative links: relocatable)
The system libraries (Debian's -dev packages, @sys) stay system libraries:
their link flags, in link order, go into kiln.pc and the CMake targets.
"""

def _dedup_keep_last(items):
    seen = {}
    out = []
    for x in reversed(items):
        if x not in seen:
            seen[x] = True
            out.append(x)
    return reversed(out)

def _starlark_list(items, indent):
    """A list of strings as BUILD-file text, one item a line."""
    if not items:
        return "[]"
    pad = " " * (indent + 4)
    return "[\n" + "".join([pad + repr(x) + ",\n" for x in items]) + " " * indent + "]"

def _impl(ctx):
    cc = ctx.attr.lib[CcInfo]
    toolchain = ctx.attr._cc_toolchain[cc_common.CcToolchainInfo]

    headers = []
    for h in cc.compilation_context.headers.to_list():
        if h.owner == None or h.owner.workspace_name != "":
            continue
        dest = h.short_path
        if dest.startswith("proto/"):
            dest = dest[len("proto/"):]
        headers.append((h, dest))

    archives = []
    flags = []
    for li in cc.linking_context.linker_inputs.to_list():
        if li.owner.workspace_name == "":
            for lib in li.libraries:
                a = lib.pic_static_library or lib.static_library
                if a != None:
                    archives.append(a)
        else:
            flags.extend(li.user_link_flags)
    # The system libraries are linked whole (no --as-needed scopes: a
    # deduplicated flag list cannot keep push/pop pairs balanced).
    flags = [f for f in _dedup_keep_last(flags) if not (
        f.startswith("-Wl,--push-state") or f.startswith("-Wl,--pop-state"))]
    defines = [d for d in cc.compilation_context.defines.to_list()]

    major, minor, _ = ctx.attr.version.split(".")
    soname = "libkiln.so.%s.%s" % (major, minor)

    manifest = ctx.actions.declare_file(ctx.label.name + ".headers")
    ctx.actions.write(manifest, "".join(["%s %s\n" % (h.path, d) for h, d in headers]))
    mri = ctx.actions.declare_file(ctx.label.name + ".mri")
    ctx.actions.write(mri, "CREATE libkiln.a\n" +
                           "".join(["ADDLIB %s\n" % a.path for a in archives]) +
                           "SAVE\nEND\n")

    flag_text = " ".join(flags)
    pc = ctx.actions.declare_file(ctx.label.name + ".pc")
    ctx.actions.write(pc, """prefix=${pcfiledir}/../..
libdir=${prefix}/lib
includedir=${prefix}/include
# For programs outside PREFIX/bin that link libkiln.a: export it as
# KILN_SANDBOX_INIT (libkiln.so and PREFIX/bin find it themselves).
sandbox_init=${prefix}/libexec/kiln/kiln-sandbox-init

Name: kiln
Description: a declarative build and delivery engine (the C++ library)
Version: %s
Cflags: -std=c++17 -I${includedir}/kiln %s
Libs: -L${libdir} -Wl,-rpath,${libdir} -lkiln %s
""" % (ctx.attr.version, " ".join(["-D" + d for d in defines]), flag_text))

    cmake_list = ";".join(flags)
    config = ctx.actions.declare_file(ctx.label.name + "Config.cmake")
    ctx.actions.write(config, """# kiln's CMake package (find_package(kiln)): kiln::kiln links the shared
# library, kiln::kiln_static the static one; both carry the include
# directory, C++17 and the system libraries kiln needs.
get_filename_component(_kiln_prefix "${CMAKE_CURRENT_LIST_DIR}/../../.." ABSOLUTE)
set(kiln_VERSION "%s")
set(kiln_INCLUDE_DIRS "${_kiln_prefix}/include/kiln")
# For programs outside PREFIX/bin that link kiln::kiln_static: export it as
# KILN_SANDBOX_INIT (kiln::kiln and PREFIX/bin find it themselves).
set(kiln_SANDBOX_INIT "${_kiln_prefix}/libexec/kiln/kiln-sandbox-init")
foreach(_kiln_kind IN ITEMS shared static)
  if(_kiln_kind STREQUAL "shared")
    set(_kiln_target kiln::kiln)
    set(_kiln_file "${_kiln_prefix}/lib/%s")
  else()
    set(_kiln_target kiln::kiln_static)
    set(_kiln_file "${_kiln_prefix}/lib/libkiln.a")
  endif()
  if(NOT TARGET ${_kiln_target})
    string(TOUPPER ${_kiln_kind} _kiln_type)
    add_library(${_kiln_target} ${_kiln_type} IMPORTED)
    set_target_properties(${_kiln_target} PROPERTIES
      IMPORTED_LOCATION "${_kiln_file}"
      INTERFACE_INCLUDE_DIRECTORIES "${kiln_INCLUDE_DIRS}"
      INTERFACE_COMPILE_FEATURES cxx_std_17
      INTERFACE_COMPILE_DEFINITIONS "%s"
      INTERFACE_LINK_LIBRARIES "%s")
    if(_kiln_kind STREQUAL "shared")
      set_target_properties(${_kiln_target} PROPERTIES IMPORTED_SONAME "%s")
    endif()
  endif()
endforeach()
unset(_kiln_target)
unset(_kiln_file)
unset(_kiln_type)
unset(_kiln_kind)
""" % (ctx.attr.version, soname, ";".join(defines), cmake_list, soname))

    config_version = ctx.actions.declare_file(ctx.label.name + "ConfigVersion.cmake")
    ctx.actions.write(config_version, """# Before 1.0 only the same MAJOR.MINOR is compatible (docs/embedding.md).
set(PACKAGE_VERSION "%s")
if(PACKAGE_FIND_VERSION VERSION_GREATER PACKAGE_VERSION)
  set(PACKAGE_VERSION_COMPATIBLE FALSE)
elseif(NOT PACKAGE_FIND_VERSION_MAJOR STREQUAL "%s" OR
       NOT PACKAGE_FIND_VERSION_MINOR STREQUAL "%s")
  set(PACKAGE_VERSION_COMPATIBLE FALSE)
else()
  set(PACKAGE_VERSION_COMPATIBLE TRUE)
  if(PACKAGE_FIND_VERSION STREQUAL PACKAGE_VERSION)
    set(PACKAGE_VERSION_EXACT TRUE)
  endif()
endif()
""" % (ctx.attr.version, major, minor))

    bazel_workspace = ctx.actions.declare_file(ctx.label.name + ".WORKSPACE")
    ctx.actions.write(bazel_workspace, """# kiln installed as a Bazel repository (docs/embedding.md):
#   local_repository(name = "kiln", path = "PREFIX/share/kiln/bazel")
workspace(name = "kiln")
""")
    bazel_build = ctx.actions.declare_file(ctx.label.name + ".BUILD")
    ctx.actions.write(bazel_build, """# @kiln//:kiln: the installed kiln library for Bazel workspaces
# (docs/embedding.md). Depend on it from a cc_binary or cc_test:
#   deps = ["@kiln//:kiln"]
# A static link (cc_binary's default) takes lib/libkiln.a, a dynamic one
# (linkstatic = False, cc_test's default) lib/%s. The sandbox init
# travels in the program's runfiles, where the library finds it when the
# repository is named `kiln`. The system libraries are link flags, the same
# as kiln.pc's.
package(default_visibility = ["//visibility:private"])

cc_import(
    name = "libkiln",
    shared_library = "lib/%s",
    static_library = "lib/libkiln.a",
)

cc_library(
    name = "kiln",
    hdrs = glob(["include/kiln/**/*.h"], allow_empty = False),
    data = ["libexec/kiln/kiln-sandbox-init"],
    defines = %s,
    linkopts = %s,
    strip_include_prefix = "include/kiln",
    visibility = ["//visibility:public"],
    deps = [":libkiln"],
)
""" % (soname, soname, _starlark_list(defines, 4), _starlark_list(flags, 4)))

    out = ctx.actions.declare_file(ctx.label.name + ".tar")
    ctx.actions.run_shell(
        outputs = [out],
        inputs = [h for h, _ in headers] + archives + [
            manifest,
            mri,
            pc,
            config,
            config_version,
            bazel_workspace,
            bazel_build,
            ctx.file.bazel_repositories,
            ctx.file.binary,
            ctx.file.sandbox_init,
        ],
        tools = toolchain.all_files,
        command = """set -euo pipefail
exec_root=$PWD
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/bin" "$stage/libexec/kiln" "$stage/include/kiln" "$stage/lib/pkgconfig" "$stage/lib/cmake/kiln"
# Every header of the workspace the library reaches, laid out as installed;
# then only those api/kiln.h actually includes (the compiler says which)
# are installed: the rest stays internal.
all=$(mktemp -d)
trap 'rm -rf "$stage" "$all"' EXIT
while read -r src dest; do
  mkdir -p "$all/$(dirname "$dest")"
  cp "$src" "$all/$dest"
done < {manifest}
{cxx} -x c++ -std=c++17 {defines} -I"$all" -M -MT deps "$all/api/kiln.h" > "$all/.deps"
tr ' \\\\' '\\n\\n' < "$all/.deps" | grep "^$all/" | sort -u | while read -r h; do
  rel=${{h#$all/}}
  mkdir -p "$stage/include/kiln/$(dirname "$rel")"
  cp "$h" "$stage/include/kiln/$rel"
done
sed "s#ADDLIB #ADDLIB $exec_root/#" {mri} > "$stage/lib/kiln.mri"
(cd "$stage/lib" && {ar} -M < kiln.mri && rm kiln.mri)
{cxx} -shared -o "$stage/lib/{soname}" -Wl,-soname,{soname} \
  -Wl,--whole-archive "$stage/lib/libkiln.a" -Wl,--no-whole-archive {flags}
ln -s {soname} "$stage/lib/libkiln.so"
cp {binary} "$stage/bin/kiln"
cp {init} "$stage/libexec/kiln/kiln-sandbox-init"
cp {pc} "$stage/lib/pkgconfig/kiln.pc"
cp {config} "$stage/lib/cmake/kiln/kilnConfig.cmake"
cp {config_version} "$stage/lib/cmake/kiln/kilnConfigVersion.cmake"
mkdir -p "$stage/share/kiln/bazel"
cp {bazel_workspace} "$stage/share/kiln/bazel/WORKSPACE"
cp {bazel_build} "$stage/share/kiln/bazel/BUILD.bazel"
cp {bazel_repositories} "$stage/share/kiln/bazel/repositories.bzl"
(cd "$stage/share/kiln/bazel" && chmod 644 WORKSPACE BUILD.bazel repositories.bzl)
for d in include lib libexec; do ln -s "../../../$d" "$stage/share/kiln/bazel/$d"; done
chmod -R u+w,go-w "$stage"
tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner \
  -cf {out} -C "$stage" .
""".format(
            manifest = manifest.path,
            defines = " ".join(["-D" + d for d in defines]),
            mri = mri.path,
            ar = toolchain.ar_executable,
            cxx = toolchain.compiler_executable,
            soname = soname,
            flags = flag_text,
            binary = ctx.file.binary.path,
            init = ctx.file.sandbox_init.path,
            pc = pc.path,
            config = config.path,
            config_version = config_version.path,
            bazel_workspace = bazel_workspace.path,
            bazel_build = bazel_build.path,
            bazel_repositories = ctx.file.bazel_repositories.path,
            out = out.path,
        ),
        use_default_shell_env = True,
        mnemonic = "KilnInstallTree",
        progress_message = "Packing the kiln install tree",
    )
    return [DefaultInfo(files = depset([out]), runfiles = ctx.runfiles(files = [out]))]

kiln_install_tree = rule(
    implementation = _impl,
    attrs = {
        "lib": attr.label(mandatory = True, providers = [CcInfo]),
        "binary": attr.label(mandatory = True, allow_single_file = True),
        "sandbox_init": attr.label(mandatory = True, allow_single_file = True),
        "version": attr.string(mandatory = True),
        # Installed as share/kiln/bazel/repositories.bzl.
        "bazel_repositories": attr.label(
            default = Label("//install:bazel/repositories.bzl"),
            allow_single_file = True,
        ),
        "_cc_toolchain": attr.label(
            default = Label("@bazel_tools//tools/cpp:current_cc_toolchain"),
        ),
    },
)
