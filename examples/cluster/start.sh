#!/usr/bin/env bash
# Starts a local 3-node JetStream cluster (n1.conf, n2.conf, n3.conf) and
# waits; Ctrl-C stops all three. Data goes to ./data/n1..n3 beside this
# script. Clients connect to nats://127.0.0.1:4222,4223,4224.
# Needs only Go: the server is built from the module proxy on first use.
set -euo pipefail
cd "$(dirname "$0")"
server=github.com/nats-io/nats-server/v2@v2.15.2
mkdir -p data
GOBIN="$PWD/data" go install "$server"
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; wait' EXIT INT TERM
for n in 1 2 3; do
  data/nats-server -c "n$n.conf" &
  pids+=($!)
done
wait
