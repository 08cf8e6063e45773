#!/usr/bin/env python3
"""Outside verifiers against a running handstamp: PyJWT's PyJWKClient and simplejwt's JWK_URL.

For each public-key algorithm this starts `handstamp serve` on a free port with a fresh SQLite
database and a private key made by `openssl genpkey`, creates a user with the CLI, logs in over
HTTP, and then, with nothing but the JWKS URL:

- PyJWT (`jwt.PyJWKClient` + `jwt.decode`) verifies the access token, whose `kid` must be the
  RFC 7638 thumbprint of the published key (computed here, independently);
- simplejwt, configured with `SIMPLE_JWT = {"ALGORITHM": ..., "JWK_URL": ...}`, reads it as an
  `AccessToken` (its backend fetching the same JWKS), when Django and
  djangorestframework-simplejwt are installed (skipped with a note otherwise, or with --no-simplejwt);
- a token with a changed payload, one with a changed signature, and an HS256 token signed with the
  public key's PEM as the HMAC secret (the RS256 -> HS256 confusion) are refused by PyJWT, by
  simplejwt, and by handstamp's own /api/token/verify/ (401).

One line per algorithm; exit status 1 if any check failed.

    python3 tests/interop/pyjwt_jwks.py [--binary target/debug/handstamp] [--algorithms ES256,EdDSA]

Needs: PyJWT and cryptography (tests/interop/requirements.txt pins them, with simplejwt), openssl.
"""

import argparse
import base64
import contextlib
import hashlib
import hmac
import json
import os
import queue
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import jwt

ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"]

# `openssl genpkey` arguments for a key of each algorithm's kind.
GENPKEY = {
    "ES256": ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
    "ES384": ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"],
    "EdDSA": ["-algorithm", "ED25519"],
}
RSA = ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"]

# RFC 7638 §3.2: the members of each key type that its thumbprint covers.
THUMBPRINT_MEMBERS = {"RSA": ["e", "kty", "n"], "EC": ["crv", "kty", "x", "y"], "OKP": ["crv", "kty", "x"]}

USER, PASSWORD = "interop", "correct horse battery staple"
START_TIMEOUT = 30.0
HTTP_TIMEOUT = 30.0


class Failed(Exception):
    """A check that did not hold."""


def check(condition, what):
    if not condition:
        raise Failed(what)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def thumbprint(jwk: dict) -> str:
    """RFC 7638: SHA-256 over the required members, sorted, without whitespace."""
    members = {name: jwk[name] for name in THUMBPRINT_MEMBERS[jwk["kty"]]}
    canonical = json.dumps(members, separators=(",", ":"), sort_keys=True).encode()
    return b64url(hashlib.sha256(canonical).digest())


def http(method: str, url: str, body=None):
    """(status, parsed JSON body) of one request; 4xx/5xx are answers, not exceptions."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT) as reply:
            return reply.status, json.loads(reply.read() or b"null")
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"null")


def run(command: list, **options) -> subprocess.CompletedProcess:
    """A command that must succeed; its standard error in the failure otherwise."""
    done = subprocess.run(command, capture_output=True, text=True, **options)
    check(done.returncode == 0, f"{' '.join(command)}: exit {done.returncode}: {done.stderr.strip()}")
    return done


class Server:
    """`handstamp serve` on 127.0.0.1 port 0 with its own database and key, for one algorithm."""

    def __init__(self, binary: Path, algorithm: str, workdir: Path):
        self.algorithm = algorithm
        self.key = workdir / "signing.pem"
        self.public = workdir / "public.pem"
        self.other_key = workdir / "other.pem"
        for key in (self.key, self.other_key):
            run(["openssl", "genpkey", *GENPKEY.get(algorithm, RSA), "-out", str(key)])
        run(["openssl", "pkey", "-pubout", "-in", str(self.key), "-out", str(self.public)])
        # Nothing from the caller's settings: no HANDSTAMP_* variables, no ./handstamp.toml.
        self.env = {
            **{name: value for name, value in os.environ.items() if not name.startswith("HANDSTAMP_")},
            "HANDSTAMP_ALGORITHM": algorithm,
            "HANDSTAMP_SIGNING_KEY_FILE": str(self.key),
            "NO_COLOR": "1",
        }
        self.base = [str(binary.resolve()), "--database", f"sqlite://{workdir / 'handstamp.sqlite3'}"]
        created = run(
            [*self.base, "user", "create", USER, "--password-stdin"], input=PASSWORD + "\n", env=self.env, cwd=workdir
        )
        # "created user NAME (id N)": the id the access token must name.
        self.user_id = re.search(r"\(id (\d+)\)", created.stdout).group(1)
        self.log = open(workdir / "serve.log", "w")
        self.process = subprocess.Popen(
            [*self.base, "serve", "--bind", "127.0.0.1:0"],
            env=self.env, cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        self.lines = queue.Queue()
        self.reader = threading.Thread(target=self._drain, daemon=True)
        self.reader.start()
        self.url = self._wait_listening()

    def _drain(self):
        """Copies the server's output to serve.log (so its pipe never fills) and hands it on."""
        for line in self.process.stdout:
            self.log.write(line)
            self.lines.put(line)
        self.lines.put(None)

    def _wait_listening(self) -> str:
        """The address from the `listening on` line (the port the kernel chose)."""
        deadline = time.monotonic() + START_TIMEOUT
        seen = []
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                line = None
            if line is None:
                self.stop()
                raise Failed(f"handstamp did not start listening: {''.join(seen)[-2000:]}")
            seen.append(line)
            found = re.search(r"listening on (http://\S+)", re.sub(r"\x1b\[[0-9;]*m", "", line))
            if found:
                return found.group(1)

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.reader.join(timeout=10)
        self.log.close()


def tampered_tokens(token: str, server: "Server") -> dict:
    """Tokens that no verifier may accept, each built from a real one."""
    header, payload, signature = token.split(".")
    head, claims = json.loads(b64url_decode(header)), json.loads(b64url_decode(payload))
    other_claims = {**claims, "user_id": str(int(claims["user_id"]) + 1)}
    other_payload = b64url(json.dumps(other_claims, separators=(",", ":")).encode())
    raw_signature = bytearray(b64url_decode(signature))
    raw_signature[len(raw_signature) // 2] ^= 0x01
    # RS256 -> HS256 confusion: HMAC over the token with the public key as the secret, kid kept.
    confused_header = {**head, "alg": "HS256"}
    signing_input = f"{b64url(json.dumps(confused_header).encode())}.{payload}"
    confused = hmac.new(server.public.read_bytes(), signing_input.encode(), hashlib.sha256).digest()
    # The same claims and kid, signed by another key of the same kind.
    foreign = jwt.encode(claims, server.other_key.read_bytes(), algorithm=server.algorithm, headers={"kid": head["kid"]})
    return {
        "payload": f"{header}.{other_payload}.{signature}",
        "foreign-key": foreign,
        "signature": f"{header}.{payload}.{b64url(bytes(raw_signature))}",
        "hs256-with-public-key": f"{signing_input}.{b64url(confused)}",
    }


@contextlib.contextmanager
def simplejwt_settings(algorithm: str, jwks_url: str):
    """simplejwt as a Django project configured with `SIMPLE_JWT = {"ALGORITHM": ..., "JWK_URL": ...}`
    reads tokens: its token backend is built from the settings when its `state` module loads."""
    import importlib

    from django.test import override_settings
    from rest_framework_simplejwt import state

    with override_settings(SIMPLE_JWT={"ALGORITHM": algorithm, "JWK_URL": jwks_url}):
        importlib.reload(state)
        yield


def configure_django() -> bool:
    """The least Django needs for simplejwt's backend; False when it is not installed."""
    try:
        import django
        from django.conf import settings
    except ImportError:
        return False
    settings.configure(
        SECRET_KEY="interop-check-not-a-secret",
        INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth", "rest_framework_simplejwt"],
        USE_TZ=True,
    )
    django.setup()
    return True


def check_algorithm(binary: Path, algorithm: str, with_simplejwt: bool, jose: Path | None = None) -> str:
    """Every check for one algorithm; the summary of what passed, or Failed."""
    if with_simplejwt:
        from rest_framework_simplejwt.exceptions import TokenError
        from rest_framework_simplejwt.tokens import AccessToken
    with tempfile.TemporaryDirectory(prefix=f"handstamp-interop-{algorithm}-") as workdir:
        server = Server(binary, algorithm, Path(workdir))
        try:
            status, tokens = http("POST", f"{server.url}/api/token/", {"username": USER, "password": PASSWORD})
            check(status == 200, f"login answered {status}: {tokens}")
            access = tokens["access"]
            jwks_url = f"{server.url}/.well-known/jwks.json"

            status, jwks = http("GET", jwks_url)
            check(status == 200, f"JWKS answered {status}")
            check(len(jwks["keys"]) == 1, f"one published key expected: {jwks}")
            published = jwks["keys"][0]
            kid = jwt.get_unverified_header(access).get("kid")
            check(kid == published["kid"], f"token kid {kid!r} is not the published {published['kid']!r}")
            check(kid == thumbprint(published), f"kid {kid!r} is not the RFC 7638 thumbprint {thumbprint(published)!r}")
            check(published.get("alg") == algorithm and published.get("use") == "sig", f"JWK: {published}")
            private = {"d", "p", "q", "dp", "dq", "qi", "k"} & published.keys()
            check(not private, f"the JWKS publishes private members {sorted(private)}")

            # PyJWT with nothing but the JWKS URL.
            client = jwt.PyJWKClient(jwks_url)
            key = client.get_signing_key_from_jwt(access)
            claims = jwt.decode(access, key.key, algorithms=[algorithm])
            check(claims.get("token_type") == "access", f"claims: {claims}")
            check(claims.get("user_id") == server.user_id, f"user {server.user_id} expected: {claims}")
            done = ["PyJWKClient verified"]

            if with_simplejwt:
                with simplejwt_settings(algorithm, jwks_url):
                    read = AccessToken(access).payload
                check(read == claims, f"simplejwt read {read}, PyJWT {claims}")
                done.append("simplejwt JWK_URL verified")

            bad_tokens = tampered_tokens(access, server)
            for name, bad in bad_tokens.items():
                try:
                    jwt.decode(bad, client.get_signing_key_from_jwt(bad).key, algorithms=[algorithm])
                except jwt.exceptions.PyJWTError:
                    pass
                else:
                    raise Failed(f"PyJWT accepted the {name} token")
                if with_simplejwt:
                    try:
                        with simplejwt_settings(algorithm, jwks_url):
                            AccessToken(bad)
                    except TokenError:
                        pass
                    else:
                        raise Failed(f"simplejwt accepted the {name} token")
                status, body = http("POST", f"{server.url}/api/token/verify/", {"token": bad})
                check(status == 401, f"handstamp answered the {name} token {status}: {body}")
            if jose is not None:
                # jose (Node) with nothing but the JWKS URL: the good token passes, the bad ones not.
                verified = run(["node", str(jose), jwks_url, algorithm, access, *bad_tokens.values()])
                check(verified.returncode == 0, f"jose: {verified.stderr.strip()}")
                done.append("jose verified")
            done.append(f"{len(bad_tokens)} bad tokens refused by every verifier")
            return f"kid={kid}: " + ", ".join(done)
        finally:
            server.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--binary", type=Path, default=Path("target/debug/handstamp"))
    parser.add_argument("--algorithms", default=",".join(ALGORITHMS), help="comma-separated (default: all)")
    parser.add_argument("--no-simplejwt", action="store_true", help="PyJWT only")
    parser.add_argument("--jose", type=Path, help="jose_verify.mjs beside an installed jose (Node)")
    args = parser.parse_args()
    algorithms = [a.strip() for a in args.algorithms.split(",") if a.strip()]
    unknown = [a for a in algorithms if a not in ALGORITHMS]
    if unknown or not algorithms:
        parser.error(f"unknown algorithm(s) {unknown}; choose from {ALGORITHMS}")
    if not args.binary.is_file():
        parser.error(f"{args.binary} not found (cargo build first)")

    with_simplejwt = not args.no_simplejwt and configure_django()
    if not with_simplejwt:
        print("note: simplejwt checks skipped" + ("" if args.no_simplejwt else " (Django/simplejwt not installed)"))
    failures = 0
    started = time.monotonic()
    for algorithm in algorithms:
        try:
            print(f"{algorithm:<6} ok    {check_algorithm(args.binary, algorithm, with_simplejwt, args.jose)}", flush=True)
        except Exception as err:  # every failure is reported per algorithm, then the exit status says it
            failures += 1
            print(f"{algorithm:<6} FAIL  {type(err).__name__}: {err}", flush=True)
    print(f"{len(algorithms) - failures}/{len(algorithms)} algorithms verified in {time.monotonic() - started:.1f}s"
          f" (PyJWT {jwt.__version__})")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
