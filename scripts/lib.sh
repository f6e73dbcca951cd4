# Shared shell helpers for scripts/: a plugin mirror holding the locally built provider, and
# the Azure emulator started in the background.
# shellcheck shell=bash

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
version="$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/Cargo.toml" | head -1)"
os_arch="$(uname -s | tr 'A-Z' 'a-z')_$(uname -m | sed 's/x86_64/amd64/;s/aarch64/arm64/')"

# Puts target/$1/terraform-provider-mig into a filesystem mirror and points TF_CLI_CONFIG_FILE at it.
use_local_provider() {
  local profile="${1:-debug}"
  local mirror="$root/.terraform-plugins"
  local dir="$mirror/registry.terraform.io/azure-mig/mig/$version/$os_arch"
  mkdir -p "$dir"
  # Copy then rename: a provider process still running from the old file keeps it busy.
  cp "$root/target/$profile/terraform-provider-mig" "$dir/.terraform-provider-mig.new"
  mv -f "$dir/.terraform-provider-mig.new" "$dir/terraform-provider-mig_v$version"
  cat > "$mirror/terraform.rc" <<RC
provider_installation {
  filesystem_mirror {
    path    = "$mirror"
    include = ["registry.terraform.io/azure-mig/mig"]
  }
  direct {
    exclude = ["registry.terraform.io/azure-mig/mig"]
  }
}
RC
  export TF_CLI_CONFIG_FILE="$mirror/terraform.rc"
  export CHECKPOINT_DISABLE=1
}

# Starts the emulator (args: scenario file, profile, binary profile) and exports ARM_* for it.
# Sets EMULATOR_PID and EMULATOR_DIR; stop_emulator stops it and removes the folder.
start_emulator() {
  local scenario="$1" profile="${2:-fast}" build="${3:-debug}"
  EMULATOR_DIR="$(mktemp -d)"
  "$root/target/$build/azure-emulator" --listen 127.0.0.1:0 --ready-file "$EMULATOR_DIR/ready.json" \
    --scenario "$scenario" --profile "$profile" >"$EMULATOR_DIR/emulator.log" 2>&1 &
  EMULATOR_PID=$!
  local waited=0
  until [[ -s "$EMULATOR_DIR/ready.json" ]]; do
    if ! kill -0 "$EMULATOR_PID" 2>/dev/null; then
      echo "azure-emulator exited early:" >&2; cat "$EMULATOR_DIR/emulator.log" >&2; return 1
    fi
    (( waited++ < 300 )) || { echo "azure-emulator not ready after 30 s" >&2; return 1; }
    sleep 0.1
  done
  eval "$(python3 - "$EMULATOR_DIR/ready.json" <<'PY'
import json, shlex, sys
r = json.load(open(sys.argv[1]))
env = {
    "ARM_SUBSCRIPTION_ID": r["subscription_ids"][0],
    "ARM_TENANT_ID": r["tenant_id"],
    "ARM_CLIENT_ID": r["client_id"],
    "ARM_CLIENT_SECRET": r["client_secret"],
    "ARM_METADATA_HOSTNAME": r["metadata_host"],
    "ARM_CA_CERTIFICATE_FILE": r["ca_cert_file"],
    "ARM_USE_CLI": "false",
    "EMULATOR_ARM_ENDPOINT": r["arm_endpoint"],
}
for k, v in env.items():
    print(f"export {k}={shlex.quote(v)}")
PY
)"
}

stop_emulator() {
  if [[ -n "${EMULATOR_PID:-}" ]]; then
    kill "$EMULATOR_PID" 2>/dev/null || true
    wait "$EMULATOR_PID" 2>/dev/null || true
    EMULATOR_PID=""
  fi
  if [[ -n "${EMULATOR_DIR:-}" ]]; then
    rm -rf "$EMULATOR_DIR"
    EMULATOR_DIR=""
  fi
}
