"""Drives Debian's python3-kubernetes against the API server double.

Run by python_client_test.cc, which controls the double and reads what this
prints (one line per step, flushed).
"""
import sys

from kubernetes import client, config, watch


def say(*parts):
    print(*parts, flush=True)


def main():
    config.load_kube_config(config_file=sys.argv[1])
    v1 = client.CoreV1Api()
    pods = v1.list_namespaced_pod("default", label_selector="app=demo")
    say("LIST", ",".join(sorted(p.metadata.name for p in pods.items)))
    say("PHASE", pods.items[0].status.phase)
    log = v1.read_namespaced_pod_log("web", "default", container="main")
    say("LOG", log.replace("\n", "|"))
    stamped = v1.read_namespaced_pod_log("web", "default", timestamps=True,
                                         tail_lines=1)
    say("STAMPED", stamped.strip())

    # Follow the log until the double ends it.
    resp = v1.read_namespaced_pod_log("web", "default", follow=True,
                                      _preload_content=False)
    say("FOLLOWING")
    for line in resp.stream():
        for part in line.decode().splitlines():
            say("FOLLOW", part)
    say("FOLLOW-END")

    w = watch.Watch()
    say("WATCHING", pods.metadata.resource_version)
    # No timeout_seconds: with one the client disables its resume after
    # 410 and raises at the first ERROR event.
    try:
        for ev in w.stream(v1.list_namespaced_pod, "default",
                           resource_version=pods.metadata.resource_version):
            say("EVENT", ev["type"], ev["object"].metadata.name,
                ev["object"].metadata.resource_version)
    except client.exceptions.ApiException as e:
        say("APIEXC", e.status, e.reason)
        return 0
    say("WATCH-ENDED")
    return 1


if __name__ == "__main__":
    sys.exit(main())
