#!/bin/bash
# Installs what is missing, builds smtpblast, and sends a demo mailing of 20,000 recipients
# through the built-in sink on loopback, printing the throughput.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
count=${DEMO_RECIPIENTS:-20000}

bash tools/bootstrap.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DSMTPBLAST_TESTS=OFF -DSMTPBLAST_BENCH=OFF >/dev/null
cmake --build build --target smtpblast
bin="$root/build/bin/smtpblast"

dir=$(mktemp -d /tmp/smtpblast-demo.XXXXXX)
sink_pid=""
cleanup() {
  if [[ -n $sink_pid ]]; then kill "$sink_pid" 2>/dev/null || true; wait "$sink_pid" 2>/dev/null || true; fi
  rm -rf "$dir"
}
trap cleanup EXIT

/usr/bin/python3 - "$dir" "$count" <<'PY'
import sys
d, n = sys.argv[1], int(sys.argv[2])
cities = ["Oslo", "Utrecht", "Göteborg", "Lyon", "Kraków"]
with open(f"{d}/list.csv", "w", encoding="utf-8") as f:
    f.write("email,first_name,city\n")
    for i in range(n):
        f.write(f"reader{i}@example.test,Reader{i},{cities[i % len(cities)]}\n")
body = "".join(f"Paragraph {i}: the news of the month, in some detail.\n" for i in range(30))
with open(f"{d}/news.eml", "w", encoding="utf-8") as f:
    f.write("From: The Newsletter <news@example.test>\nSubject: News for {{first_name}} in {{city}}\n"
            "MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n\n"
            "Dear {{first_name}},\n\n" + body + "\n.Lines starting with a dot survive.\n")
PY

port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$bin" sink --listen "127.0.0.1:$port" > "$dir/sink.json" 2> "$dir/sink.log" &
sink_pid=$!
for _ in $(seq 50); do
  grep -q listening "$dir/sink.log" 2>/dev/null && break
  sleep 0.1
done

echo "== sending $count messages through the built-in sink at 127.0.0.1:$port"
set +e
"$bin" send --tls none --task "$dir/demo.db" --template "$dir/news.eml" --recipients "$dir/list.csv" \
  --relay "127.0.0.1:$port" --connections 10 --per-connection 1000
rc=$?
set -e
"$bin" status --task "$dir/demo.db"
kill "$sink_pid"; wait "$sink_pid" 2>/dev/null || true; sink_pid=""
echo "sink counters: $(cat "$dir/sink.json")"
exit $rc
