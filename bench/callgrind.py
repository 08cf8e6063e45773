#!/usr/bin/env python3
"""Instructions per request of one route under callgrind: noise-free where wrk is not (a busy
machine, other processes on the server's CPU), so an A/B of a small change shows up.

    callgrind.py [--algorithm ALG] [--static DIR] [--upstream URL] [--keep FILE] BINARY [PATH] [REQUESTS]
                                                PATH default /api/auth/check, REQUESTS 2000

Runs BINARY serve under valgrind with instrumentation off, with a user `bench` and an access token of
theirs (`HANDSTAMP_*` settings of the caller's environment apply, e.g. HANDSTAMP_CHECK_USER=false),
on one keep-alive connection: 200 requests to warm up, then instrumentation on, REQUESTS requests, a
dump. The token goes as Bearer in a GET, or for /api/token/verify/ as `{"token": ...}` in a POST.
Prints `CALLGRIND path=... algorithm=... requests=N instructions_per_request=X` (all threads, the
access log included). Every answer must be a 200.

With --static DIR, DIR is served under `/static/` (a `[[static]]` mount in a config file of its
own), e.g. `--static /tmp/files BINARY /static/1k.txt`. With --upstream URL, requests under `/app/`
are proxied to the backend at URL (an `[[upstream]]` without auth; the backend runs outside
valgrind, so only handstamp's instructions count), e.g. `--upstream http://127.0.0.1:8081 BINARY /app/`.

The token is HS256, minted with a fixed key; with --algorithm (ES256, EdDSA, RS256, ...) handstamp
signs with a key made by `openssl genpkey` (bench/openssl_key.sh, `signing_key_file`) and the token
comes from a login over HTTP (one password hash, before instrumentation starts). Standard library only.
"""

import argparse
import glob
import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
KEY = "bench-handstamp-key-0123456789abcdef0123456789abcdef0123456789ab"
WARM_UP = 200


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(conn, path, body):
    """(status, body bytes) of a JSON POST."""
    conn.request("POST", path, body=json.dumps(body), headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    return response.status, response.read()


def requests(conn, path, token, count):
    for _ in range(count):
        if path.rstrip("/") == "/api/token/verify":
            status, body = post(conn, path, {"token": token})
        else:
            conn.request("GET", path, headers={"Authorization": f"Bearer {token}"})
            response = conn.getresponse()
            status, body = response.status, response.read()
        if status != 200:
            sys.exit(f"{path}: {status} {body!r}")


def main():
    parser = argparse.ArgumentParser(usage=__doc__)
    parser.add_argument("--algorithm", help="a public-key algorithm (default: HS256, minted tokens)")
    parser.add_argument("--static", help="a directory to serve under /static/")
    parser.add_argument("--upstream", help="a backend's URL to proxy /app/ to")
    parser.add_argument("--keep", help="copy the callgrind dump to this file (for callgrind_annotate)")
    parser.add_argument("binary")
    parser.add_argument("path", nargs="?", default="/api/auth/check")
    parser.add_argument("requests", nargs="?", type=int, default=2000)
    args = parser.parse_args()
    binary, path, count = os.path.abspath(args.binary), args.path, args.requests
    with tempfile.TemporaryDirectory() as work:
        env = dict(os.environ, HANDSTAMP_DATABASE_URL=f"sqlite://{work}/hs.sqlite3")
        if args.algorithm:
            subprocess.run(["bash", f"{HERE}/openssl_key.sh", args.algorithm, f"{work}/key.pem",
                            f"{work}/public.pem"], check=True)
            env.update(HANDSTAMP_ALGORITHM=args.algorithm, HANDSTAMP_SIGNING_KEY_FILE=f"{work}/key.pem")
        else:
            env.update(HANDSTAMP_SIGNING_KEY=KEY)
        mounts = ""
        if args.static:
            mounts += f'[[static]]\nprefix = "/static/"\ndir = {json.dumps(os.path.abspath(args.static))}\n'
        if args.upstream:
            mounts += f'[[upstream]]\nprefix = "/app/"\nbackends = [{json.dumps(args.upstream)}]\nauth = "none"\n'
        if mounts:
            with open(f"{work}/handstamp.toml", "w") as config:
                config.write(mounts)
            env.update(HANDSTAMP_CONFIG=f"{work}/handstamp.toml")
        created = subprocess.run([binary, "user", "create", "bench", "--password-stdin"], input="pw\n",
                                 env=env, cwd=work, capture_output=True, text=True, check=True).stdout
        user_id = re.search(r"\(id (\d+)\)", created).group(1)
        token = None
        if not args.algorithm:
            token = subprocess.run([sys.executable, f"{HERE}/mint_refresh.py", "--access", KEY, user_id],
                                   capture_output=True, text=True, check=True).stdout.strip()
        port = free_port()
        out = f"{work}/callgrind.out"
        with open(f"{work}/server.log", "w") as log:
            server = subprocess.Popen(
                ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}",
                 binary, "serve", "--bind", f"127.0.0.1:{port}"],
                env=env, cwd=work, stdout=log, stderr=log)
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                    conn.request("GET", "/healthz")
                    conn.getresponse().read()
                    break
                except OSError:
                    if server.poll() is not None or time.monotonic() > deadline:
                        sys.exit(open(f"{work}/server.log").read()[-2000:])
                    time.sleep(0.2)
            if token is None:
                status, body = post(conn, "/api/token/", {"username": "bench", "password": "pw"})
                if status != 200:
                    sys.exit(f"login: {status} {body!r}")
                token = json.loads(body)["access"]
            requests(conn, path, token, WARM_UP)
            control = lambda what: subprocess.run(["callgrind_control", what, str(server.pid)],
                                                  check=True, capture_output=True)
            control("--instr=on")
            requests(conn, path, token, count)
            control("--dump")
            total = 0
            dump = max(glob.glob(f"{out}.*"), key=os.path.getmtime)
            if args.keep:
                shutil.copyfile(dump, args.keep)
            for line in open(dump):
                if line.startswith(("summary:", "totals:")):
                    total = int(line.split()[1])
                    break
            print(f"CALLGRIND path={path} algorithm={args.algorithm or 'HS256'} requests={count}"
                  f" instructions_per_request={total / count:.0f}")
        finally:
            server.terminate()
            server.wait()


if __name__ == "__main__":
    main()
