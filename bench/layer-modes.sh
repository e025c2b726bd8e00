# Sourced by the layer-overhead benchmarks: one side (off or on) of a layer.
#   metrics  telemetry.metrics off against on (the access log off in both)
#   auth     no auth against an API key checked on every request plus a per-key
#            rate limit high enough never to refuse (bench/protect/auth.toml); the
#            clients send the key in both, so only the server's checks differ
#   ip-rate  no limit against a per-IP rate limit, auth off, high enough never to
#            refuse (bench/protect/ip-rate.toml)
# Sets server_env (VAR=value words for env), server_args, client_headers (for
# osprey bench) and curl_headers.
bench_key="osp_bench_key_0123456789abcdef"
layer_mode() {
    local kind=$1 mode=$2
    server_env=(OSPREY_TELEMETRY__ACCESS_LOG=false OSPREY_TELEMETRY__METRICS=true)
    server_args=()
    client_headers=()
    curl_headers=()
    case "$kind:$mode" in
        metrics:off) server_env[1]=OSPREY_TELEMETRY__METRICS=false ;;
        auth:on) server_args=(--config bench/protect/auth.toml) ;;
        ip-rate:on) server_args=(--config bench/protect/ip-rate.toml) ;;
        metrics:on | auth:off | ip-rate:off) ;;
        *)
            echo "unknown layer: $kind (metrics, auth or ip-rate)" >&2
            return 2
            ;;
    esac
    if [[ $kind == auth ]]; then
        client_headers=(--header "Authorization: Bearer $bench_key")
        curl_headers=(-H "Authorization: Bearer $bench_key")
    fi
}

# Waits up to $2 seconds for the server on port $1 to report ready (with auth on,
# the probe needs a key too).
wait_ready() {
    for _ in $(seq 1 "$(($2 * 5))"); do
        curl -sf "${curl_headers[@]}" "localhost:$1/health/ready" >/dev/null && return 0
        sleep 0.2
    done
    echo "the server on port $1 was not ready in $2 s" >&2
    return 1
}
