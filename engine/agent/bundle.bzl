"""agent_bundle: the kiln agent as a self-contained directory tree."""

def _agent_bundle_impl(ctx):
    out = ctx.actions.declare_directory(ctx.label.name)
    ctx.actions.run(
        inputs = [ctx.executable.binary],
        outputs = [out],
        executable = ctx.executable._script,
        arguments = [ctx.executable.binary.path, out.path],
        mnemonic = "AgentBundle",
        progress_message = "Bundling the kiln agent with its libraries",
        # ldd reads the host's libraries.
        execution_requirements = {"no-remote": "1"},
    )
    return [DefaultInfo(files = depset([out]), runfiles = ctx.runfiles([out]))]

agent_bundle = rule(
    implementation = _agent_bundle_impl,
    doc = "kiln/agent/{bin/kiln-agent, lib/*.so*, lib/ld-linux-x86-64.so.2}",
    attrs = {
        "binary": attr.label(executable = True, cfg = "target", mandatory = True),
        "_script": attr.label(
            default = ":make_bundle.sh",
            executable = True,
            cfg = "exec",
            allow_single_file = True,
        ),
    },
)
