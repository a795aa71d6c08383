#!/usr/bin/env bash
# Installs everything Sluice's integration tests and benchmarks need to run a
# real Apache Kafka broker and real clients (Java kafka-clients, librdkafka via
# Python confluent-kafka, Go franz-go), and an OpenTelemetry Collector built from
# its Go modules (integration-tests/collector).
#
# Idempotent and safe to re-run: every step is keyed on a version or a content
# hash and is skipped when its output is already in the cache. Build outputs
# never go into the clone; they live in ${SLUICE_CACHE:-$HOME/.cache/sluice}.
#
# Usage: scripts/setup.sh [--skip STEP[,STEP...]] [--only STEP[,STEP...]]
#   STEP is one of: apt, prometheus, chromium, container, kafka, java, python, go,
#   collector, fuzz, deploy
#   (env.sh is always written at the end.)
#
# Environment:
#   SLUICE_CACHE          cache root (default $HOME/.cache/sluice)
#   SLUICE_PYTHON         interpreter used to create the venv (default python3)
#   SLUICE_SKIP_APT=1     same as --skip apt,prometheus,chromium,container
#
# After it succeeds, `source "$SLUICE_CACHE/env.sh"` exports:
#   SLUICE_CACHE SLUICE_KAFKA_LIBS SLUICE_JAVA_CLIENT SLUICE_PY_CLIENT
#   SLUICE_GO_CLIENT SLUICE_KAFKA_VERSION SLUICE_OTELCOL SLUICE_KUBERNETES_VALIDATE
# (nothing that names this checkout: the cache is shared by every clone, and each starts its
# own integration-tests/scripts/kafka-broker.sh)
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
SLUICE_CACHE="${SLUICE_CACHE:-$HOME/.cache/sluice}"
CONFLUENT_KAFKA_VERSION="2.16.1"
KUBERNETES_VALIDATE_VERSION="1.37.0"

POM="$REPO_ROOT/integration-tests/kafka/pom.xml"
KAFKA_VERSION="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$POM" | head -n1)"
[[ -n "$KAFKA_VERSION" ]] || { echo "setup: cannot read kafka.version from $POM" >&2; exit 1; }
KAFKA_HOME="$SLUICE_CACHE/kafka-$KAFKA_VERSION"
KAFKA_LIBS="$KAFKA_HOME/libs"
BIN_DIR="$SLUICE_CACHE/bin"

ONLY=""
SKIP=""
[[ "${SLUICE_SKIP_APT:-0}" == 1 ]] && SKIP="apt,prometheus,chromium,container"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --only) ONLY="${2:?--only needs a value}"; shift 2 ;;
    --skip) SKIP="${SKIP:+$SKIP,}${2:?--skip needs a value}"; shift 2 ;;
    -h|--help) sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "setup: unknown argument: $1 (try --help)" >&2; exit 2 ;;
  esac
done

want() {
  local step="$1"
  if [[ -n "$ONLY" && ",$ONLY," != *",$step,"* ]]; then return 1; fi
  if [[ -n "$SKIP" && ",$SKIP," == *",$step,"* ]]; then return 1; fi
  return 0
}

say() { echo "setup: $*"; }
FAILED=()
fail_step() { echo "setup: ERROR: $*" >&2; FAILED+=("$1"); }

# venv_install STEP VENV LOG PACKAGE...: a fresh venv at VENV with PACKAGEs from PyPI; on
# failure the venv is removed and STEP is marked failed.
venv_install() {
  local step="$1" venv="$2" log="$3"
  shift 3
  rm -rf "$venv"
  if "${SLUICE_PYTHON:-python3}" -m venv "$venv" >"$log" 2>&1 \
      && "$venv/bin/python" -m pip install -q --disable-pip-version-check "$@" >>"$log" 2>&1; then
    say "$step venv ... done"
  else
    tail -n 20 "$log" >&2 || true
    rm -rf "$venv"
    fail_step "$step" "venv / pip install $* failed (see $log)"
  fi
}

sha256_of() { cat "$@" | sha256sum | cut -c1-64; }

mkdir -p "$SLUICE_CACHE" "$BIN_DIR"

# Serialize concurrent runs sharing one cache (e.g. parallel CI jobs).
if command -v flock >/dev/null 2>&1; then
  exec 9>"$SLUICE_CACHE/.setup.lock"
  flock 9
fi

# ---------------------------------------------------------------------------
# Debian packages
# ---------------------------------------------------------------------------
SUDO=""
if [[ $(id -u) -ne 0 ]]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi
fi

APT_UPDATED=0
apt_install() {
  # apt_install PKG... ; runs `apt-get update` at most once per setup run.
  if [[ $(id -u) -ne 0 && -z "$SUDO" ]]; then
    echo "setup: not root and no sudo; cannot install: $*" >&2
    return 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  if [[ $APT_UPDATED -eq 0 ]]; then
    $SUDO apt-get update -qq >/dev/null || return 1
    APT_UPDATED=1
  fi
  $SUDO apt-get install -y -qq --no-install-recommends "$@" >"$SLUICE_CACHE/apt-install.log" 2>&1 || {
    tail -n 20 "$SLUICE_CACHE/apt-install.log" >&2
    return 1
  }
}

# command -> Debian package
declare -A APT_CMDS=(
  [kcat]=kcat
  [haproxy]=haproxy
  [iperf3]=iperf3
  [tcpdump]=tcpdump
  [tshark]=tshark
  [systemd-analyze]=systemd
  [perf]=linux-perf
)
# haproxy lives in /usr/sbin, tcpdump too; non-root PATHs may lack sbin.
have_cmd() {
  command -v "$1" >/dev/null 2>&1 || [[ -x "/usr/sbin/$1" || -x "/sbin/$1" ]]
}

if want apt; then
  missing=()
  for cmd in kcat haproxy iperf3 tcpdump tshark systemd-analyze perf; do
    have_cmd "$cmd" || missing+=("${APT_CMDS[$cmd]}")
  done
  if [[ ${#missing[@]} -eq 0 ]]; then
    say "debian packages (kcat haproxy iperf3 tcpdump tshark systemd linux-perf) ... present"
  else
    say "debian packages: installing ${missing[*]} ..."
    if [[ " ${missing[*]} " == *" tshark "* ]]; then
      echo "wireshark-common wireshark-common/install-setuid boolean false" \
        | $SUDO debconf-set-selections 2>/dev/null || true
    fi
    if apt_install "${missing[@]}"; then
      say "debian packages ... installed"
    else
      fail_step apt "apt-get install ${missing[*]} failed (see $SLUICE_CACHE/apt-install.log)"
    fi
  fi
fi

# Prometheus: promtool checks deploy/, the server runs in integration-tests/tests/prometheus_live.rs
# and beside `scripts/demo.sh --observe`. Only the binaries are used (the package's own service,
# if the host runs one, is not).
if want prometheus; then
  if have_cmd promtool && have_cmd prometheus; then
    say "prometheus (server, promtool) ... present"
  else
    say "prometheus (server, promtool): installing ..."
    if apt_install prometheus; then
      say "prometheus (server, promtool) ... installed"
    else
      fail_step prometheus "apt-get install prometheus failed (see $SLUICE_CACHE/apt-install.log)"
    fi
  fi
fi

# Chromium, headless: the screenshot of the Prometheus graph page in prometheus_live.rs.
if want chromium; then
  if have_cmd chromium; then
    say "chromium ... present"
  else
    say "chromium: installing ..."
    if apt_install chromium; then
      say "chromium ... installed"
    else
      fail_step chromium "apt-get install chromium failed (see $SLUICE_CACHE/apt-install.log)"
    fi
  fi
fi

# The static binary and its container image (scripts/build-static.sh, deploy/check-image.sh):
# musl-gcc for C dependencies, podman, and runc as its runtime (crun cannot start containers on
# cgroup v1/hybrid hosts such as this project's CI).
if want container; then
  missing=()
  have_cmd musl-gcc || missing+=(musl-tools)
  have_cmd podman || missing+=(podman)
  have_cmd runc || missing+=(runc)
  if [[ ${#missing[@]} -eq 0 ]]; then
    say "musl-gcc, podman, runc ... present"
  else
    say "container tools: installing ${missing[*]} ..."
    if apt_install "${missing[@]}"; then
      say "container tools ... installed"
    else
      fail_step container "apt-get install ${missing[*]} failed (see $SLUICE_CACHE/apt-install.log)"
    fi
  fi
fi

# ---------------------------------------------------------------------------
# Kafka broker + tools jars (Maven Central, default ~/.m2)
# ---------------------------------------------------------------------------
KAFKA_MARKER="$KAFKA_HOME/.complete"
if want kafka; then
  POM_HASH="$(sha256_of "$POM")"
  if [[ -f "$KAFKA_MARKER" && "$(cat "$KAFKA_MARKER")" == "$POM_HASH" && -d "$KAFKA_LIBS" ]]; then
    say "kafka $KAFKA_VERSION jars ... cached"
  else
    say "kafka $KAFKA_VERSION jars: resolving with maven ..."
    tmp="$KAFKA_HOME/libs.tmp.$$"
    rm -rf "$tmp"
    mkdir -p "$KAFKA_HOME"
    if (cd "$(dirname "$POM")" && mvn -q -B -f "$POM" dependency:copy-dependencies \
          -DoutputDirectory="$tmp" >"$KAFKA_HOME/mvn.log" 2>&1) \
        && ls "$tmp"/kafka_2.13-"$KAFKA_VERSION".jar >/dev/null 2>&1; then
      rm -rf "$KAFKA_LIBS"
      mv "$tmp" "$KAFKA_LIBS"
      echo "$POM_HASH" >"$KAFKA_MARKER"
      say "kafka $KAFKA_VERSION jars ... done ($(ls "$KAFKA_LIBS" | wc -l) jars)"
    else
      rm -rf "$tmp"
      tail -n 30 "$KAFKA_HOME/mvn.log" >&2 || true
      fail_step kafka "maven dependency resolution failed (see $KAFKA_HOME/mvn.log)"
    fi
  fi
fi

# ---------------------------------------------------------------------------
# Java client (compiled against the kafka-clients jar resolved above)
# ---------------------------------------------------------------------------
JAVA_SRC="$REPO_ROOT/integration-tests/clients/java/SluiceClient.java"
JAVA_LAUNCHER="$BIN_DIR/sluice-java-client"
if want java; then
  JAVA_HASH="$(sha256_of "$JAVA_SRC" | cut -c1-12)"
  JAVA_DIR="$SLUICE_CACHE/clients/java-$JAVA_HASH"
  if [[ ! -f "$KAFKA_MARKER" ]]; then
    fail_step java "kafka jars are missing; run the kafka step first"
  elif [[ -f "$JAVA_DIR/.complete" ]]; then
    say "java client ($JAVA_HASH) ... cached"
  else
    say "java client ($JAVA_HASH): compiling ..."
    tmp="$JAVA_DIR.tmp.$$"
    rm -rf "$tmp"
    mkdir -p "$tmp/classes" "$tmp/libs"
    # Only the client's own runtime jars: a short classpath starts faster.
    for pat in 'kafka-clients-*.jar' 'lz4-java-*.jar' 'snappy-java-*.jar' 'zstd-jni-*.jar' \
               'slf4j-api-*.jar' 'log4j-api-*.jar' 'log4j-core-*.jar' 'log4j-slf4j-impl-*.jar'; do
      for jar in "$KAFKA_LIBS"/$pat; do
        [[ -e "$jar" ]] && ln -s "$jar" "$tmp/libs/"
      done
    done
    cat >"$tmp/log4j2.properties" <<'EOF'
status = error
appender.stderr.type = Console
appender.stderr.name = STDERR
appender.stderr.target = SYSTEM_ERR
appender.stderr.layout.type = PatternLayout
appender.stderr.layout.pattern = [%d{HH:mm:ss,SSS}] %p %c{1}: %m%n
rootLogger.level = warn
rootLogger.appenderRef.stderr.ref = STDERR
EOF
    if javac -nowarn -encoding UTF-8 --release 17 -d "$tmp/classes" -cp "$tmp/libs/*" "$JAVA_SRC" \
        >"$tmp/javac.log" 2>&1; then
      touch "$tmp/.complete"
      rm -rf "$JAVA_DIR"
      mv "$tmp" "$JAVA_DIR"
      say "java client ($JAVA_HASH) ... done"
    else
      cat "$tmp/javac.log" >&2
      rm -rf "$tmp"
      fail_step java "javac failed"
    fi
  fi
  if [[ -f "$JAVA_DIR/.complete" ]]; then
    # The launcher of this source, in its hash directory (the test harness runs its own
    # checkout's client from there, whichever clone setup.sh last ran in), and a copy where
    # env.sh points.
    cat >"$JAVA_DIR/sluice-java-client.tmp" <<EOF
#!/usr/bin/env bash
# Generated by scripts/setup.sh: Sluice test client (Java kafka-clients $KAFKA_VERSION).
exec java -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Xshare:auto \\
  -Dlog4j2.configurationFile="$JAVA_DIR/log4j2.properties" \\
  \${SLUICE_JAVA_CLIENT_OPTS:-} \\
  -cp "$JAVA_DIR/classes:$JAVA_DIR/libs/*" SluiceClient "\$@"
EOF
    chmod +x "$JAVA_DIR/sluice-java-client.tmp"
    mv "$JAVA_DIR/sluice-java-client.tmp" "$JAVA_DIR/sluice-java-client"
    cp "$JAVA_DIR/sluice-java-client" "$JAVA_LAUNCHER.tmp"
    mv "$JAVA_LAUNCHER.tmp" "$JAVA_LAUNCHER"
  fi
fi

# ---------------------------------------------------------------------------
# Python client (confluent-kafka wheel bundles librdkafka)
# ---------------------------------------------------------------------------
VENV="$SLUICE_CACHE/venv"
PY_LAUNCHER="$BIN_DIR/sluice-py-client"
PY_SRC="$REPO_ROOT/integration-tests/clients/python/sluice_client.py"
if want python; then
  have_ver="$("$VENV/bin/python" -c 'import confluent_kafka as c; v = c.version(); print(v[0] if isinstance(v, tuple) else v)' 2>/dev/null || true)"
  if [[ "$have_ver" == "$CONFLUENT_KAFKA_VERSION" ]]; then
    say "python venv (confluent-kafka $CONFLUENT_KAFKA_VERSION) ... cached"
  else
    say "python venv (confluent-kafka $CONFLUENT_KAFKA_VERSION): installing ..."
    venv_install python "$VENV" "$SLUICE_CACHE/venv.log" "confluent-kafka==$CONFLUENT_KAFKA_VERSION"
  fi
  if [[ -x "$VENV/bin/python" ]]; then
    # Regenerated every run: it embeds the path of the current clone, which the test harness
    # replaces with its own checkout's (SLUICE_PY_CLIENT_SRC).
    cat >"$PY_LAUNCHER.tmp" <<EOF
#!/bin/sh
# Generated by scripts/setup.sh: Sluice test client (confluent-kafka $CONFLUENT_KAFKA_VERSION).
exec "$VENV/bin/python" -u "\${SLUICE_PY_CLIENT_SRC:-$PY_SRC}" "\$@"
EOF
    chmod +x "$PY_LAUNCHER.tmp"
    mv "$PY_LAUNCHER.tmp" "$PY_LAUNCHER"
  fi
fi

# ---------------------------------------------------------------------------
# Go client (franz-go)
# ---------------------------------------------------------------------------
GO_DIR="$REPO_ROOT/integration-tests/clients/go"
GO_BIN="$BIN_DIR/sluice-go-client"
if want go; then
  if ! command -v go >/dev/null 2>&1; then
    fail_step go "go toolchain not found"
  else
    # Keyed on the sources (go.mod, go.sum, then *.go in byte order: the test harness finds
    # its own checkout's client by the same hash), rebuilt when the toolchain changes, and
    # copied where env.sh points.
    # shellcheck disable=SC2046 # file names without spaces, by design
    go_src_hash="$( (cd "$GO_DIR" && cat go.mod go.sum $(LC_ALL=C ls -- *.go)) | sha256sum | cut -c1-12)"
    go_ver="$(go version)"
    GO_CLIENT_DIR="$SLUICE_CACHE/clients/go-$go_src_hash"
    if [[ -x "$GO_CLIENT_DIR/sluice-go-client" \
          && "$(cat "$GO_CLIENT_DIR/.go-version" 2>/dev/null)" == "$go_ver" ]]; then
      say "go client ($go_src_hash) ... cached"
    else
      say "go client ($go_src_hash): building ..."
      mkdir -p "$GO_CLIENT_DIR"
      if (cd "$GO_DIR" && go build -mod=readonly -buildvcs=false -trimpath \
            -o "$GO_CLIENT_DIR/sluice-go-client.tmp" . ) >"$SLUICE_CACHE/go-build.log" 2>&1; then
        mv "$GO_CLIENT_DIR/sluice-go-client.tmp" "$GO_CLIENT_DIR/sluice-go-client"
        echo "$go_ver" >"$GO_CLIENT_DIR/.go-version"
        say "go client ... done"
      else
        cat "$SLUICE_CACHE/go-build.log" >&2
        rm -f "$GO_CLIENT_DIR/sluice-go-client.tmp"
        fail_step go "go build failed"
      fi
    fi
    if [[ -x "$GO_CLIENT_DIR/sluice-go-client" ]]; then
      cp "$GO_CLIENT_DIR/sluice-go-client" "$GO_BIN.tmp"
      mv "$GO_BIN.tmp" "$GO_BIN"
    fi
  fi
fi

# ---------------------------------------------------------------------------
# OpenTelemetry Collector (otelcol-sluice: OTLP receiver, batch processor, debug, file and
# Prometheus remote-write exporters; every collector module at one release, see its go.mod)
# ---------------------------------------------------------------------------
OTELCOL_DIR="$REPO_ROOT/integration-tests/collector"
OTELCOL_BIN="$BIN_DIR/otelcol-sluice"
if want collector; then
  if ! command -v go >/dev/null 2>&1; then
    fail_step collector "go toolchain not found"
  else
    otelcol_hash="$( { (cd "$OTELCOL_DIR" && cat go.mod go.sum ./*.go); go version; } | sha256sum | cut -c1-64)"
    if [[ -x "$OTELCOL_BIN" && -f "$OTELCOL_BIN.hash" && "$(cat "$OTELCOL_BIN.hash")" == "$otelcol_hash" ]]; then
      say "collector (${otelcol_hash:0:12}) ... cached"
    else
      say "collector (${otelcol_hash:0:12}): building ... (first time takes a few minutes)"
      started=$SECONDS
      if (cd "$OTELCOL_DIR" && go build -mod=readonly -buildvcs=false -trimpath -o "$OTELCOL_BIN.tmp" . ) \
          >"$SLUICE_CACHE/collector-build.log" 2>&1; then
        mv "$OTELCOL_BIN.tmp" "$OTELCOL_BIN"
        echo "$otelcol_hash" >"$OTELCOL_BIN.hash"
        say "collector ... done in $((SECONDS - started))s"
      else
        cat "$SLUICE_CACHE/collector-build.log" >&2
        rm -f "$OTELCOL_BIN.tmp"
        fail_step collector "go build of integration-tests/collector failed (see $SLUICE_CACHE/collector-build.log)"
      fi
    fi
  fi
fi

# ---------------------------------------------------------------------------
# cargo-fuzz (short fuzz runs in the test suite)
# ---------------------------------------------------------------------------
if want fuzz; then
  if command -v cargo-fuzz >/dev/null 2>&1 || [[ -x "${CARGO_HOME:-$HOME/.cargo}/bin/cargo-fuzz" ]]; then
    say "cargo-fuzz ... present"
  else
    say "cargo-fuzz: installing from crates.io (once) ..."
    if cargo install cargo-fuzz --locked --quiet >"$SLUICE_CACHE/cargo-fuzz-install.log" 2>&1; then
      say "cargo-fuzz ... installed"
    else
      tail -n 20 "$SLUICE_CACHE/cargo-fuzz-install.log" >&2
      fail_step fuzz "cargo install cargo-fuzz failed (see $SLUICE_CACHE/cargo-fuzz-install.log)"
    fi
  fi
fi

# ---------------------------------------------------------------------------
# deploy/ checks: kubernetes-validate (PyPI; bundles the Kubernetes JSON schemas, so manifests
# are checked offline) in a venv of its own
# ---------------------------------------------------------------------------
KV_VENV="$SLUICE_CACHE/venv-deploy"
if want deploy; then
  if [[ "$("$KV_VENV/bin/kubernetes-validate" --version 2>/dev/null || true)" == *"$KUBERNETES_VALIDATE_VERSION"* ]]; then
    say "kubernetes-validate $KUBERNETES_VALIDATE_VERSION ... cached"
  else
    say "kubernetes-validate $KUBERNETES_VALIDATE_VERSION: installing ..."
    venv_install deploy "$KV_VENV" "$SLUICE_CACHE/venv-deploy.log" \
      "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
  fi
fi

# ---------------------------------------------------------------------------
# env.sh
# ---------------------------------------------------------------------------
cat >"$SLUICE_CACHE/env.sh.tmp" <<EOF
# Generated by scripts/setup.sh; source it before running integration tests.
export SLUICE_CACHE="$SLUICE_CACHE"
export SLUICE_KAFKA_VERSION="$KAFKA_VERSION"
export SLUICE_KAFKA_LIBS="$KAFKA_LIBS"
export SLUICE_JAVA_CLIENT="$JAVA_LAUNCHER"
export SLUICE_PY_CLIENT="$PY_LAUNCHER"
export SLUICE_GO_CLIENT="$GO_BIN"
export SLUICE_OTELCOL="$OTELCOL_BIN"
export SLUICE_KUBERNETES_VALIDATE="$KV_VENV/bin/kubernetes-validate"
EOF
mv "$SLUICE_CACHE/env.sh.tmp" "$SLUICE_CACHE/env.sh"
say "env ... $SLUICE_CACHE/env.sh"

if [[ ${#FAILED[@]} -gt 0 ]]; then
  echo "setup: FAILED steps: ${FAILED[*]}" >&2
  exit 1
fi
