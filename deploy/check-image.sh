#!/usr/bin/env bash
# Builds the container image (scripts/build-image.sh) and checks it the way a platform team
# would: it starts, /healthz and /readyz answer through it, it runs as a non-root user, it
# holds the binary alone (no shell, nothing else in its file system), and SIGTERM stops it
# cleanly. Prints the image's size.
#
# Usage: deploy/check-image.sh [--profile release|dev] [--binary FILE]
#   (passed to scripts/build-image.sh; the test suite uses --profile dev, which builds fast)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
cd "$ROOT"
# shellcheck source=scripts/podman.sh
source "$ROOT/scripts/podman.sh"

tag="sluice-check:$$"
name="sluice-check-$$"
cleanup() {
  $PODMAN rm --force --time 0 "$name" >/dev/null 2>&1 || true
  $PODMAN rmi --force "$tag" >/dev/null 2>&1 || true
}
trap cleanup EXIT
bash scripts/build-image.sh --tag "$tag" "$@"

fail() { echo "image check failed: $*" >&2; $PODMAN logs "$name" 2>&1 | tail -20 >&2 || true; exit 1; }

user="$($PODMAN image inspect --format '{{.Config.User}}' "$tag")"
[[ -n "$user" && "${user%%:*}" != 0 && "${user%%:*}" != root ]] || fail "runs as '$user', not a non-root user"

# Nothing in the file system but the binary: the image's only layer, listed.
files="$($PODMAN image save --format docker-archive "$tag" 2>/dev/null | python3 -c '
import io, sys, tarfile
outer = tarfile.open(fileobj=io.BytesIO(sys.stdin.buffer.read()))
for m in outer.getmembers():
    if m.name.endswith(".tar") or m.name.endswith("/layer.tar"):
        for f in tarfile.open(fileobj=outer.extractfile(m)).getmembers():
            if not f.isdir():
                print(f.name)
' | sort -u)"
[[ "$files" == "usr/local/bin/sluice" ]] || fail "the image holds more than the binary: $files"
echo "image: non-root ($user), one file ($files)"

# No shell to exec into.
if $PODMAN run --rm --entrypoint /bin/sh "$tag" -c true >/dev/null 2>&1; then
  fail "/bin/sh ran inside the image"
fi

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
listen="$(port)"
admin="$(port)"
# Host network (loopback only); file limits within what this host allows the container.
nofile="$(ulimit -Hn)"
$PODMAN run --detach --name "$name" --network host \
  --ulimit "nofile=$nofile:$nofile" --ulimit "nproc=4096:4096" \
  "$tag" --listen "127.0.0.1:$listen" --upstream 127.0.0.1:9 \
  --admin-listen "127.0.0.1:$admin" --max-connections 1000 >/dev/null
deadline=$((SECONDS + 30))
until curl -fsS "http://127.0.0.1:$admin/healthz" >/dev/null 2>&1; do
  [[ "$($PODMAN inspect --format '{{.State.Running}}' "$name")" == true ]] || fail "the container exited"
  (( SECONDS < deadline )) || fail "/healthz did not answer within 30 s"
  sleep 0.2
done
curl -fsS "http://127.0.0.1:$admin/readyz" >/dev/null || fail "/readyz did not answer 200"
echo "image: /healthz and /readyz answer through the container"
$PODMAN stop --time 10 "$name" >/dev/null
code="$($PODMAN inspect --format '{{.State.ExitCode}}' "$name")"
[[ "$code" == 0 ]] || fail "exit code $code after SIGTERM"
echo "image: SIGTERM stops it with exit code 0"
