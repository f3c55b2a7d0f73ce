# Shared by scripts/serve, scripts/test and scripts/lock (sourced, not run).
#
# Contract: after `ensure_venv LOCKFILE`, ./.venv is a virtual environment of
# its own (never the system interpreter) holding exactly the versions pinned,
# with hashes, in LOCKFILE, plus tusd-py itself installed editable; its bin/
# is first on PATH. Works with Debian's externally-managed python3 and with
# any Python >= 3.11 first on PATH (or $PYTHON). Versions are never resolved
# here: only scripts/lock resolves, and it writes the lock files.

SUDO=""
if [ "$(id -u)" != "0" ] && command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi

apt_install() {
    $SUDO apt-get install -y -q "$@" >/dev/null 2>&1 \
        || { $SUDO apt-get update -q >/dev/null 2>&1 && $SUDO apt-get install -y -q "$@" >/dev/null; }
}

_base_python() {
    local py="${PYTHON:-python3}"
    if ! command -v "$py" >/dev/null 2>&1; then
        echo "tusd-py needs Python >= 3.11: '$py' not found (set PYTHON=/path/to/python3.11)" >&2
        return 1
    fi
    if ! "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
        echo "tusd-py needs Python >= 3.11; '$py' is $("$py" -V 2>&1) (set PYTHON=...)" >&2
        return 1
    fi
    echo "$py"
}

ensure_venv() {
    local lock="$1" py venv=".venv" stamp
    py=$(_base_python)
    # A venv made by another interpreter (or half made) is rebuilt.
    if [ -x "$venv/bin/python" ] && ! "$venv/bin/python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
        rm -rf "$venv"
    fi
    if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -m pip --version >/dev/null 2>&1; then
        rm -rf "$venv"
        if ! "$py" -m venv "$venv" >/dev/null 2>&1; then
            # Debian ships venv/ensurepip apart from python3.
            rm -rf "$venv"
            apt_install python3-venv
            "$py" -m venv "$venv"
        fi
    fi
    stamp=$( { cat "$lock" requirements/tools.txt setup.py; } | sha256sum | cut -c1-64)
    if [ "$(cat "$venv/.installed" 2>/dev/null)" != "$stamp" ]; then
        PIP_CONFIG_FILE=/dev/null "$venv/bin/python" -m pip install -q --disable-pip-version-check --no-deps \
            --require-hashes -r requirements/tools.txt -r "$lock"
        PIP_CONFIG_FILE=/dev/null "$venv/bin/python" -m pip install -q --disable-pip-version-check --no-deps \
            --no-build-isolation -e .
        echo "$stamp" > "$venv/.installed"
    fi
    export VIRTUAL_ENV="$PWD/$venv"
    export PATH="$VIRTUAL_ENV/bin:$PATH"
    hash -r
}
