#!/usr/bin/env bash
# A new private key for a JWS algorithm, made by OpenSSL, and its public key, for the benchmark's
# public-key rows (bench/run.sh, bench/callgrind.py).
#
#   bash bench/openssl_key.sh ALGORITHM PRIVATE.pem PUBLIC.pem
#
# ALGORITHM: ES256, ES384, EdDSA (Ed25519), or RS*/PS* (RSA 2048). PRIVATE.pem is PKCS#8, as
# handstamp's signing_key_file takes it; PUBLIC.pem is SPKI, as `openssl pkey -pubout` writes it.
set -euo pipefail
[ $# -eq 3 ] || { echo "usage: bash bench/openssl_key.sh ALGORITHM PRIVATE.pem PUBLIC.pem" >&2; exit 2; }
case $1 in
  ES256) args=(-algorithm EC -pkeyopt ec_paramgen_curve:P-256) ;;
  ES384) args=(-algorithm EC -pkeyopt ec_paramgen_curve:P-384) ;;
  EdDSA) args=(-algorithm ED25519) ;;
  RS256 | RS384 | RS512 | PS256 | PS384 | PS512) args=(-algorithm RSA -pkeyopt rsa_keygen_bits:2048) ;;
  *) echo "openssl_key.sh: no key kind for algorithm $1" >&2; exit 2 ;;
esac
openssl genpkey "${args[@]}" -out "$2" 2>/dev/null
openssl pkey -pubout -in "$2" -out "$3"
