"""Who may depend on the engine's stores directly (docs/architecture.md).

The front ends, //engine/cli and //engine/service, are deliberately not
listed: they reach the run store, the action cache, the Store and the
content and artifact stores only through kiln::Engine (//engine:engine).
scripts/check-layers' `front_ends` rule checks the same for their direct
dependencies target by target.
"""

# The engine core: the facade's package and every internal package.
ENGINE_CORE = [
    "//engine:__pkg__",
    "//engine/archive:__pkg__",
    "//engine/cas:__pkg__",
    "//engine/exec:__pkg__",
    "//engine/gc:__pkg__",
    "//engine/keys:__pkg__",
    "//engine/kinds:__subpackages__",
    "//engine/oci:__subpackages__",
    "//engine/pipeline:__subpackages__",
    "//engine/deploy:__pkg__",
    "//engine/render:__pkg__",
    "//engine/run:__pkg__",
    "//engine/scheduler:__pkg__",
    "//engine/store:__pkg__",
    "//engine/yaml:__pkg__",
]

# The stores: the core, the service's test double (testonly) and the test
# and bench packages that inspect a store.
STORE_VISIBILITY = ENGINE_CORE + [
    "//engine/service/testing:__pkg__",
    "//bench/service:__pkg__",
    "//bench/storage:__pkg__",
    "//tests/agent:__pkg__",
    "//tests/archive:__pkg__",
    "//tests/engine:__pkg__",
    "//tests/kube:__pkg__",
    "//tests/state:__pkg__",
    "//tests/store:__pkg__",
]
