#!/bin/sh
# Runs h2spec (github.com/summerwind/h2spec, not a Debian package) against a rampart
# built in this tree, over TLS with ALPN h2 and in clear with prior knowledge. Not part
# of `make check`: t/integration/test_h2_conformance.py holds the cases that matter as
# raw-frame tests. Usage: t/h2spec.sh /path/to/h2spec
#
# Building h2spec offline on Debian 12 (Go and its dependencies as Debian packages):
#   apt-get install golang-go golang-golang-x-net-dev golang-github-spf13-cobra-dev \
#       golang-github-fatih-color-dev
#   mkdir -p $GP/src/github.com/summerwind && cp -r h2spec $GP/src/github.com/summerwind/
#   cd $GP/src/github.com/summerwind/h2spec &&
#       GO111MODULE=off GOPATH=$GP:/usr/share/gocode go build -o h2spec ./cmd/h2spec
#
# The locations proxy to t/integration/backend.py, so that a request body is read
# before the answer (h2spec sends frames after a request's HEADERS and expects the
# stream still open). In clear, 3.5/2 (an invalid preface) is answered as HTTP/1.1 with
# a 400: a cleartext port with http2 serves both, so a wrong preface is an HTTP/1 request.
set -eu
H2SPEC=${1:?usage: $0 /path/to/h2spec}
SRC=$(cd "$(dirname "$0")/.." && pwd)
BIN=${RAMPART_BIN:-$SRC/rampart}
DIR=$(mktemp -d)
trap 'kill $RAMPART $BACKEND 2>/dev/null; wait 2>/dev/null; rm -rf "$DIR"' EXIT
mkdir -p "$DIR/logs"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
BPORT=$(free_port)
TLS=$(free_port)
CLEAR=$(free_port)
python3 "$SRC/t/integration/backend.py" --port "$BPORT" >"$DIR/backend.out" 2>&1 &
BACKEND=$!
RAMPART=
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
    -subj /CN=localhost -keyout "$DIR/key.pem" -out "$DIR/cert.pem" 2>/dev/null
cat >"$DIR/rampart.conf" <<EOF
worker_processes 1;
error_log logs/error.log info;
pid logs/rampart.pid;
http {
    server {
        listen 127.0.0.1:$TLS ssl http2;
        ssl_certificate cert.pem;
        ssl_certificate_key key.pem;
        location / { proxy_pass http://127.0.0.1:$BPORT; }
    }
    server {
        listen 127.0.0.1:$CLEAR http2;
        location / { proxy_pass http://127.0.0.1:$BPORT; }
    }
}
EOF
"$BIN" -p "$DIR" -c rampart.conf &
RAMPART=$!
for i in $(seq 100); do [ -s "$DIR/logs/rampart.pid" ] && break; sleep 0.1; done
sleep 0.5
echo "== TLS, ALPN h2"
"$H2SPEC" -t -k -h 127.0.0.1 -p "$TLS" -o 2 | tail -n 40
echo "== cleartext, prior knowledge"
"$H2SPEC" -h 127.0.0.1 -p "$CLEAR" -o 2 | tail -n 40
