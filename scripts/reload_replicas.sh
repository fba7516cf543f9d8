#!/usr/bin/env bash
# POST /admin/reload to every Vigil replica and report each one's answer.
#
#   scripts/reload_replicas.sh [--token TOKEN] [--timeout SECONDS] [--all-of HOST:PORT] [URL ...]
#
# URL: a replica's base URL (http://10.0.0.5:8080) or its /admin/reload URL. --all-of HOST:PORT
# adds one URL per address HOST resolves to: behind a load balancer a request reaches one replica,
# so the fan-out goes to the replicas themselves (in docker compose the service name resolves to
# every replica of the service: --all-of vigil-replica:8080). The bearer token is --token or
# $VIGIL_API_TOKEN (the replicas' VIGIL_API_TOKEN guards /admin/).
#
# Prints one line per replica: the URL, the HTTP status and the replica's JSON answer
# ({"ok", "models": {task: version}, "errors", "pid"}). Exit status 0 only when every replica
# answered 200 and reloaded (tasks without any trained model aside); 1 when any did not
# (unreachable, refused, or a model that failed verification there: that replica keeps its
# previous model, see docs/deployment.md); 2 on usage.
set -u

token="${VIGIL_API_TOKEN:-}"
timeout=60
urls=()

usage() {
    sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

while [ $# -gt 0 ]; do
    case "$1" in
        --token) [ $# -ge 2 ] || usage; token="$2"; shift 2 ;;
        --timeout) [ $# -ge 2 ] || usage; timeout="$2"; shift 2 ;;
        --all-of)
            [ $# -ge 2 ] || usage
            host="${2%:*}"; port="${2##*:}"
            [ -n "$host" ] && [ "$port" != "$2" ] || { echo "--all-of needs HOST:PORT, not '$2'" >&2; exit 2; }
            addresses=$(getent ahostsv4 "$host" | awk '{print $1}' | sort -u)
            [ -n "$addresses" ] || { echo "--all-of: $host resolves to no address" >&2; exit 1; }
            for address in $addresses; do urls+=("http://$address:$port"); done
            shift 2 ;;
        -h|--help) usage ;;
        -*) echo "unknown option $1" >&2; usage ;;
        *) urls+=("$1"); shift ;;
    esac
done
[ ${#urls[@]} -gt 0 ] || usage

# A replica reloaded when its answer is ok, or when its only errors are tasks with no trained model
# at all (a deployment that serves some of the tasks); an artifact that failed verification or
# warm-up, or a refused manifest, is a failure.
reloaded() {
    if command -v python3 >/dev/null 2>&1; then
        printf '%s' "$1" | python3 -c '
import json, sys
try:
    answer = json.load(sys.stdin)
except ValueError:
    sys.exit(1)
errors = answer.get("errors") or {}
sys.exit(0 if answer.get("ok") is True or all(e == "no trained model" for e in errors.values()) else 1)'
    else
        printf '%s' "$1" | grep -Eq '"ok": ?true'
    fi
}

# POST {} to $1; the answer's body into $answer_file, its HTTP status on stdout. curl where there is
# one, else Python's urllib (the vigil image has Python, not curl).
post() {
    if command -v curl >/dev/null 2>&1; then
        local headers=(-H "Content-Type: application/json")
        [ -n "$token" ] && headers+=(-H "Authorization: Bearer $token")
        curl -sS -o "$answer_file" -w '%{http_code}' --max-time "$timeout" -X POST "${headers[@]}" --data '{}' "$1"
    else
        VIGIL_API_TOKEN="$token" python3 - "$1" "$answer_file" "$timeout" <<'PYTHON'
import os, sys, urllib.error, urllib.request
url, out, timeout = sys.argv[1], sys.argv[2], float(sys.argv[3])
headers = {"Content-Type": "application/json"}
if os.environ.get("VIGIL_API_TOKEN"):
    headers["Authorization"] = "Bearer " + os.environ["VIGIL_API_TOKEN"]
try:
    with urllib.request.urlopen(urllib.request.Request(url, b"{}", headers), timeout=timeout) as r:
        status, body = r.status, r.read()
except urllib.error.HTTPError as e:
    status, body = e.code, e.read()
except OSError as e:
    sys.exit(f"{type(e).__name__}: {e}")
open(out, "wb").write(body)
print(status, end="")
PYTHON
    fi
}

answer_file=$(mktemp)
trap 'rm -f "$answer_file"' EXIT
failed=0
for url in "${urls[@]}"; do
    url="${url%/}"
    case "$url" in */admin/reload) ;; *) url="$url/admin/reload" ;; esac
    # one replica at a time: each answers once its own workers have the new models
    status=$(post "$url" 2>"$answer_file.err") || status="unreachable ($(tr -d '\n' <"$answer_file.err"))"
    rm -f "$answer_file.err"
    body=$(tr -d '\n' <"$answer_file")
    if [ "$status" = 200 ] && reloaded "$body"; then
        echo "ok      $url  HTTP $status  $body"
    else
        echo "FAILED  $url  HTTP $status  $body"
        failed=1
    fi
done
exit $failed
