#!/usr/bin/env bash
# Checks the deployment examples against the binary they deploy:
# - deploy/systemd/sluice.service with `systemd-analyze verify` (its ExecStart pointed at BIN);
# - deploy/kubernetes/*.yaml with kubernetes-validate --strict (schemas bundled; no cluster);
# - the config each example carries (the ConfigMap's sluice.toml, deploy/sluice.toml) with
#   `sluice check-config`.
# Usage: deploy/check-deploy.sh BIN   (BIN: a built sluice binary)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
BIN="$(realpath "${1:?usage: deploy/check-deploy.sh path/to/sluice}")"
KV="${SLUICE_KUBERNETES_VALIDATE:-${SLUICE_CACHE:-$HOME/.cache/sluice}/venv-deploy/bin/kubernetes-validate}"
[[ -x "$KV" ]] || { echo "kubernetes-validate not found; scripts/setup.sh --only deploy installs it" >&2; exit 1; }
command -v systemd-analyze >/dev/null || { echo "systemd-analyze not found (Debian package systemd)" >&2; exit 1; }
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

sed "s#/usr/local/bin/sluice#$BIN#g" systemd/sluice.service >"$tmp/sluice.service"
# verify exits 0 on an unknown or misspelled directive (it only warns): any word from it fails.
said="$(systemd-analyze verify "$tmp/sluice.service" 2>&1)" || { echo "$said" >&2; exit 1; }
[[ -z "$said" ]] || { echo "systemd-analyze verify: $said" >&2; exit 1; }
echo "systemd unit: verified"

"$KV" --strict --quiet kubernetes/*.yaml
echo "kubernetes manifests: valid (strict, kubernetes-validate $("$KV" --version))"

python3 - "$tmp" kubernetes/*.yaml <<'PY'
import pathlib, re, sys
out = pathlib.Path(sys.argv[1])
n = 0
for f in sys.argv[2:]:
    text = pathlib.Path(f).read_text()
    # A ConfigMap's `sluice.toml: |` block: the indented lines under it.
    for m in re.finditer(r"^( *)sluice\.toml: \|\n((?:\1  .*\n|\n)+)", text, re.M):
        indent = len(m.group(1)) + 2
        body = "".join(l[indent:] + "\n" for l in m.group(2).splitlines())
        n += 1
        (out / f"configmap-{n}.toml").write_text(body)
if n == 0:
    sys.exit("no sluice.toml found in the Kubernetes examples")
PY
for f in "$tmp"/configmap-*.toml sluice.toml; do
  "$BIN" check-config "$f" >/dev/null
  echo "config $(basename "$f"): valid"
done
