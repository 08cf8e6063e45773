#!/usr/bin/env python3
"""Mint HS256 tokens the way handstamp (and simplejwt) shapes them, for bench/run.sh.

    mint_refresh.py [--v7] SIGNING_KEY USER_ID COUNT OUTPUT_FILE
                                              COUNT never-used refresh tokens, one a line; with
                                              --v7 their ids are time-ordered UUIDv7s, as handstamp
                                              issues them (simplejwt's are random uuid4s)
    mint_refresh.py --access SIGNING_KEY USER_ID            one access token (300 s) on stdout

Header exactly {"alg":"HS256","typ":"JWT"}; claims in order token_type, exp, iat, jti, user_id
(user_id a JSON string), lifetimes the defaults of handstamp and simplejwt (access 300 s, refresh
86 400 s). Every server in the benchmark accepts them when given the same key. Standard library only.
"""

import base64
import hashlib
import hmac
import json
import os
import sys
import time
import uuid

LIFETIME = {"access": 300, "refresh": 86_400}
HEADER = base64.urlsafe_b64encode(b'{"alg":"HS256","typ":"JWT"}').rstrip(b"=")


def b64url(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def uuid7_hex(ms: int) -> str:
    """A UUIDv7 as 32 hex digits: 48-bit millisecond time, version 7, random bits."""
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & (2**48 - 1)) << 80 | 0x7 << 76 | (rand >> 68) << 64 | 0b10 << 62 | (rand & (2**62 - 1))
    return "%032x" % value


def mint(key: bytes, token_type: str, user_id: str, now: int, jti: str = "") -> bytes:
    claims = {
        "token_type": token_type,
        "exp": now + LIFETIME[token_type],
        "iat": now,
        "jti": jti or uuid.uuid4().hex,
        "user_id": str(user_id),
    }
    signing_input = HEADER + b"." + b64url(json.dumps(claims, separators=(",", ":")).encode())
    return signing_input + b"." + b64url(hmac.new(key, signing_input, hashlib.sha256).digest())


def main() -> None:
    args = sys.argv[1:]
    if len(args) == 3 and args[0] == "--access":
        key, user_id = args[1].encode(), args[2]
        print(mint(key, "access", user_id, int(time.time())).decode())
    elif len(args) in (4, 5) and (len(args) == 4 or args[0] == "--v7"):
        v7 = len(args) == 5
        key, user_id, count, output = args[-4].encode(), args[-3], int(args[-2]), args[-1]
        now = int(time.time())
        # As if issued one a millisecond, oldest first: the order they are used in.
        first_ms = now * 1000 - count
        with open(output, "wb") as out:
            for i in range(count):
                jti = uuid7_hex(first_ms + i) if v7 else ""
                out.write(mint(key, "refresh", user_id, now, jti) + b"\n")
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
