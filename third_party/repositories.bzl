"""The repositories kiln's build needs, for kiln's own WORKSPACE.

(kiln_path also lets a workspace load this from kiln's sources declared as
@kiln; that is neither supported nor tested. Other workspaces use an
installed tree's share/kiln/bazel and its own kiln_repositories(),
docs/embedding.md.)

Bazel 4.2.3 (Debian's bazel-bootstrap) would download rules_cc, rules_java
and the coverage tools; kiln carries them, so builds stay offline. The
system libraries come from Debian's -dev packages through pkg-config.
"""

load("//third_party:system_libs.bzl", "system_libs")

KILN_SYSTEM_LIBS = {
    "absl": "absl_status absl_statusor absl_strings absl_str_format absl_synchronization absl_time absl_flat_hash_map absl_flat_hash_set absl_flags absl_flags_parse",
    "protobuf": "protobuf",
    "grpc": "grpc++ grpc -lgrpc++_reflection",
    "yaml_cpp": "yaml-cpp",
    "re2": "re2",
    "libarchive": "libarchive",
    "gtest": "gtest gmock -lpthread",
    "gtest_main": "gtest_main gmock -lpthread",
    "openssl": "openssl",
    "sqlite": "sqlite3",
    "curl": "libcurl",
    "zstd": "libzstd",
    "libdeflate": "libdeflate",
    "nlohmann_json": "nlohmann_json",
    "libgit2": "libgit2",
    "cpp_httplib": "cpp-httplib",
    # OpenSSL's two libraries on their own, for base/lazy (kiln's code
    # depends on "openssl" above).
    "libssl": "libssl",
    "libcrypto": "libcrypto",
}

# Linked statically into kiln's own binary (//:kiln, through @sys//:static_link):
# the C++ libraries whose shared objects cost most at process start-up (56
# Abseil libraries, gRPC, protobuf, RE2, yaml-cpp) and the C ones only kiln
# loads (SQLite, libarchive, libdeflate). Static libarchive links only the
# formats kiln uses (tar, raw, gzip), so libxml2 and ICU (its xar support)
# are no longer loaded. No shared library the binary still loads may need
# one of these (//third_party:kiln_binary_link_test).
KILN_STATIC_LIBS = [
    "absl",
    "protobuf",
    "grpc",
    "re2",
    "yaml_cpp",
    "sqlite",
    "libarchive",
    "libdeflate",
]

# Needed by the static ones but kept shared: libcurl, libgit2, libssh2 and
# cpp-httplib stay shared (their own dependencies have no static archives
# here) and load OpenSSL, zlib and zstd themselves, so these stay shared
# too, one copy in the process; libarchive's optional codecs and ACL
# support (not reached by the formats kiln uses: --as-needed drops them).
KILN_KEEP_SHARED = [
    "ssl",
    "crypto",
    "z",
    "zstd",
    "acl",
    "bz2",
    "lz4",
    "lzma",
    "nettle",
    "xml2",
]

# Bound lazily in kiln's own binary (base/lazy): loaded on the first call of
# one of their functions, not at every start. With the libraries they pull in
# (gnutls, Kerberos, LDAP, mbedtls, ssh2, brotli, ...) they were 32 of the
# binary's 44 shared objects and ~8 ms of every `kiln` process's start.
# OpenSSL: Debian builds libssl and libcrypto with BIND_NOW, so loading them
# binds ~4,000 symbols and applies ~19,000 relocations at every start
# (~15 % of a small `kiln render`, bench/README.md B8), while hashing (the
# one thing most verbs need of it) runs on base/sha256's SHA-NI path; TLS,
# HMAC, AES-GCM and random bytes load it on first use, the same shared copy
# libgit2 and libcurl use.
KILN_LAZY_LIBS = [
    "curl",
    "libgit2",
    "cpp_httplib",
    "libssl",
    "libcrypto",
]

def kiln_repositories(kiln_path = "."):
    """Declares @rules_cc, @rules_java, @remote_coverage_tools and @sys.

    Args:
      kiln_path: kiln's source directory, relative to the calling
        workspace's root or absolute ("." in kiln's own WORKSPACE).
    """
    for name in ["rules_cc", "rules_java", "remote_coverage_tools"]:
        native.local_repository(
            name = name,
            path = "%s/third_party/bazel/%s" % (kiln_path, name),
        )
    system_libs(
        name = "sys",
        libs = KILN_SYSTEM_LIBS,
        static = KILN_STATIC_LIBS,
        keep_shared = KILN_KEEP_SHARED,
        lazy = KILN_LAZY_LIBS,
    )
