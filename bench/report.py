#!/usr/bin/env python3
"""Turn bench/run.sh's measurements into its Markdown report.

    report.py RECORDS_FILE TITLE MACHINE_LINE

RECORDS_FILE holds one measurement a line, `scenario=S server=X round=N key=value ...` (wrk runs:
rps, p50_ms, p99_ms, non200, socket_errors, timeouts, exhausted, statuses; the hash rate: rps;
peak RSS: mib; start-up: ms). Prints the comparison table (means over rounds; start-up: median), the
targets with ✓ or ✗, any errors, each server's CPU time per request (records with server_cpu_us), the
CPU shares during the measurements and the machine line. Exits 1 when a request failed (non-200 answer
or socket error). Standard library only.
"""

import statistics
import sys
from collections import defaultdict

SERVERS = ("hs", "naive", "django")
HEADERS = {"hs": "handstamp", "naive": "naive Rust", "django": "Django"}
# The public-key verify rows, scenario verify_<lowercase name> (run.sh's PUBLIC_KEY_ALG).
PUBLIC_KEY_ALGORITHMS = ("ES256", "EdDSA", "RS256")

# scenario -> (row label, the value a row compares, how rounds combine)
ROWS = {
    "verify": ("verify: `POST /api/token/verify/` (naive `/verify`)", "rps", statistics.fmean),
    **{f"verify_{alg.lower()}": (f"verify {alg}: `POST /api/token/verify/` with handstamp's {alg} access"
                                f" token (naive `/verify`: jsonwebtoken, the same public key)", "rps",
                                statistics.fmean)
       for alg in PUBLIC_KEY_ALGORITHMS},
    "stateless": ("stateless protected: `GET /api/auth/check`, `check_user = false` (naive `/check`)", "rps",
                  statistics.fmean),
    "checked": ("forward-auth with the user: `GET /api/auth/check`, `check_user = true` (naive `/check`; "
                "Django `/api/users/me/`, simplejwt's `JWTAuthentication`)", "rps", statistics.fmean),
    "me": ("me: `GET /api/users/me/` (naive: `/check`, its only protected route)", "rps", statistics.fmean),
    "ceiling": ("ceiling: `GET /healthz`, a fixed answer, no token (the most this setup measures)", "rps",
                statistics.fmean),
    "refresh": ("refresh with rotation + blacklist", "rps", statistics.fmean),
    "login": ("login (naive: Argon2id hash alone, `hashrate`, verifications/s)", "rps", statistics.fmean),
    "flood_verify": ("verify during a login flood (64 connections logging in)", "rps", statistics.fmean),
    "flood_login": ("the login flood itself (64 connections)", "rps", statistics.fmean),
    "rss": ("peak RSS after verify at 256 connections, MiB (lower is better)", "mib", statistics.fmean),
    "startup": ("start-up, exec to first `/healthz` 200, ms (median of runs; lower is better)", "ms",
                statistics.median),
}


def parse(path, key="scenario"):
    """{(KEY, server): [record, ...]} in file order, and the records of repeated measurements."""
    runs, repeated = defaultdict(list), []
    with open(path) as f:
        for line in f:
            fields = dict(kv.split("=", 1) for kv in line.split())
            if fields.get("kept") == "0":
                repeated.append(fields)
            else:
                runs[fields[key], fields["server"]].append(fields)
    return runs, repeated


def noisy(r):
    """Whether other processes took CPU during a measurement (the rule run.sh repeats them by)."""
    if "cpu0_other" not in r:
        return False
    return int(r["cpu0_other"]) > 10 or (int(r["cpu1_other"]) > 10 and int(r["cpu1_wrk"]) > 25)


def fmt_rate(x):
    return f"{x:,.0f}" if x >= 100 else f"{x:.1f}"


def fmt_ms(x):
    return f"{x:.2f}" if x < 10 else f"{x:,.0f}"


def fmt_ratio(x):
    return f"{x:,.0f}×" if x >= 100 else f"{x:.1f}×" if x >= 10 else f"{x:.2f}×"


class Results:
    def __init__(self, runs, repeated):
        self.runs = runs          # the kept measurements
        self.repeated = repeated  # measurements taken again because other processes took CPU

    def value(self, scenario, server, key=None):
        """The row's value for a server (mean or median over rounds), or None when it did not run."""
        records = self.runs.get((scenario, server))
        if not records:
            return None
        _, row_key, combine = ROWS[scenario]
        values = [float(r[key or row_key]) for r in records if (key or row_key) in r]
        return combine(values) if values else None

    def cell(self, scenario, server):
        v = self.value(scenario, server)
        if v is None:
            return "—"
        if ROWS[scenario][1] != "rps":
            return f"{v:.1f}"
        p50, p99 = self.value(scenario, server, "p50_ms"), self.value(scenario, server, "p99_ms")
        if p50 is None:
            return fmt_rate(v)
        return f"{fmt_rate(v)} ({fmt_ms(p50)} / {fmt_ms(p99)})"

    def ratio(self, scenario, server):
        a, b = self.value(scenario, "hs"), self.value(scenario, server)
        return None if a is None or b is None or b == 0 else a / b

    def errors(self):
        """One line per measurement (repeated ones included) with non-200 answers or socket errors."""
        out = []
        for r in [r for records in self.runs.values() for r in records] + self.repeated:
            if not (int(r.get("non200", 0)) or int(r.get("socket_errors", 0))):
                continue
            what = f"{r['non200']} non-200 (statuses {r['statuses']}), {r['socket_errors']} socket errors"
            if int(r.get("timeouts", 0)):
                what += f" of which {r['timeouts']} timeouts"
            if int(r.get("exhausted", 0)):
                what += ", ran out of refresh tokens"
            out.append(f"- {r['scenario']} / {HEADERS[r['server']]} / round {r['round']}: {what}")
        return out


def targets(res):
    """(target, measured text, met) for each target that could be evaluated."""
    rows = []

    def at_least(label, measured, goal, text):
        if measured is not None:
            rows.append((label, text(measured), measured >= goal))

    def at_most(label, measured, goal, text):
        if measured is not None:
            rows.append((label, text(measured), measured <= goal))

    # No "≥ 200× Django" rows: Django's rates times 200 lie above the ceiling row, the most this
    # setup measures from a server doing nothing; the CPU time per request table compares instead.
    for scenario in ("verify", "stateless"):
        at_least(f"{scenario} ≥ 1.0× naive", res.ratio(scenario, "naive"), 1.0, fmt_ratio)
    for alg in PUBLIC_KEY_ALGORITHMS:
        at_least(f"verify {alg} ≥ 1.0× naive", res.ratio(f"verify_{alg.lower()}", "naive"), 1.0, fmt_ratio)
    at_least("me ≥ 0.7× naive `/check`", res.ratio("me", "naive"), 0.7, fmt_ratio)
    at_least("refresh ≥ 100× Django", res.ratio("refresh", "django"), 100, fmt_ratio)
    at_least("login ≥ 0.9× hash rate", res.ratio("login", "naive"), 0.9, fmt_ratio)
    flood, calm = res.value("flood_verify", "hs"), res.value("verify", "hs")
    if flood is not None and calm:
        at_least("verify during login flood ≥ 0.5× unloaded", flood / calm, 0.5,
                 lambda r: f"{fmt_ratio(r)} ({fmt_rate(flood)} of {fmt_rate(calm)} req/s)")
    at_most("verify p99 during login flood ≤ 20 ms", res.value("flood_verify", "hs", "p99_ms"), 20,
            lambda v: f"{fmt_ms(v)} ms")
    at_most("peak RSS (handstamp) ≤ 32 MiB", res.value("rss", "hs"), 32, lambda v: f"{v:.1f} MiB")
    at_most("start-up (handstamp) ≤ 100 ms", res.value("startup", "hs"), 100, lambda v: f"{v:.1f} ms")
    return rows


# The scenarios whose server CPU time is one request's work (not the flood's: its logins count).
CPU_PER_REQUEST_SCENARIOS = [s for s in ROWS if ROWS[s][1] == "rps" and not s.startswith("flood_")]


def cpu_per_request(res, scenario, server):
    """Microseconds of the server's CPU time (utime + stime from /proc/PID/stat, before and after the
    wrk run) per request answered, mean of the rounds; None when not measured."""
    values = [float(r["server_cpu_us"]) / int(r["requests"]) for r in res.runs.get((scenario, server), [])
              if "server_cpu_us" in r and int(r.get("requests", 0))]
    return statistics.fmean(values) if values else None


def cpu_per_request_table(res):
    lines = [
        "Server CPU time per request, µs (utime + stime of the server's process, gunicorn's workers"
        " included, from `/proc/PID/stat` before and after each wrk run, over the requests answered;"
        " mean of the rounds; lower is better). The last column is handstamp ÷ Django: the share of"
        " Django's CPU that handstamp spends on the same request.",
        "",
        f"| scenario | {' | '.join(HEADERS[s] for s in SERVERS)} | handstamp/Django |",
        "|---|" + "---:|" * (len(SERVERS) + 1),
    ]
    for scenario in CPU_PER_REQUEST_SCENARIOS:
        cells = {s: cpu_per_request(res, scenario, s) for s in SERVERS}
        if all(v is None for v in cells.values()):
            continue
        hs, django = cells["hs"], cells["django"]
        ratio = f"{hs / django:.4f}× (1/{django / hs:,.0f})" if hs and django else "—"
        text = [fmt_cpu(v) if v is not None else "—" for v in cells.values()]
        lines.append(f"| {scenario} | {' | '.join(text)} | {ratio} |")
    return lines


def fmt_cpu(us):
    return f"{us:,.0f}" if us >= 100 else f"{us:.2f}"


def cpu_table(res):
    """Lines of a table of CPU use during the measurements (mean of the rounds), and notes on the
    measurements other processes disturbed."""
    keys = ("cpu0_server", "cpu0_other", "cpu1_wrk", "cpu1_other")
    lines = [
        "CPU during the measurements, % of each CPU (mean of the rounds): CPU 0 server / CPU 0 other"
        " processes / CPU 1 wrk / CPU 1 other processes. A server well under 100% of CPU 0 while CPU 1"
        " is full was held back by the client side; the login row's naive column is `hashrate`.",
        "",
        f"| scenario | {' | '.join(HEADERS[s] for s in SERVERS)} |",
        "|---|" + "---:|" * len(SERVERS),
    ]
    disturbed = []
    for scenario in (*ROWS, "rss_load"):
        cells = []
        for server in SERVERS:
            records = [r for r in res.runs.get((scenario, server), []) if "cpu0_other" in r]
            if not records:
                cells.append("—")
                continue
            cells.append(" / ".join(f"{statistics.fmean(float(r[k]) for r in records):.0f}" for k in keys))
            disturbed += [f"{scenario}/{HEADERS[server]}/round {r['round']}" for r in records if noisy(r)]
        if any(c != "—" for c in cells):
            lines.append(f"| {scenario} | {' | '.join(cells)} |")
    lines.append("")
    lines.append(f"{len(res.repeated)} measurement(s) repeated because other processes took more than 10% of"
                 " CPU 0, or of CPU 1 while wrk needed it.")
    if disturbed:
        lines.append("Still disturbed after the repeats (figures low): " + ", ".join(disturbed) + ".")
    return lines


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    records, title, machine = sys.argv[1:]
    res = Results(*parse(records))

    print(f"## {title}")
    print()
    print("Requests/s (p50 / p99 latency, ms), mean of the rounds; ratios are handstamp ÷ peer.")
    print()
    print(f"| scenario | {' | '.join(HEADERS[s] for s in SERVERS)} | handstamp/naive | handstamp/Django |")
    print("|---|" + "---:|" * (len(SERVERS) + 2))
    for scenario, (label, _, _) in ROWS.items():
        if not any(res.value(scenario, s) is not None for s in SERVERS):
            continue
        cells = [res.cell(scenario, s) for s in SERVERS]
        ratios = [res.ratio(scenario, s) for s in ("naive", "django")]
        ratios = [fmt_ratio(r) if r is not None else "—" for r in ratios]
        print(f"| {label} | {' | '.join(cells)} | {' | '.join(ratios)} |")
    print()
    print("| target | measured | |")
    print("|---|---:|:-:|")
    for label, measured, met in targets(res):
        print(f"| {label} | {measured} | {'✓' if met else '✗'} |")
    print()
    errors = res.errors()
    if errors:
        print("**Errors** (the run failed):")
        print()
        print("\n".join(errors))
        print()
    print("\n".join(cpu_per_request_table(res)))
    print()
    print("\n".join(cpu_table(res)))
    print()
    print(machine)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
