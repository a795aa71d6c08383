#!/usr/bin/env bash
# Builds the Sluice container image from the statically linked binary alone
# (deploy/container/Containerfile: FROM scratch, non-root user, no shell), with podman.
# Prints the image's name, id and size, and how to run it.
#
# Usage: scripts/build-image.sh [--tag NAME] [--profile release|dev] [--binary FILE]
#   --tag NAME       image name (default sluice:<version>-<commit>, also tagged sluice:latest)
#   --profile NAME   passed to scripts/build-static.sh (default release)
#   --binary FILE    use this static binary instead of building one
#
# Environment:
#   SLUICE_PODMAN    the podman command line (default: `podman`, plus `--runtime runc` when
#                    runc is installed: crun cannot start containers on cgroup v1 hybrid hosts)
# scripts/setup.sh --only container installs podman and runc (Debian packages).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
cd "$ROOT"
TAG=""
PROFILE=release
BINARY=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --tag) TAG="${2:?--tag needs a name}"; shift 2 ;;
    --profile) PROFILE="${2:?--profile needs release or dev}"; shift 2 ;;
    --binary) BINARY="${2:?--binary needs a file}"; shift 2 ;;
    -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument $1 (see --help)" >&2; exit 64 ;;
  esac
done

# shellcheck source=scripts/podman.sh
source "$ROOT/scripts/podman.sh"

ctx="$(mktemp -d)"
trap 'rm -rf "$ctx"' EXIT
if [[ -z "$BINARY" ]]; then
  bash scripts/build-static.sh --profile "$PROFILE" --out "$ctx/sluice"
else
  cp "$BINARY" "$ctx/sluice"
fi
if file "$ctx/sluice" | grep -q "dynamically linked"; then
  echo "error: $BINARY is dynamically linked; a FROM scratch image needs the static binary" >&2
  exit 1
fi
version="$("$ctx/sluice" --version)"                  # sluice 0.1.0 (abcdef012345)
semver="$(awk '{print $2}' <<<"$version")"
commit="$(sed -n 's/.*(\(.*\)).*/\1/p' <<<"$version")"
tags=(--tag "$TAG")
if [[ -z "$TAG" ]]; then
  TAG="sluice:${semver}-${commit:-unknown}"
  tags=(--tag "$TAG" --tag sluice:latest)
fi

echo "building image $TAG ..."
$PODMAN build --quiet --file deploy/container/Containerfile \
  --label "org.opencontainers.image.version=$semver" \
  --label "org.opencontainers.image.revision=$commit" \
  --label "org.opencontainers.image.source=https://github.com/sluice-proxy/sluice" \
  "${tags[@]}" "$ctx" >/dev/null
id="$($PODMAN image inspect --format '{{.Id}}' "$TAG")"
size="$($PODMAN image inspect --format '{{.Size}}' "$TAG")"
names=()
for t in "${tags[@]}"; do [[ "$t" == --tag ]] || names+=("$t"); done
echo "image:    ${names[*]}"
echo "id:       ${id:0:12}"
echo "size:     $((size / 1024)) KiB"
echo "user:     $($PODMAN image inspect --format '{{.Config.User}}' "$TAG")"
echo "run:      $PODMAN run --rm --network host $TAG --upstream 127.0.0.1:19093"
