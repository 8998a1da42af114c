#!/usr/bin/env bash
# make run: the broker on ./data and the gateway with its dashboard, until Ctrl-C.
# Ports: broker 4150 (shard ports 4151..), admin 8222, gateway 8080.
set -euo pipefail
build=build/default
data=${NAGARE_DATA:-data}
gateway_port=${NAGARE_GATEWAY_PORT:-8080}

"$build/broker/nagared" --data "$data" &
broker=$!
stop() { kill -TERM $broker ${gateway:-} 2>/dev/null || true; wait 2>/dev/null || true; }
trap 'stop; exit 0' INT TERM
trap stop EXIT
for _ in $(seq 1 100); do
  (exec 3<>/dev/tcp/127.0.0.1/4150) 2>/dev/null && break
  sleep 0.1
done
# Development mode: no token needed (see docs/gateway.md for JWT keys).
"$build/tools/gateway/nagare-gateway" --broker nagare://127.0.0.1:4150 \
  --listen "127.0.0.1:$gateway_port" --no-auth --log-level warn &
gateway=$!
sleep 0.5
cat <<MSG

  nagared:   nagare://127.0.0.1:4150 (data in $data), metrics http://127.0.0.1:8222/metrics
  dashboard: http://127.0.0.1:$gateway_port/?project=demo&subjects=%3E
  try:       $build/tools/cli/nagare pub demo task.updated '{"id":1,"title":"hello"}'

  Ctrl-C stops both.
MSG
wait -n $broker $gateway
