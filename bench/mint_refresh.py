#!/usr/bin/env python3
"""Mint never-used HS256 refresh tokens the way handstamp (and simplejwt) shapes them.

    mint_refresh.py SIGNING_KEY USER_ID COUNT OUTPUT_FILE

Header exactly {"alg":"HS256","typ":"JWT"}; claims in order token_type, exp, iat, jti, user_id
(user_id a JSON string). One token a line. Standard library only.
"""

import base64
import hashlib
import hmac
import json
import sys
import time
import uuid

REFRESH_LIFETIME = 86_400


def b64url(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def main() -> None:
    key, user_id, count, output = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    key = key.encode()
    header = b64url(b'{"alg":"HS256","typ":"JWT"}')
    now = int(time.time())
    with open(output, "wb") as out:
        for _ in range(count):
            claims = {
                "token_type": "refresh",
                "exp": now + REFRESH_LIFETIME,
                "iat": now,
                "jti": uuid.uuid4().hex,
                "user_id": str(user_id),
            }
            payload = b64url(json.dumps(claims, separators=(",", ":")).encode())
            signing_input = header + b"." + payload
            signature = b64url(hmac.new(key, signing_input, hashlib.sha256).digest())
            out.write(signing_input + b"." + signature + b"\n")


if __name__ == "__main__":
    main()
