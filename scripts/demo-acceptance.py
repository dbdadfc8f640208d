#!/usr/bin/env python3
"""Issue 7's first acceptance item, on the README's main command as it is:
`scripts/demo.sh` (release build, default settings) must show, on its
dashboard, devices, live anomalies and model v1 running on devices within
3 minutes, and later v2; the run must end with loss 0 and a verdict for
every record.

    scripts/demo-acceptance.py [SECONDS]    (default 270: v1 lands at ~100 s, v2 at ~225 s)

Detection (issue 16), event-wise from model v1 on, as the demo's summary
counts it: a run of 600 s or more must reach precision >= 0.85 at recall
>= 0.90 with at most 1 % of normal records flagged (the acceptance
figure, `scripts/demo-acceptance.py 600`); a shorter run (CI's 270 s),
most of it under the first model, is held to a looser floor (0.70 /
0.75 / 1 %; measured 0.856 / 0.855 / 0.30 %, and the margin leaves room
for run-to-run timing) that still fails on the detector the demo had
before alarms (precision 0.39). training/EVALUATION.md, "Alarms", has the offline
replay behind both.

The rest of the run is held to what `demo/tests/demo.rs`'s two-minute
test checks on its shortened schedule (CI runs this script instead of that
test, `.ci/run`): the API refuses a request without the token and the
login link sets it; the scorer and every edge agent left v1 behind; every
edge verdict published is audited and the Fleet header counts the edge
agents; incidents were opened (far fewer than anomalous verdicts) and
listed; no command result came back refused or failed.

Polls the dashboard's JSON API (what the page draws) once a second while
the demo runs, prints when each thing first showed, and exits 1 naming what
did not happen in time. Standard library only.
"""

import json
import secrets
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

WITHIN = 180.0
# Most the command may take to build and start serving (a cold release
# build), and to stop after its duration (drain and flush).
BUILD_LIMIT = 45 * 60
STOP_LIMIT = 5 * 60


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# The run's API token (`--api-token`): the dashboard's API needs it.
TOKEN = secrets.token_urlsafe(24)


def get(port, path):
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as r:
            return json.load(r)
    except (OSError, ValueError):
        return None


def status(port, path):
    """The HTTP status of GET path without the token (redirects not followed)."""
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return None


def check_run(summary, seen):
    """What the two-minute test of demo/tests/demo.rs checks beyond loss and
    detection; returns the failures."""
    failures = []
    if seen["auth"] != (401, 303):
        failures.append(f"without the token / the login link answered {seen['auth']} (want 401, 303)")
    pushed = [p["version"] for p in summary["models"]["pushed"]]
    if len(pushed) < 2 or pushed != sorted(set(pushed)):
        failures.append(f"model versions pushed {pushed}: want two or more, rising")
    if summary["models"].get("scorer_version", 0) < 2:
        failures.append("the scorer did not leave v1 behind")
    edge = summary["devices"]["edge"]
    by_version = summary["models"]["edge_devices_by_version"]
    # "none": a device that reported no model (counted as not past v1).
    past_v1 = sum(n for v, n in by_version.items() if v != "none" and int(v.lstrip("v")) >= 2)
    if past_v1 != edge:
        failures.append(f"edge devices on v2 or later {past_v1} of {edge}")
    if summary["edge"]["verdicts"] <= 0:
        failures.append("no edge verdicts")
    audit = summary["edge_audit"]
    if audit["published"] <= 0 or audit["audited"] != audit["published"]:
        failures.append(f"edge verdicts audited {audit['audited']} of {audit['published']}")
    if seen["edge_counted"] != edge:
        failures.append(f"the Fleet header counted {seen['edge_counted']} edge devices of {edge}")
    incidents = summary["incidents"]
    if not 0 < incidents["opened"] < incidents["anomalous_verdicts"]:
        failures.append(
            f"incidents opened {incidents['opened']} for {incidents['anomalous_verdicts']} anomalous verdicts"
        )
    if seen["incidents"] <= 0:
        failures.append("the dashboard never listed an incident")
    webhooks = incidents["webhook_deliveries"]
    if webhooks["requests"] < webhooks["distinct"]:
        failures.append(f"webhook requests {webhooks['requests']} < distinct {webhooks['distinct']}")
    results = incidents["results"]
    if incidents["actions"].get("command/sent", 0) >= 2 and results.get("ok", 0) < 1:
        failures.append("no command result came back ok")
    for outcome in ("refused", "failed"):
        if results.get(outcome, 0):
            failures.append(f"command results {outcome}: {results[outcome]}")
    return failures


def main():
    seconds = int(sys.argv[1]) if len(sys.argv) > 1 else 270
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    port = free_port()
    out = tempfile.mkdtemp(prefix="vigil-demo-acceptance.")
    summary_path = os.path.join(out, "summary.json")
    log_path = os.path.join(out, "demo.log")
    cmd = [
        os.path.join(root, "scripts", "demo.sh"),
        "--duration", f"{seconds}s",
        "--http-addr", f"127.0.0.1:{port}",
        # One argument: a token may start with "-", which a separate
        # argument would pass as a flag.
        f"--api-token={TOKEN}",
        "--summary", summary_path,
    ]
    print("running:", " ".join(cmd), f"(log: {log_path})", flush=True)
    log = open(log_path, "w")
    # The clock starts when the dashboard first answers: before that the
    # command is still building (the README's command builds, then runs).
    demo = subprocess.Popen(
        cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
    )
    launched = time.monotonic()
    started = None
    first = {}
    overdue = None
    seen = {"auth": None, "edge_counted": 0, "incidents": 0}

    def saw(what):
        if what not in first:
            first[what] = time.monotonic() - started
            print(f"  {first[what]:6.1f} s  dashboard shows {what}", flush=True)

    # Its own process group, so a hung run can be killed whole; Ctrl-C or
    # SIGTERM here is passed on (the demo then drains and stops cleanly).
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        while demo.poll() is None:
            time.sleep(1)
            limit = BUILD_LIMIT if started is None else seconds + STOP_LIMIT
            if time.monotonic() - (started or launched) > limit:
                overdue = "never served its dashboard" if started is None else "did not stop"
                os.killpg(demo.pid, signal.SIGKILL)
                demo.wait()
                break
            overview = get(port, "/api/overview")
            if overview is None:
                continue
            if started is None:
                started = time.monotonic()
                print("dashboard answers", flush=True)
                seen["auth"] = (status(port, "/api/overview"), status(port, f"/login?token={TOKEN}"))
            edge = (overview.get("counts") or {}).get("edge") or 0
            seen["edge_counted"] = max(seen["edge_counted"], edge)
            listed = (get(port, "/api/incidents?limit=50") or {}).get("items") or []
            seen["incidents"] = max(seen["incidents"], len(listed))
            if overview.get("devices"):
                saw("devices")
            if get(port, "/api/anomalies"):
                saw("anomalies")
            for row in get(port, "/api/models") or []:
                rollout = row.get("rollout") or {}
                running = (rollout.get("cloud_devices") or 0) + (rollout.get("edge_devices") or 0)
                if row.get("version") in (1, 2) and running > 0:
                    saw(f"v{row['version']} running")
    except KeyboardInterrupt:
        os.killpg(demo.pid, signal.SIGINT)
        demo.wait()
        raise
    log.close()

    failures = []
    if overdue:
        failures.append(f"scripts/demo.sh {overdue} in time; killed")
    elif demo.returncode != 0:
        failures.append(f"scripts/demo.sh exited with {demo.returncode}")
    if started is None:
        failures.append("the dashboard never answered")
    for what in ("devices", "anomalies", "v1 running"):
        if first.get(what, float("inf")) > WITHIN:
            failures.append(f"{what} not shown within {WITHIN:.0f} s of the dashboard answering")
    if "v2 running" not in first:
        failures.append("v2 never shown running")
    elif first["v2 running"] < first.get("v1 running", 0):
        failures.append("v2 shown before v1")
    try:
        with open(summary_path) as f:
            summary = json.load(f)
        detection = summary["detection"]
        print(
            f"summary: records {summary['records']}, verdicts {summary['verdicts']}, "
            f"loss {summary['loss']}, precision {detection['precision']}, "
            f"recall {detection['recall']}, "
            f"versions {[p['version'] for p in summary['models']['pushed']]}"
        )
        if summary["loss"] != 0 or summary["verdicts"] != summary["records"]:
            failures.append("records without a verdict")
        floor = (0.85, 0.90, 0.01) if seconds >= 600 else (0.70, 0.75, 0.01)
        precision = detection.get("precision") or 0.0
        recall = detection.get("recall") or 0.0
        flagged = detection.get("normal_flagged", 1.0)
        print(
            f"detection: precision {precision:.3f} (>= {floor[0]}), recall {recall:.3f} "
            f"(>= {floor[1]}), normal records flagged {flagged:.4f} (<= {floor[2]})"
        )
        if precision < floor[0] or recall < floor[1] or flagged > floor[2]:
            failures.append("detection below its floor")
        incidents = summary["incidents"]
        print(
            f"edge: {summary['devices']['edge']} devices, {summary['edge_audit']['audited']} of "
            f"{summary['edge_audit']['published']} verdicts audited; incidents opened "
            f"{incidents['opened']} for {incidents['anomalous_verdicts']} anomalous verdicts"
        )
        failures += check_run(summary, seen)
    except (OSError, ValueError, KeyError) as e:
        failures.append(f"no usable summary at {summary_path}: {e}")
    if failures:
        print("FAILED:", "; ".join(failures))
        with open(log_path) as f:
            print("".join(f.readlines()[-40:]))
        sys.exit(1)
    print("demo acceptance: passed")


if __name__ == "__main__":
    main()
