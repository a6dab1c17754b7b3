"""kiln_fuzz_target: one fuzz harness, three ways to build it.

  NAME_fuzzer     libFuzzer binary (tags=manual), build with --config=fuzz.
  NAME_fuzz_test  regression test under the normal toolchain: replays every
                  file of `corpus` through the harness.
The harness defines LLVMFuzzerTestOneInput and must not call exit/abort on
bad input.
"""

def kiln_fuzz_target(name, srcs, deps = [], corpus = []):
    native.cc_library(
        name = name + "_fuzz_lib",
        srcs = srcs,
        deps = deps,
        testonly = True,
        alwayslink = True,
    )
    native.cc_binary(
        name = name + "_fuzzer",
        deps = [":" + name + "_fuzz_lib"],
        linkopts = ["-fsanitize=fuzzer"],
        testonly = True,
        tags = ["manual"],
    )
    native.cc_test(
        name = name + "_fuzz_test",
        size = "small",
        deps = [
            ":" + name + "_fuzz_lib",
            "//tests/fuzz:replay_main",
        ],
        data = corpus,
        args = ["$(location %s)" % c for c in corpus],
    )
