#!/usr/bin/env python3
"""The floor of `down` for xtask/bench/down.sh: the very daemons the tool runs, started by hand
and stopped by hand, all at once.

    hand_stack.py record STATE_DIR SNAPSHOT   # while the tool's stack runs: each daemon's
                                             # argv, environment, cwd and account
    hand_stack.py stop SNAPSHOT               # start them by hand, wait until each listens,
                                             # then stop them all at once; prints the seconds

`stop` starts each recorded program as it ran under the supervisor (same argv, environment,
working directory and account, each in a process group of its own, output to a file beside
the snapshot, one per daemon), waits until every one listens on its port and gives the apps a moment to open
their connections, then sends every group its stop signal at the same instant (the unit
table's: SIGINT for Postgres and PgBouncer, SIGQUIT for nginx, SIGTERM for the rest) and waits
for every one to be reaped. The time from the first signal to the last exit is printed, in
seconds. Not part of the tool: only xtask/bench/down.sh runs it.
"""

import json
import os
import random
import signal
import subprocess
import sys
import time

# The unit table's stop signals (xtask/src/stack/*: `stop_signal`); SIGTERM for the others.
STOP_SIGNALS = {
    "postgres": signal.SIGINT,
    "pgbouncer": signal.SIGINT,
    "nginx": signal.SIGQUIT,
}
TCP_TABLES = ["/proc/net/tcp", "/proc/net/tcp6"]
LISTEN = "0A"


def record(state_dir, snapshot):
    with open(os.path.join(state_dir, "run", "state.json")) as f:
        state = json.load(f)
    daemons = []
    for unit in state["units"]:
        if not unit.get("pid"):
            continue
        pid = unit["pid"]["pid"]
        proc = f"/proc/{pid}"
        with open(f"{proc}/cmdline", "rb") as f:
            argv = [a.decode() for a in f.read().split(b"\0") if a]
        if unit["name"] == "valkey":
            # Valkey writes its title over its arguments ("valkey-server 127.0.0.1:PORT");
            # the tool starts it with its rendered config file alone.
            argv = [argv[0].split()[0], os.path.join(state_dir, "valkey", "valkey.conf")]
        with open(f"{proc}/environ", "rb") as f:
            env = dict(
                e.decode().split("=", 1) for e in f.read().split(b"\0") if b"=" in e
            )
        info = os.stat(proc)
        daemons.append(
            {
                "name": unit["name"],
                "argv": argv,
                "env": env,
                "cwd": os.readlink(f"{proc}/cwd"),
                "uid": info.st_uid,
                "gid": info.st_gid,
                "port": unit["port"],
            }
        )
    # Directories the tool creates at `up` and deletes at `down` (the sockets' dir in /tmp):
    # every absolute directory an argument names that exists now, made again before `stop`.
    dirs = sorted(
        {
            (path, os.stat(path).st_uid, os.stat(path).st_gid)
            for d in daemons
            for arg in d["argv"]
            for path in [arg.split("=", 1)[-1]]
            if path.startswith("/tmp/") and os.path.isdir(path)
        }
    )
    with open(snapshot, "w") as f:
        json.dump({"daemons": daemons, "dirs": dirs}, f, indent=1)


def listening(port):
    for path in TCP_TABLES:
        with open(path) as f:
            for line in f.readlines()[1:]:
                fields = line.split()
                if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == LISTEN:
                    return True
    return False


def stop(snapshot):
    with open(snapshot) as f:
        recorded = json.load(f)
    for path, uid, gid in recorded["dirs"]:
        os.makedirs(path, exist_ok=True)
        os.chown(path, uid, gid)
    children = []
    try:
        for d in recorded["daemons"]:
            account = {} if d["uid"] == os.getuid() else {
                "user": d["uid"], "group": d["gid"], "extra_groups": []}
            # Its own output file, its account's (nginx reopens /dev/stderr by name).
            out = open(f"{snapshot}.{d['name']}.out", "ab")
            os.fchown(out.fileno(), d["uid"], d["gid"])
            child = subprocess.Popen(
                d["argv"], env=d["env"], cwd=d["cwd"], stdin=subprocess.DEVNULL,
                stdout=out, stderr=out, start_new_session=True, **account)
            out.close()
            children.append((d, child))
        deadline = time.monotonic() + 60
        while not all(listening(d["port"]) for d, _ in children):
            for d, child in children:
                if child.poll() is not None:
                    sys.exit(f"hand_stack.py: {d['name']} exited ({child.returncode}); see {snapshot}.{d['name']}.out")
            if time.monotonic() > deadline:
                sys.exit("hand_stack.py: not every daemon listened within 60 s")
            time.sleep(0.02)
        # The apps open their pools and sessions once up, as under the supervisor; the random
        # part (down.sh's tool rounds have the same) samples Garage's stop evenly: its peering
        # loop sleeps 1 s between passes and only then sees that it must exit.
        time.sleep(2 + random.random())
        began = time.monotonic()
        for d, child in children:
            os.killpg(child.pid, STOP_SIGNALS.get(d["name"], signal.SIGTERM))
        for _, child in children:
            child.wait()
        print(f"{time.monotonic() - began:.3f}")
    finally:
        for _, child in children:
            if child.poll() is None:
                os.killpg(child.pid, signal.SIGKILL)
                child.wait()


if __name__ == "__main__":
    if sys.argv[1:2] == ["record"] and len(sys.argv) == 4:
        record(sys.argv[2], sys.argv[3])
    elif sys.argv[1:2] == ["stop"] and len(sys.argv) == 3:
        stop(sys.argv[2])
    else:
        sys.exit(__doc__)
