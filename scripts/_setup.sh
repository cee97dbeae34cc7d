# Sourced by scripts/run, scripts/test and scripts/check: make .venv and install into it the
# server's dependencies (imgpress-server, which runs from this checkout) and the client (editable).
# Idempotent and quick the second time: uv (or pip) only runs when a pyproject.toml changes or
# the extras asked for are not all installed.
# As root, missing system packages (python3-venv, libmagic1, ...) are installed with apt.

IMGPRESS_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$IMGPRESS_ROOT/.venv"
PYTHON="${PYTHON:-python3}"

say() {
    # say LEVEL MESSAGE: one line on stderr, as JSON like every other process's unless it is a terminal.
    if [ -t 2 ]; then
        echo "imgpress: $2" >&2
    else
        local message="${2//\\/\\\\}"
        printf '{"time": "%s", "level": "%s", "logger": "imgpress.run", "message": "%s"}\n' \
            "$(date -u +%Y-%m-%dT%H:%M:%S.%3N+00:00)" "$1" "${message//\"/\\\"}" >&2
    fi
}

apt_install() {
    # apt_install PACKAGE...: install the missing ones when we are root; otherwise say what to do.
    local missing=()
    for package in "$@"; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed" || missing+=("$package")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" -ne 0 ]; then
        say error "please install: sudo apt-get install -y ${missing[*]}"
        return 1
    fi
    say info "installing ${missing[*]} with apt"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

setup_venv() {
    # setup_venv EXTRAS: create .venv and install the project with those extras (e.g. "test").
    # Skipped when the pyprojects are unchanged since the last install and every requirement of
    # EXTRAS is in .venv (the `test` extra brings the `dashboard` one's, for instance).
    local extras="$1"
    if command -v dpkg-query >/dev/null; then
        apt_install libmagic1
        "$PYTHON" -c "import ensurepip" 2>/dev/null || apt_install python3-venv
    fi
    if [ ! -x "$VENV/bin/python" ]; then
        "$PYTHON" -m venv "$VENV"
    fi
    local stamp="$VENV/.imgpress-installed" want recorded="" before=""
    want="$(cat "$IMGPRESS_ROOT/pyproject.toml" "$IMGPRESS_ROOT/client/pyproject.toml" | sha256sum | cut -d' ' -f1)"
    [ -f "$stamp" ] && read -r recorded before < "$stamp"
    if [ "$recorded" = "$want" ] && extras_present "$extras"; then
        return 0
    fi
    # The extras installed before are installed again too, with this pyproject's versions.
    extras="$(tr ',' '\n' <<< "$before,$extras" | sed '/^$/d' | sort -u | paste -sd, -)"
    say info "installing the project and its dependencies into .venv"
    if ! install_into_venv -e "$IMGPRESS_ROOT[$extras]" -e "$IMGPRESS_ROOT/client" > "$VENV/pip.log" 2>&1; then
        cat "$VENV/pip.log" >&2
        return 1
    fi
    echo "$want $extras" > "$stamp"
}

extras_present() {
    # extras_present EXTRAS: whether the project, the client and every distribution that
    # EXTRAS require (by name: their versions are the installer's business) are in .venv.
    "$VENV/bin/python" - "$1" 2>/dev/null <<'PY'
import re
import sys
from importlib.metadata import PackageNotFoundError, distribution

wanted = set(sys.argv[1].split(","))
try:
    distribution("imgpress")
    for requirement in distribution("imgpress-server").requires or []:
        name, _, marker = requirement.partition(";")
        extra = re.search(r"extra == .([\w.-]+).", marker)
        if extra is None or extra[1] in wanted:
            distribution(re.split(r"[^\w.-]", name.strip(), maxsplit=1)[0])
except PackageNotFoundError:
    sys.exit(1)
PY
}

install_into_venv() {
    # install_into_venv PIP_ARGUMENTS...: uv (from PyPI, into .venv) installs in seconds what pip
    # takes a minute or more for; pip does it when uv cannot be had or fails.
    if { [ -x "$VENV/bin/uv" ] || "$VENV/bin/python" -m pip install --disable-pip-version-check -q uv; } \
        && "$VENV/bin/uv" pip install --python "$VENV/bin/python" "$@"; then
        return 0
    fi
    echo "imgpress: uv failed; installing with pip" >&2
    "$VENV/bin/python" -m pip install --disable-pip-version-check "$@"
}

#: The accessibility checker the page's browser tests load into the page (never from a CDN).
AXE_VERSION="4.14.1"

setup_axe() {
    # setup_axe: install axe-core from npm into the git-ignored .axe/ (skipped without npm).
    local installed="$IMGPRESS_ROOT/.axe/node_modules/axe-core/package.json"
    if grep -q "\"version\": \"$AXE_VERSION\"" "$installed" 2>/dev/null; then
        return 0
    fi
    if ! command -v npm >/dev/null; then
        say warning "npm is missing: the page's accessibility scan will be skipped"
        return 0
    fi
    mkdir -p "$IMGPRESS_ROOT/.axe"
    npm install --prefix "$IMGPRESS_ROOT/.axe" --no-audit --no-fund --silent "axe-core@$AXE_VERSION" >&2
}
