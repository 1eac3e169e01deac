#!/usr/bin/env bash
# Makes the self-signed example certificate that config/tls.toml uses: ECDSA P-256 for
# localhost and 127.0.0.1, valid ten years. EXAMPLE ONLY: the private key is public.
set -euo pipefail
cd "$(dirname "$0")"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout example.key -out example.pem -days 3650 -subj "/CN=localhost" \
    -addext "subjectAltName=DNS:localhost,IP:127.0.0.1"
