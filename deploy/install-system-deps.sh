#!/bin/sh
# Install the system programs the tests and the benchmark run for real:
# nginx (in front of the gateway), redis-server (shared state), wrk (load),
# openssl (a self-signed certificate for the TLS third-party test).
# Does nothing when they are already on PATH.
set -e
missing=""
for program in nginx:nginx redis-server:redis-server wrk:wrk openssl:openssl; do
    command -v "${program%%:*}" >/dev/null 2>&1 || [ -x "/usr/sbin/${program%%:*}" ] \
        || missing="$missing ${program#*:}"
done
[ -z "$missing" ] && exit 0
echo "installing:$missing"
sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $missing >/dev/null
