#!/usr/bin/env python3
"""Turn bench/gateway.sh's measurements into its Markdown report.

    gateway_report.py RECORDS_FILE TITLE MACHINE_LINE

RECORDS_FILE holds one measurement a line, `row=R server=S round=N key=value ...` (the load runs:
requests, rps, p50_ms, p99_ms, non200, socket_errors, timeouts, statuses, server_cpu_us, cpu0_server,
cpu0_other; peak RSS: row=rss_mib, mib). Prints one table: per row the median of the rounds with the
lowest and highest, handstamp ÷ nginx, the target and whether it is met, and each server's CPU time
per request; then any errors, the measurements other processes disturbed, and the machine line.
Exits 1 when an answer was not the expected status or a socket error happened. Standard library only.
"""

import statistics
import sys

import report  # bench/report.py, beside this file

SERVERS = ("hs", "nginx")

# row -> (label, target ratio handstamp ÷ nginx or None, unit). Rates: higher is better.
ROWS = {
    "static_1k": ("static file, 1 KiB", 1.0, "req/s"),
    "static_64k": ("static file, 64 KiB", 1.0, "req/s"),
    "static_304": ("static file, 304 (`If-None-Match` with the server's own ETag)", None, "req/s"),
    "proxy": ("proxy to the backend, no auth", 0.9, "req/s"),
    "auth": ("proxy with auth required (nginx: `auth_request` to handstamp's `/api/auth/check`, as in"
             " README \"Deploying\"; handstamp: `auth = \"required\"`)", 2.5, "req/s"),
    "auth_keepalive": ("proxy with auth required, nginx's `auth_request` over kept-alive connections"
                       " (handstamp: its auth row)", None, "req/s"),
    "https": ("HTTPS static file, 1 KiB, keep-alive (TLS 1.3, ECDSA P-256)", 1.0, "req/s"),
    "handshake": ("new TLS 1.3 handshakes + one 1 KiB GET each (`bench/handshakes`)", 1.0, "conn/s"),
    "rss_mib": ("peak RSS after the proxy row at 256 connections, MiB (lower is better; nginx: master +"
                " worker)", None, "MiB"),
}
# The rows whose handstamp figure is another row's (handstamp has one way to do it).
HS_FROM = {"auth_keepalive": "auth"}


def parse(path):
    """{(row, server): [record, ...]} of the kept measurements, and those taken again."""
    return report.parse(path, key="row")


def values(runs, row, server, key):
    return [float(r[key]) for r in runs.get((row, server), []) if key in r]


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    path, title, machine = sys.argv[1:]
    runs, repeated = parse(path)
    # The load rows (`rss` is the load before the peak-RSS reading) and the RSS readings.
    value_key = lambda row: "mib" if row == "rss_mib" else "rps"

    def median(row, server):
        v = values(runs, HS_FROM.get(row, row) if server == "hs" else row, server, value_key(row))
        return (statistics.median(v), min(v), max(v)) if v else None

    def cpu_us(row, server):
        row = HS_FROM.get(row, row) if server == "hs" else row
        v = [float(r["server_cpu_us"]) / int(r["requests"]) for r in runs.get((row, server), [])
             if "server_cpu_us" in r and int(r.get("requests", 0))]
        return statistics.median(v) if v else None

    def held_back(row, server):
        """Whether CPU 0 stood over 10% idle during the server's runs (mean of the rounds): then
        the side on CPU 1 set the rate, and the CPU time per request is the fairer comparison."""
        row = HS_FROM.get(row, row) if server == "hs" else row
        busy = [a + b for a, b in zip(values(runs, row, server, "cpu0_server"),
                                      values(runs, row, server, "cpu0_other"))]
        return bool(busy) and statistics.fmean(busy) < 90

    def fmt(x, unit):
        return f"{x:.1f}" if unit == "MiB" else f"{x:,.0f}"

    print(f"## {title}")
    print()
    print("Median of the rounds (lowest – highest); the ratio is handstamp ÷ nginx of the medians. CPU"
          " µs/request: the server's own CPU time (utime + stime from `/proc/PID/stat` before and after"
          " each run: handstamp's process, nginx's worker, and for nginx's auth rows also the handstamp"
          " answering its `auth_request`) over the requests answered, median of the rounds.")
    print()
    print("| row | handstamp | nginx | handstamp ÷ nginx | target | | CPU µs/request, handstamp | nginx |")
    print("|---|---:|---:|---:|---:|:-:|---:|---:|")
    for row, (label, target, unit) in ROWS.items():
        m = {s: median(row, s) for s in SERVERS}
        if all(v is None for v in m.values()):
            continue
        cells = [f"{fmt(v[0], unit)} ({fmt(v[1], unit)} – {fmt(v[2], unit)})"
                 f"{' †' if unit != 'MiB' and held_back(row, s) else ''}" if v else "—"
                 for s, v in m.items()]
        ratio = m["hs"][0] / m["nginx"][0] if m["hs"] and m["nginx"] and m["nginx"][0] else None
        verdict = "" if target is None or ratio is None else ("met" if ratio >= target else "missed")
        cpu = [cpu_us(row, s) for s in SERVERS]
        print(f"| {label} | {' | '.join(cells)} | {f'{ratio:.2f}×' if ratio is not None else '—'}"
              f" | {f'≥ {target}×' if target else ''} | {verdict}"
              f" | {' | '.join(f'{c:.1f}' if c is not None else '—' for c in cpu)} |")
    print()
    if any(held_back(row, s) for row in ROWS if row != "rss_mib" for s in SERVERS):
        print("† CPU 0 stood over 10% idle during that server's runs (mean of the rounds): the load"
              " generator or the backend on CPU 1 set that rate, not the server; compare the CPU time"
              " per request.")
        print()

    load = [r for records in runs.values() for r in records if "rps" in r]
    errors = [r for r in load + repeated if int(r["non200"]) or int(r["socket_errors"])]
    if errors:
        print("**Errors** (the run failed):")
        print()
        for r in errors:
            print(f"- {r['row']} / {r['server']} / round {r['round']}: {r['non200']} unexpected statuses"
                  f" ({r['statuses']}), {r['socket_errors']} socket errors ({r['timeouts']} timeouts)")
        print()

    print("CPU during the load rows, % (mean of the rounds): CPU 0 the server / CPU 0 other processes /"
          " CPU 1 busy (the load generator, the backend and anything else). CPU 0 idle while CPU 1 is"
          " full: the server was held back by CPU 1's side.")
    print()
    print("| row | handstamp | nginx |")
    print("|---|---:|---:|")
    for row in (*ROWS, "rss"):
        cells = []
        for s in SERVERS:
            rs = [r for r in runs.get((row, s), []) if "cpu1_busy" in r]
            cells.append(" / ".join(f"{statistics.fmean(float(r[k]) for r in rs):.0f}"
                                    for k in ("cpu0_server", "cpu0_other", "cpu1_busy")) if rs else "—")
        if any(c != "—" for c in cells):
            print(f"| {row} | {' | '.join(cells)} |")
    disturbed = [f"{r['row']}/{r['server']}/round {r['round']}" for r in load if int(r["cpu0_other"]) > 10]
    print()
    print(f"{len(repeated)} measurement(s) taken again because other processes took more than 10% of CPU 0.")
    if disturbed:
        print("Still disturbed after that (other processes over 10% of CPU 0; figures low): "
              + ", ".join(disturbed) + ".")
    print()
    print(machine)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
