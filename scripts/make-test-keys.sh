#!/usr/bin/env bash
# Regenerates the throwaway keys and certificates the tests use (checked in, so
# tests need no generator): RS256 and ES256 JWT key pairs, and a test CA with a
# server certificate for localhost and 127.0.0.1. None of them protects anything.
set -euo pipefail
out="$(dirname "$0")/../crates/osprey-server/tests/data"
mkdir -p "$out"
cd "$out"
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out jwt-rs256-private.pem 2>/dev/null
openssl pkey -in jwt-rs256-private.pem -pubout -out jwt-rs256-public.pem
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out jwt-es256-private.pem
openssl pkey -in jwt-es256-private.pem -pubout -out jwt-es256-public.pem

days=36500
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days "$days" \
    -subj "/CN=Osprey test CA" -keyout tls-ca-key.pem -out tls-ca.pem \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -subj "/CN=localhost" -keyout tls-server-key.pem -out tls-server.csr 2>/dev/null
openssl x509 -req -in tls-server.csr -CA tls-ca.pem -CAkey tls-ca-key.pem -CAcreateserial \
    -days "$days" -out tls-server.pem \
    -extfile <(printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n') 2>/dev/null
rm -f tls-server.csr tls-ca.srl tls-ca-key.pem
echo "test keys written to $out"
