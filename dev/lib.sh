# Shared shell helpers of the dev and test commands. Source it; do not run it.
#
# Everything installed here stays inside the checkout: a virtualenv at .dev/venv with the
# pinned servers of dev/requirements.txt. Ports are picked free at run time.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEV_DIR="$ROOT/.dev"
VENV="$DEV_DIR/venv"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"

# How long the first builds take on a 2-core machine, said before they start: dev/up's
# binaries, and dev/test's test binaries on top of them (measured from an empty target
# directory, with other work on the machine: 4 m 47 s and 6 m 23 s; see README.md).
FIRST_BUILD_MINUTES=5
FIRST_TEST_BUILD_MINUTES=6

# Colour only for a terminal, and never with NO_COLOR set (https://no-color.org).
if [ -t 2 ] && [ -z "${NO_COLOR:-}" ]; then BOLD=$'\033[1m' RESET=$'\033[0m'; else BOLD='' RESET=''; fi
log() { printf '%s[dev]%s %s\n' "$BOLD" "$RESET" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# usage_from_header FILE: prints the comment block at the top of a script (below its
# shebang) without the leading '# ', i.e. its help.
usage_from_header() {
  sed -n '2,/^[^#]/{/^#/!q;s/^# \{0,1\}//;p}' "$1"
}

# _install_venv STAMP_NAME WHAT REQUIREMENTS...: creates or updates .dev/venv with the
# pinned requirements files when they changed since the last install (their hash is
# kept in .dev/venv/STAMP_NAME).
_install_venv() {
  local stamp="$VENV/$1" what="$2" want file
  shift 2
  want="$(cd "$ROOT" && cat "$@" | sha256sum | cut -d' ' -f1)"
  if [ -x "$VENV/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    return 0
  fi
  command -v python3 >/dev/null || die "python3 is required"
  log "installing $what into .dev/venv (pinned, one-time)"
  mkdir -p "$DEV_DIR"
  python3 -m venv "$VENV" || die "python3 -m venv failed; on Debian/Ubuntu: apt-get install python3-venv"
  local args=()
  for file in "$@"; do args+=(-r "$ROOT/$file"); done
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${args[@]}" \
    || die "pip could not install $*"
  echo "$want" >"$stamp"
}

# What running the platform needs: the dev servers and the process runner
# (dev/requirements.txt). dev/up installs only these.
ensure_servers() {
  # A venv with everything (ensure_venv) has the servers too.
  local all
  all="$(cd "$ROOT" && cat dev/requirements.txt dev/requirements-tools.txt | sha256sum | cut -d' ' -f1)"
  if [ -x "$VENV/bin/python" ] && [ "$(cat "$VENV/.requirements.sha256" 2>/dev/null)" = "$all" ]; then
    return 0
  fi
  _install_venv .servers.sha256 "the dev servers" dev/requirements.txt
}

# Everything the tests and checks use: the dev servers and the test tools
# (dev/requirements-tools.txt: manifest checks, schemathesis, the NATS client of the
# permission tests). dev/test, infra/check and faults/ install these.
ensure_venv() {
  _install_venv .requirements.sha256 "the dev servers and test tools" dev/requirements.txt dev/requirements-tools.txt
}

# The browser tests' tools: Debian's Chromium and ChromeDriver (one version, pinned) and
# axe-core from the npm registry (pinned, into .dev/node). Debian's security archive keeps
# only the newest Chromium build, so when the pinned one is gone the current one of the
# same package is installed instead, and said so: the tests speak WebDriver, which does
# not change between builds.
CHROMIUM_VERSION="156.0.8078.108-1~deb12u1"
AXE_CORE_VERSION="4.10.3"
ensure_browser() {
  if command -v chromedriver >/dev/null && command -v chromium >/dev/null; then
    return 0
  fi
  if [ "$(id -u)" != 0 ]; then
    die "the browser tests need Chromium and ChromeDriver: sudo apt-get update && sudo apt-get install -y chromium=$CHROMIUM_VERSION chromium-driver=$CHROMIUM_VERSION"
  fi
  log "installing Chromium and ChromeDriver $CHROMIUM_VERSION (Debian, one-time)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null || die "apt-get update failed"
  if ! apt-get install -y -qq "chromium=$CHROMIUM_VERSION" "chromium-driver=$CHROMIUM_VERSION" >/dev/null 2>&1; then
    log "Chromium $CHROMIUM_VERSION is no longer in the archive; installing its current build"
    apt-get install -y -qq chromium chromium-driver >/dev/null || die "apt-get could not install chromium"
  fi
}
# Prometheus, Debian's package, pinned: promtool for the alerting rules and the dashboard
# (infra/check), the server for `dev/up --observe` and `bench/run --observe` (the system
# service the package installs is stopped and disabled; ours run on free ports).
PROMETHEUS_VERSION="2.42.0+ds-5+deb12u1"
ensure_prometheus() {
  command -v promtool >/dev/null && command -v prometheus >/dev/null && return 0
  if [ "$(id -u)" != 0 ]; then
    die "Prometheus is needed: sudo apt-get update && sudo apt-get install -y prometheus=$PROMETHEUS_VERSION"
  fi
  log "installing Prometheus $PROMETHEUS_VERSION (Debian, one-time)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null || die "apt-get update failed"
  apt-get install -y -qq "prometheus=$PROMETHEUS_VERSION" >/dev/null || die "apt-get could not install prometheus"
  if command -v systemctl >/dev/null; then systemctl disable --now prometheus >/dev/null 2>&1 || true; fi
}
ensure_axe() {
  local dir="$DEV_DIR/node" want="axe-core@$AXE_CORE_VERSION"
  if [ "$(cat "$dir/.installed" 2>/dev/null)" != "$want" ]; then
    command -v npm >/dev/null || die "npm is needed for axe-core (Debian: apt-get install npm)"
    log "installing $want (npm, one-time)"
    mkdir -p "$dir"
    npm install --prefix "$dir" --no-audit --no-fund --silent "$want" >/dev/null || die "npm could not install $want"
    echo "$want" >"$dir/.installed"
  fi
  export AXE_CORE_JS="$dir/node_modules/axe-core/axe.min.js"
}

free_port() {
  python3 "$ROOT/infra/ports.py"
}

# wait_for_port PORT SECONDS
wait_for_port() {
  local port="$1" deadline=$((SECONDS + $2))
  until python3 -c "import socket,sys; socket.create_connection(('127.0.0.1', $port), 0.5)" 2>/dev/null; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.2
  done
}

# The commands that start each server in the foreground (for Procfiles and for start_bg).
# mongo_cmd PORT STORAGE   (STORAGE is a directory or :memory:)
mongo_cmd() { echo "$VENV/bin/secantusd-py --host 127.0.0.1 --port $1 --storage-path $2 --log-level WARNING"; }
# nats_cmd PORT STORE_DIR CONFIG   (CONFIG from nats_auth_setup)
nats_cmd() { echo "$VENV/bin/nats-server -c $3 --jetstream --addr 127.0.0.1 --port $1 --store_dir $2"; }

# NATS with one user per service, as in production (infra/nats_auth.py):
# nats_auth_setup CONFIG_FILE [nats_auth.py local options, e.g. --namespaced]
# exports a fresh dev-only password per user (NATS_PASSWORD_<USER>, which the server reads
# from its environment) and writes the server's configuration to CONFIG_FILE.
nats_auth_setup() {
  local file="$1"
  shift
  eval "$(python3 "$ROOT/infra/nats_auth.py" passwords)"
  python3 "$ROOT/infra/nats_auth.py" local "$@" >"$file"
}

# nats_user_url USER PORT: the URL a service (or `harness`) connects with.
nats_user_url() {
  local var
  var="NATS_PASSWORD_$(echo "$1" | tr '[:lower:]' '[:upper:]')"
  echo "nats://$1:${!var}@127.0.0.1:$2"
}

BG_PIDS=()
# start_bg NAME LOGFILE COMMAND...: runs a server in the background and remembers it.
start_bg() {
  local name="$1" logfile="$2"
  shift 2
  "$@" >"$logfile" 2>&1 &
  BG_PIDS+=("$!")
  log "$name started (pid $!, log $logfile)"
}

# Stops the background servers: SIGTERM, up to 10 s to exit, then SIGKILL.
stop_bg() {
  local pid
  [ "${#BG_PIDS[@]}" -gt 0 ] || return 0
  for pid in "${BG_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for _ in $(seq 1 50); do
    local alive=0
    for pid in "${BG_PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break
    sleep 0.2
  done
  for pid in "${BG_PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  BG_PIDS=()
}
