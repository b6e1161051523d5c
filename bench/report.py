#!/usr/bin/env python3
"""Assemble bench/append.sh outputs into the results JSON + Markdown and print the table.

usage: report.py OUT_DIR RESULT_JSON RESULT_MD   (settings come from BENCH_* env vars)
"""
import datetime
import json
import os
import platform
import subprocess
import sys

out_dir, json_path, md_path = sys.argv[1:4]
env = os.environ.get
workloads = env("BENCH_WORKLOADS", "per-stream hot").split()
servers = env("BENCH_SERVERS", "null ours reference").split()
repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

NAMES = {
    "ours": "durable-sessions",
    "ours-nojournal": "durable-sessions --journal=false (per-stream fsync)",
    "reference": "@durable-streams/server (file-backed)",
    "null": "null Beast server (204)",
}
WORKLOAD_DESC = {
    "per-stream": "one stream per connection (32 streams)",
    "hot": "all connections append to one hot stream",
}


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def cmd(*args, cwd=None):
    try:
        return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=10).stdout.strip()
    except Exception:
        return ""


def read(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def block_queue(dir_):
    """write_cache / rotational of the block device holding dir_ (best effort)."""
    try:
        st = os.stat(dir_)
        base = f"/sys/dev/block/{os.major(st.st_dev)}:{os.minor(st.st_dev)}"
        for q in (base + "/queue", base + "/../queue"):
            if os.path.isdir(q):
                return {"device": os.path.basename(os.path.realpath(os.path.dirname(q))),
                        "write_cache": read(q + "/write_cache"), "rotational": read(q + "/rotational")}
    except OSError:
        pass
    return None


def cpu_model():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


anomalies = [l for l in (read(os.path.join(out_dir, "anomalies.txt")) or "").splitlines() if l]
ref_pkg = load(os.path.join(repo, "tests/compat/node_modules/@durable-streams/server/package.json")) or {}
fsync = load(os.path.join(out_dir, "fsync.json"))
fsync_append = None
if fsync:
    for r in fsync.get("results", []):
        if r.get("mode") == "append":
            fsync_append = r.get("syncs_per_s")

result = {
    "benchmark": "append",
    "date": os.environ.get("BENCH_DATE") or datetime.date.today().isoformat(),
    "generated_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    "git": {
        "commit": cmd("git", "rev-parse", "HEAD", cwd=repo),
        "dirty": bool(cmd("git", "status", "--porcelain", "--untracked-files=no", cwd=repo)),
    },
    "machine": {
        "ncpu": os.cpu_count(),
        "cpu_model": cpu_model(),
        "kernel": platform.release(),
        "mem_total_kb": next((int(l.split()[1]) for l in open("/proc/meminfo") if l.startswith("MemTotal")), None),
        "data_fs": fsync.get("fs_type") if fsync else None,
        "data_block_device": block_queue(env("BENCH_DATA_FS_DIR", "/tmp")),
        "cpu_busy_before_run": float(read(os.path.join(out_dir, "preflight_busy.txt")) or "nan"),
    },
    "versions": {
        "node": cmd("node", "--version"),
        "reference_server": ref_pkg.get("version"),
    },
    "config": {
        "connections": int(env("BENCH_CONNECTIONS", "32")),
        "event_bytes": int(env("BENCH_EVENT_BYTES", "200")),
        "events_per_request": int(env("BENCH_EVENTS", "1")),
        "warmup_s": float(env("BENCH_WARMUP", "2")),
        "duration_s": float(env("BENCH_DURATION", "10")),
        "loadgen_threads": int(env("BENCH_LOADGEN_THREADS", "1")),
        "quick": env("BENCH_QUICK", "0") == "1",
        "rounds": int(env("BENCH_ROUNDS", "1")),
        "servers": {s: NAMES[s] for s in servers},
    },
    "fsync_ceiling": fsync,
    "workloads": {},
    "anomalies": anomalies,
}


def ratio(a, b):
    if a is None or b is None or not b:
        return None
    return round(a / b, 3)


rounds = int(env("BENCH_ROUNDS", "1"))
other_limit = float(env("BENCH_OTHER_CPU_LIMIT", "0.25"))


def load_run(w, s, rnd):
    r = load(os.path.join(out_dir, f"{w}-{s}-r{rnd}.json"))
    meta = load(os.path.join(out_dir, f"{w}-{s}-r{rnd}.meta.json")) or {}
    if r is None:
        return {"failed": True, "round": rnd, **meta}
    r.update(meta)
    r["round"] = rnd
    # ds_loadgen reports other_task_cores: task CPU time used by neither the server nor the load
    # generator during the window (other programs — a compile running alongside makes the numbers
    # meaningless — plus kernel threads working for the server, e.g. ext4's journal).
    r["other_cpu_cores"] = r.get("other_task_cores")
    return r


for w in workloads:
    entry = {"description": WORKLOAD_DESC[w], "servers": {}, "ratios": {}}
    for s in servers:
        runs = [load_run(w, s, rnd) for rnd in range(1, rounds + 1)]
        ok = sorted((r for r in runs if not r.get("failed")), key=lambda r: r.get("events_per_s") or 0)
        if not ok:
            entry["servers"][s] = runs[-1]
            continue
        chosen = dict(ok[(len(ok) - 1) // 2])  # median (lower middle for an even count)
        chosen["errors_all_rounds"] = sum(r.get("errors", 0) for r in ok)
        if len(runs) > 1:
            chosen["rounds"] = [
                {k: r.get(k) for k in ("round", "failed", "events_per_s", "latency_us", "errors",
                                       "server_cpu_cores", "loadgen_cpu_cores", "other_cpu_cores",
                                       "machine_irq_cores", "machine_steal_cores")
                 if r.get(k) is not None}
                for r in runs
            ]
        other = chosen.get("other_cpu_cores")
        if other is not None and other > other_limit:
            anomalies.append(f"[{w}] {s}: other processes used {other:.2f} cores during the "
                             f"measured window; this row is not trustworthy")
        if chosen["errors_all_rounds"]:
            statuses = {}
            for r in ok:
                for k, v in (r.get("status_counts") or {}).items():
                    statuses[k] = statuses.get(k, 0) + v
            anomalies.append(f"[{w}] {s}: {chosen['errors_all_rounds']} request errors "
                             f"(statuses {statuses}; samples {chosen.get('error_samples')})")
        entry["servers"][s] = chosen
    rps = {s: (v or {}).get("requests_per_s") for s, v in entry["servers"].items()}
    eps = {s: (v or {}).get("events_per_s") for s, v in entry["servers"].items()}
    entry["ratios"] = {
        "ours_over_reference": ratio(eps.get("ours"), eps.get("reference")),
        "ours_over_null": ratio(rps.get("ours"), rps.get("null")),
        "reference_over_null": ratio(rps.get("reference"), rps.get("null")),
        "ours_appends_per_fdatasync_ceiling": ratio(eps.get("ours"), fsync_append),
        "ours_over_ours_nojournal": ratio(eps.get("ours"), eps.get("ours-nojournal")),
    }
    result["workloads"][w] = entry

with open(json_path, "w") as f:
    json.dump(result, f, indent=2)
    f.write("\n")


# ---- Markdown ------------------------------------------------------------------------------------
def fmt_int(v):
    return "—" if v is None else f"{v:,.0f}"


def fmt_ms(us):
    return "—" if us is None else f"{us / 1000:.2f}"


def fmt_x(v):
    return "—" if v is None else f"{v:.2f}×"


def fmt_round(x):
    if x.get("failed"):
        return "failed"
    other = x.get("other_cpu_cores")
    return fmt_int(x.get("events_per_s")) + ("†" if other is not None and other > other_limit else "")


def fmt_f(v, d=2):
    return "—" if v is None else f"{v:.{d}f}"


cfg = result["config"]
lines = []
lines.append(f"# Append benchmark — {result['date']}")
lines.append("")
lines.append(
    f"{cfg['connections']} keep-alive connections, one request in flight each, "
    f"{cfg['events_per_request']} × {cfg['event_bytes']}-byte JSON event per POST, "
    f"{cfg['warmup_s']:g} s warm-up + {cfg['duration_s']:g} s measured per server"
    + (" (QUICK mode)" if cfg["quick"] else "")
    + (f"; {rounds} interleaved rounds, each row is the server's median round (errors: all rounds)"
       if rounds > 1 else "")
    + ". Load generator and server share the machine "
    f"({result['machine']['ncpu']} × {result['machine']['cpu_model']}, kernel {result['machine']['kernel']})."
)
lines.append("")
lines.append(
    f"Commit `{result['git']['commit'][:12]}`{' (dirty tree)' if result['git']['dirty'] else ''}; "
    f"reference `@durable-streams/server` {result['versions']['reference_server']} on node {result['versions']['node']}; "
    f"data dirs on {result['machine']['data_fs']}."
)
for w, entry in result["workloads"].items():
    lines.append("")
    lines.append(f"## Workload `{w}`: {entry['description']}")
    lines.append("")
    multi = rounds > 1
    lines.append("| server | appends/s | " + ("all rounds | " if multi else "")
                 + "p50 ms | p99 ms | p99.9 ms | errors | server CPU | loadgen CPU | other CPU | irq CPU | steal |")
    lines.append("|---|---:|" + ("---|" if multi else "") + "---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for s, r in entry["servers"].items():
        if r.get("failed"):
            lines.append(f"| {NAMES[s]} | failed |" + (" |" if multi else "") + " | | | | | | | | |")
            continue
        lat = r.get("latency_us", {})
        lines.append(
            f"| {NAMES[s]} | {fmt_int(r.get('events_per_s'))} | "
            + (" / ".join(fmt_round(x) for x in r.get("rounds", [])) + " | " if multi else "")
            + f"{fmt_ms(lat.get('p50'))} | {fmt_ms(lat.get('p99'))} | "
            f"{fmt_ms(lat.get('p999'))} | {r.get('errors_all_rounds', r.get('errors'))} | {fmt_f(r.get('server_cpu_cores'))} | "
            f"{fmt_f(r.get('loadgen_cpu_cores'))} | {fmt_f(r.get('other_cpu_cores'))} | "
            f"{fmt_f(r.get('machine_irq_cores'))} | {fmt_f(r.get('machine_steal_cores'))} |"
        )
    ra = entry["ratios"]
    if multi and any("†" in fmt_round(x) for r in entry["servers"].values() for x in r.get("rounds", [])):
        lines.append("")
        lines.append(f"† other processes used more than {other_limit:g} cores during that round's window.")
    lines.append("")
    lines.append(
        f"ours / reference = **{fmt_x(ra['ours_over_reference'])}**, ours / null = **{fmt_x(ra['ours_over_null'])}**"
        f" (reference / null = {fmt_x(ra['reference_over_null'])}; "
        f"ours / single-writer fdatasync rate = {fmt_x(ra['ours_appends_per_fdatasync_ceiling'])})"
    )
    if ra.get("ours_over_ours_nojournal") is not None:
        lines.append("")
        lines.append(f"What the shared journal bought: ours / ours with `--journal=false` = "
                     f"**{fmt_x(ra['ours_over_ours_nojournal'])}**")
lines.append("")
lines.append("## Durability ceiling: raw fdatasync rate of the data filesystem")
lines.append("")
if fsync:
    dev = result["machine"]["data_block_device"] or {}
    lines.append(
        f"One thread, {fsync['write_bytes']}-byte `pwrite` + `fdatasync` per iteration on {fsync['fs_type']}"
        + (f" (device `{dev.get('device')}`, write cache: {dev.get('write_cache')})" if dev else "")
        + "."
    )
    lines.append("")
    lines.append("| mode | fdatasync/s | p50 ms | p99 ms | p99.9 ms |")
    lines.append("|---|---:|---:|---:|---:|")
    for r in fsync["results"]:
        lat = r["latency_us"]
        lines.append(f"| {r['mode']} | {fmt_int(r['syncs_per_s'])} | {fmt_ms(lat['p50'])} | {fmt_ms(lat['p99'])} | {fmt_ms(lat['p999'])} |")
    lines.append("")
    lines.append(
        "`append` grows the file (each sync also commits the new size — what an un-preallocated log does); "
        "`overwrite` rewrites a preallocated region. A server that fsyncs per append with no batching cannot "
        "beat the `append` row; group commit amortises one sync over many appends."
    )
else:
    lines.append("(fsync measurement failed)")
lines.append("")
lines.append("## Anomalies")
lines.append("")
if anomalies:
    for a in anomalies:
        lines.append(f"- {a}")
else:
    lines.append("None: no non-2xx responses, no I/O errors, every server exited 0 on SIGTERM.")
lines.append("")
lines.append(
    "Latency is per request, from the first byte sent to the last byte of the response; percentiles are "
    "nearest-rank over every 2xx request completed in the measured window. CPU columns are cores used during the "
    f"window (utime+stime / wall time; the machine has {result['machine']['ncpu']} in total). \"other\" is task "
    "time of every other process and kernel thread (ext4's journal thread working for a syncing server shows up "
    "here; a compile running alongside would too, and voids the row); \"irq\" is interrupt + softirq time "
    "(mostly loopback TCP, charged to no process); \"steal\" is time the hypervisor gave to other VMs. "
    "Reproduce with `bash bench/append.sh` (see bench/README.md)."
)
md = "\n".join(lines) + "\n"
with open(md_path, "w") as f:
    f.write(md)
print(md)
