# Sourced by scripts/demo and scripts/test: make sure .venv exists and holds the project.
# Usage: ensure_venv [EXTRAS]   (e.g. ensure_venv test)
# Re-installs only when pyproject.toml changed since the last install.

ensure_venv() {
    local extras="${1:-}" spec="." stamp=".venv/.pbx-agent-installed"
    [ -n "$extras" ] && spec=".[$extras]"
    if ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
        echo "pbx-agent needs Python 3.11 or newer (python3 is $(python3 --version 2>&1))." >&2
        exit 2
    fi
    if [ ! -x .venv/bin/python ]; then
        if ! python3 -m venv .venv 2>/dev/null; then
            rm -rf .venv
            if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
                apt_install python3-venv
                python3 -m venv .venv
            else
                echo "python3 cannot create a virtualenv: install it with 'sudo apt-get install python3-venv'." >&2
                exit 2
            fi
        fi
    fi
    if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ "$(cat "$stamp")" != "$spec" ]; then
        echo "preparing .venv (pip install -e '$spec') ..." >&2
        if ! { .venv/bin/python -m pip install --disable-pip-version-check --upgrade pip &&
               .venv/bin/python -m pip install --disable-pip-version-check -e "$spec"; } \
               >.venv/pip.log 2>&1; then
            tail -n 30 .venv/pip.log >&2
            echo "pip install failed; the whole log is in .venv/pip.log" >&2
            exit 1
        fi
        echo "$spec" > "$stamp"
    fi
}

apt_updated=""
apt_install() {
    if [ -z "$apt_updated" ]; then
        apt-get update -qq
        apt_updated=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}
