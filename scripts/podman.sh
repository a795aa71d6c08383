# Sourced by the scripts that build or run Sluice's container image: sets PODMAN, the podman
# command line to use. SLUICE_PODMAN overrides it. Otherwise plain `podman`, plus
# `--runtime runc` when runc is installed (crun refuses to start containers on hosts with
# cgroup v1 or hybrid hierarchies, and runc is Debian's other runtime for podman).
if [[ -n "${SLUICE_PODMAN:-}" ]]; then
  PODMAN="$SLUICE_PODMAN"
else
  command -v podman >/dev/null 2>&1 \
    || { echo "podman not found; scripts/setup.sh --only container installs it" >&2; exit 1; }
  PODMAN="podman"
  if command -v runc >/dev/null 2>&1; then
    PODMAN="$PODMAN --runtime runc"
  fi
fi
