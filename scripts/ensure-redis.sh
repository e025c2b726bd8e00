#!/usr/bin/env bash
# Makes sure a Redis answers at REDIS_URL's host and port (default 127.0.0.1:6379),
# starting a throwaway one (no persistence) when none does. Installs redis-server
# from Debian's packages when it is missing.
set -euo pipefail

url="${REDIS_URL:-redis://127.0.0.1:6379}"
hostport="${url#redis://}"
hostport="${hostport%%/*}"
host="${hostport%%:*}"
port="${hostport##*:}"
[[ "$port" == "$host" ]] && port=6379

answers() {
    if command -v redis-cli >/dev/null; then
        [[ "$(redis-cli -h "$host" -p "$port" ping 2>/dev/null)" == "PONG" ]]
    else
        (exec 3<>"/dev/tcp/$host/$port" && printf 'PING\r\n' >&3 && head -c 5 <&3 | grep -q PONG) 2>/dev/null
    fi
}

if answers; then
    exit 0
fi
if ! command -v redis-server >/dev/null; then
    echo "[ensure-redis] installing redis-server" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
fi
echo "[ensure-redis] starting redis-server on $host:$port" >&2
redis-server --daemonize yes --bind "$host" --port "$port" --save "" --appendonly no \
    --dir "${TMPDIR:-/tmp}" --logfile "${TMPDIR:-/tmp}/osprey-redis-$port.log"
for _ in $(seq 1 50); do
    answers && exit 0
    sleep 0.1
done
echo "[ensure-redis] redis did not come up on $host:$port" >&2
exit 1
