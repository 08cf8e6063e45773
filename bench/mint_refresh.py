#!/usr/bin/env python3
"""Mint HS256 tokens the way handstamp (and simplejwt) shapes them, for bench/run.sh.

    mint_refresh.py SIGNING_KEY USER_ID COUNT OUTPUT_FILE   COUNT never-used refresh tokens, one a line
    mint_refresh.py --access SIGNING_KEY USER_ID            one access token (300 s) on stdout

Header exactly {"alg":"HS256","typ":"JWT"}; claims in order token_type, exp, iat, jti, user_id
(user_id a JSON string), lifetimes the defaults of handstamp and simplejwt (access 300 s, refresh
86 400 s). Every server in the benchmark accepts them when given the same key. Standard library only.
"""

import base64
import hashlib
import hmac
import json
import sys
import time
import uuid

LIFETIME = {"access": 300, "refresh": 86_400}
HEADER = base64.urlsafe_b64encode(b'{"alg":"HS256","typ":"JWT"}').rstrip(b"=")


def b64url(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def mint(key: bytes, token_type: str, user_id: str, now: int) -> bytes:
    claims = {
        "token_type": token_type,
        "exp": now + LIFETIME[token_type],
        "iat": now,
        "jti": uuid.uuid4().hex,
        "user_id": str(user_id),
    }
    signing_input = HEADER + b"." + b64url(json.dumps(claims, separators=(",", ":")).encode())
    return signing_input + b"." + b64url(hmac.new(key, signing_input, hashlib.sha256).digest())


def main() -> None:
    args = sys.argv[1:]
    if len(args) == 3 and args[0] == "--access":
        key, user_id = args[1].encode(), args[2]
        print(mint(key, "access", user_id, int(time.time())).decode())
    elif len(args) == 4:
        key, user_id, count, output = args[0].encode(), args[1], int(args[2]), args[3]
        now = int(time.time())
        with open(output, "wb") as out:
            for _ in range(count):
                out.write(mint(key, "refresh", user_id, now) + b"\n")
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
