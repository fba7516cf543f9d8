#!/usr/bin/env bash
# Build the Vigil image and check it the way it is meant to run: as a non-root user, with a read-only
# root filesystem (writable: the models and runs volumes and a /tmp tmpfs), all capabilities dropped,
# the port published on 127.0.0.1 only. Checks /health, /ready, one prediction, the user of the server
# process, that / cannot be written, and that the first start trained the models into the volume.
#
#   sudo scripts/container_check.sh          # as root; about 5-6 min the first time, ~1 min after
#
# Works without any container registry: the base image is bootstrapped from Debian's packages with
# mmdebstrap (from the mirror in this machine's apt configuration) and imported as $BASE_IMAGE, then
# the Dockerfile is built on it (--build-arg BASE=...). Podman/buildah read scripts/container/containers.conf
# (runc, no default ulimits, cgroupfs), /etc/containers is left as it is. Idempotent: missing tools are
# installed with apt-get, the base is built only when missing, image layers are cached, and the
# container (and, unless KEEP_VOLUMES=1, its volumes) is removed on exit, pass or fail.
#
# Environment: PORT (18080), IMAGE (localhost/vigil:check), BASE_IMAGE (localhost/vigil-base:bookworm),
# SUITE (bookworm), REBUILD_BASE=1 (bootstrap the base again), KEEP_VOLUMES=1 (keep the trained models
# for the next run, which then skips training), HEALTH_TIMEOUT (300 s: the first start trains five models),
# CA_BUNDLE (/etc/ssl/certs/ca-certificates.crt: what pip trusts during the build), LOG_DIR
# (/var/tmp/vigil-container-check: mmdebstrap's and the build's logs).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PORT="${PORT:-18080}"
IMAGE="${IMAGE:-localhost/vigil:check}"
BASE_IMAGE="${BASE_IMAGE:-localhost/vigil-base:bookworm}"
SUITE="${SUITE:-bookworm}"
HEALTH_TIMEOUT="${HEALTH_TIMEOUT:-300}"
NAME="vigil-check-$$"
MODELS_VOLUME="vigil-check-models"
RUNS_VOLUME="vigil-check-runs"
BASE_PACKAGES="python3,python3-venv,python3-pip,ca-certificates,libgomp1"
URL="http://127.0.0.1:${PORT}"
CA_BUNDLE="${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"
LOG_DIR="${LOG_DIR:-/var/tmp/vigil-container-check}"
BASE_LOG="$LOG_DIR/base.log"
BUILD_LOG="$LOG_DIR/build.log"
export CONTAINERS_CONF="$ROOT/scripts/container/containers.conf"

START=$SECONDS
RESULTS=()
FAILED=0
log() { printf '[container_check %4ds] %s\n' "$((SECONDS - START))" "$*"; }
pass() { RESULTS+=("PASS  $1"); log "PASS  $1"; }
fail() { RESULTS+=("FAIL  $1"); log "FAIL  $1"; FAILED=1; }

summary() {
    echo
    echo "==== container check: $IMAGE on $URL ($((SECONDS - START)) s) ===="
    local line
    for line in "${RESULTS[@]+"${RESULTS[@]}"}"; do echo "  $line"; done
    if [[ $FAILED -eq 0 && ${#RESULTS[@]} -gt 0 ]]; then echo "RESULT: PASS"; else echo "RESULT: FAIL"; fi
}

cleanup() {
    local status=$?
    if podman container exists "$NAME" 2>/dev/null; then
        if [[ $FAILED -ne 0 || $status -ne 0 ]]; then
            echo "---- last container log lines ----"
            podman logs --tail 40 "$NAME" 2>&1 || true
        fi
        podman rm -f -t 5 "$NAME" >/dev/null 2>&1 || true
    fi
    if [[ "${KEEP_VOLUMES:-0}" != 1 ]]; then
        podman volume rm -f "$MODELS_VOLUME" "$RUNS_VOLUME" >/dev/null 2>&1 || true
    fi
    [[ -n "${BASE_TMP:-}" ]] && rm -rf "$BASE_TMP"
    [[ $status -ne 0 && $FAILED -eq 0 ]] && RESULTS+=("FAIL  aborted (exit status $status)") && FAILED=1
    summary
    if [[ $FAILED -ne 0 ]]; then exit 1; fi
    exit 0
}
trap cleanup EXIT

if [[ $(id -u) -ne 0 ]]; then
    echo "container_check: run as root (installs packages, rootful podman)" >&2
    exit 1
fi
mkdir -p "$LOG_DIR"

# ---- tools --------------------------------------------------------------------------------------
missing=()
for tool in podman:podman buildah:buildah runc:runc mmdebstrap:mmdebstrap curl:curl newuidmap:uidmap \
            fuse-overlayfs:fuse-overlayfs slirp4netns:slirp4netns; do
    command -v "${tool%%:*}" >/dev/null 2>&1 || missing+=("${tool##*:}")
done
if [[ ${#missing[@]} -gt 0 ]]; then
    log "installing ${missing[*]}"
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
fi
log "$(podman --version), $(buildah --version | cut -d' ' -f1-3), runtime $(podman info --format '{{.Host.OCIRuntime.Name}}')"

# ---- base image: Debian from Debian's packages ----------------------------------------------------
debian_sources() {
    # the machine's own Debian mirrors for SUITE, SUITE-updates and SUITE-security, as apt sees them
    apt-get indextargets --format '$(REPO_URI) $(RELEASE) $(COMPONENT) $(IDENTIFIER) $(ORIGIN)' \
        | awk -v s="$SUITE" '$3 == "main" && $4 == "Packages" && $5 == "Debian" \
                             && ($2 == s || $2 == s "-updates" || $2 == s "-security") \
                             { print "deb " $1 " " $2 " main" }' | sort -u
}
if [[ "${REBUILD_BASE:-0}" == 1 ]] || ! podman image exists "$BASE_IMAGE"; then
    mapfile -t sources < <(debian_sources)
    if [[ ${#sources[@]} -eq 0 ]]; then
        apt-get update -q
        mapfile -t sources < <(debian_sources)
    fi
    if [[ ${#sources[@]} -eq 0 ]]; then
        fail "no Debian $SUITE mirror in this machine's apt configuration"
        exit 1
    fi
    log "bootstrapping $BASE_IMAGE ($SUITE minbase + $BASE_PACKAGES) from: ${sources[*]}"
    BASE_TMP="$(mktemp -d /var/tmp/vigil-base.XXXXXX)"
    merged_usr=()
    [[ -d /usr/share/mmdebstrap/hooks/merged-usr ]] && merged_usr=(--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr)
    if ! mmdebstrap --variant=minbase "${merged_usr[@]}" --include="$BASE_PACKAGES" \
            --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
            --dpkgopt='path-exclude=/usr/share/locale/*' \
            "$SUITE" "$BASE_TMP/base.tar" "${sources[@]}" >"$BASE_LOG" 2>&1; then
        tail -n 30 "$BASE_LOG"
        fail "bootstrapping the base image (see $BASE_LOG)"
        exit 1
    fi
    podman import --quiet --change 'CMD ["/bin/bash"]' "$BASE_TMP/base.tar" "$BASE_IMAGE" >/dev/null
    rm -rf "$BASE_TMP"
    BASE_TMP=""
    log "base image $BASE_IMAGE ready"
else
    log "base image $BASE_IMAGE present (REBUILD_BASE=1 to bootstrap it again)"
fi

# ---- the image ------------------------------------------------------------------------------------
# chroot isolation and the host's network: pip reaches PyPI during the build (nothing else is fetched).
# The host's CA bundle is mounted over the image's for the RUN steps only (it is not committed), so pip
# trusts whatever this machine trusts, e.g. a TLS-inspecting egress proxy's CA.
ca_mount=()
[[ -f "$CA_BUNDLE" ]] && ca_mount=(--volume "$CA_BUNDLE:/etc/ssl/certs/ca-certificates.crt:ro")
log "building $IMAGE on $BASE_IMAGE (log: $BUILD_LOG)"
if ! buildah build --layers --isolation chroot --network host "${ca_mount[@]}" --build-arg "BASE=$BASE_IMAGE" \
        -t "$IMAGE" -f "$ROOT/Dockerfile" "$ROOT" >"$BUILD_LOG" 2>&1; then
    tail -n 30 "$BUILD_LOG"
    fail "image build (see $BUILD_LOG)"
    exit 1
fi
pass "image builds on $BASE_IMAGE ($(podman image inspect --format '{{.Size}}' "$IMAGE" | awk '{printf "%.0f MB", $1/1e6}'))"

# ---- run it ---------------------------------------------------------------------------------------
if curl -s -o /dev/null --max-time 2 "$URL/" 2>/dev/null; then
    fail "port $PORT on 127.0.0.1 is already in use (set PORT=...)"
    exit 1
fi
if [[ "${KEEP_VOLUMES:-0}" != 1 ]]; then
    podman volume rm -f "$MODELS_VOLUME" "$RUNS_VOLUME" >/dev/null 2>&1 || true
fi
log "starting $NAME (read-only root, /tmp tmpfs, volumes $MODELS_VOLUME and $RUNS_VOLUME, 127.0.0.1:$PORT)"
podman run -d --name "$NAME" \
    --read-only --read-only-tmpfs=false --tmpfs /tmp:rw,nosuid,nodev,size=512m,mode=1777 \
    --cap-drop=ALL --security-opt=no-new-privileges \
    -v "$MODELS_VOLUME:/app/models" -v "$RUNS_VOLUME:/app/runs" \
    -p "127.0.0.1:$PORT:8080" "$IMAGE" >/dev/null
started=$SECONDS

healthy=0
while (( SECONDS - started < HEALTH_TIMEOUT )); do
    if [[ "$(podman inspect --format '{{.State.Running}}' "$NAME" 2>/dev/null)" != true ]]; then
        break
    fi
    if curl -fsS --max-time 5 "$URL/health" >/dev/null 2>&1; then
        healthy=1
        break
    fi
    sleep 3
done
if [[ $healthy -ne 1 ]]; then
    fail "/health did not answer within ${HEALTH_TIMEOUT} s (container running: $(podman inspect --format '{{.State.Running}}' "$NAME" 2>/dev/null || echo gone))"
    exit 1
fi

# ---- checks ---------------------------------------------------------------------------------------
health="$(curl -fsS --max-time 10 "$URL/health")"
if grep -q '"status": *"ok"' <<<"$health"; then
    pass "GET /health answered $health after $((SECONDS - started)) s (this includes training the defaults into an empty models volume)"
else
    fail "GET /health: $health"
fi

# /ready: every task's model loaded, verified and warmed (a worker may still be warming: retry a little)
ready_code=000
for _ in $(seq 1 20); do
    ready_code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 "$URL/ready" || true)"
    [[ "$ready_code" == 200 ]] && break
    sleep 2
done
if [[ "$ready_code" == 200 ]]; then
    pass "GET /ready 200: every task's model loaded and warmed"
else
    fail "GET /ready answered $ready_code: $(curl -s --max-time 10 "$URL/ready" | head -c 400)"
fi

body='[{"class": "moto", "length": 2100, "width": 780}, {"class": "human", "length": 4200, "width": 300}]'
answer="$(curl -s --max-time 30 -w '\n%{http_code}' -H 'Content-Type: application/json' -d "$body" "$URL/predict/iot-anomaly" || true)"
code="${answer##*$'\n'}"
answer="${answer%$'\n'*}"
if [[ "$code" == 200 ]] && grep -q '"label"' <<<"$answer" && grep -q '"probability"' <<<"$answer"; then
    pass "POST /predict/iot-anomaly 200: $(head -c 240 <<<"$answer")"
else
    fail "POST /predict/iot-anomaly answered $code: $(head -c 400 <<<"$answer")"
fi

exec_uid="$(podman exec "$NAME" id -u)"
server_uid="$(podman exec "$NAME" awk '/^Uid:/ { print $2 }' /proc/1/status)"
server_cmd="$(podman exec "$NAME" cat /proc/1/cmdline | tr '\0' ' ' | head -c 120)"
if [[ "$exec_uid" != 0 && "$server_uid" != 0 ]]; then
    pass "not root: id -u = $exec_uid, server process (pid 1: $server_cmd) uid = $server_uid"
else
    fail "runs as root: id -u = $exec_uid, pid 1 uid = $server_uid"
fi

# even root inside cannot write to / (it is the filesystem that refuses, not a permission)
if podman exec "$NAME" touch /vigil-write-probe 2>/dev/null \
        || podman exec --user 0 "$NAME" touch /vigil-write-probe 2>/dev/null \
        || podman exec "$NAME" touch /app/src/vigil-write-probe 2>/dev/null; then
    fail "the root filesystem is writable"
else
    erofs="$(podman exec --user 0 "$NAME" touch /vigil-write-probe 2>&1 || true)"
    if grep -qi 'read-only' <<<"$erofs"; then
        pass "writing to / fails, as root too: $(tr -d '\r' <<<"$erofs" | tail -1)"
    else
        fail "writing to / fails, but not because it is read-only: $erofs"
    fi
fi

if [[ "$(podman inspect --format '{{.HostConfig.ReadonlyRootfs}}' "$NAME")" == true ]] \
        && podman exec "$NAME" sh -c 'touch /app/models/.probe /app/runs/.probe /tmp/.probe && rm /app/models/.probe /app/runs/.probe /tmp/.probe'; then
    pass "read-only root; writable only: /app/models, /app/runs (volumes), /tmp (tmpfs)"
else
    fail "volumes or /tmp not writable, or the root filesystem not read-only"
fi

trained="$(podman exec "$NAME" sh -c 'ls /app/models' | tr '\n' ' ')"
if [[ -n "$trained" ]]; then
    pass "first start wrote the models into the $MODELS_VOLUME volume: $trained"
else
    fail "no models in /app/models"
fi

published="$(podman port "$NAME" | tr '\n' ' ')"
if [[ "$published" =~ ^8080/tcp\ -\>\ 127\.0\.0\.1:$PORT\ *$ ]]; then
    pass "port published on 127.0.0.1 only: $published"
else
    fail "port publishing: $published"
fi
