"""Starts the real emulator binary once per test session and hands the tests its ready
document and credentials for the official Azure SDKs for Python.

The SDKs are used exactly as a customer would use them against Azure: the only
differences are the endpoints (from the ready file) and trusting the emulator's CA.
"""

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time

import pytest
import requests

SUBSCRIPTION = "00000000-0000-0000-0000-00000000c0f1"
DELETED_PRINCIPAL = "9f1e0000-0000-4000-8000-00000000dead"
LIVE_PRINCIPAL = "5b0c0000-0000-4000-8000-00000000a11e"
ARM_SCOPE = "https://management.azure.com/.default"
GRAPH_SCOPE = "https://graph.microsoft.com/.default"


def scenario():
    """The world every suite (Python, JavaScript, CLI) starts from: scenario.json."""
    with open(os.path.join(os.path.dirname(__file__), "scenario.json")) as f:
        return json.load(f)


def _binary():
    path = os.environ.get("AZURE_EMULATOR_BIN")
    if not path:
        root = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
        path = os.path.join(root, "target", "debug", "azure-emulator")
    if not os.access(path, os.X_OK):
        pytest.exit(f"azure-emulator binary not found at {path}: run `cargo build --bins`", 2)
    return path


def _wait_for(path, process, deadline_seconds=60):
    # The emulator writes the ready file atomically once it accepts connections, so its
    # existence is the readiness signal; the loop only bounds how long we wait for it.
    deadline = time.monotonic() + deadline_seconds
    while not os.path.exists(path):
        if process.poll() is not None:
            pytest.exit(f"azure-emulator exited with {process.returncode} before it was ready", 2)
        if time.monotonic() > deadline:
            process.kill()
            pytest.exit("azure-emulator did not write its ready file in time", 2)
        time.sleep(0.05)
    with open(path) as f:
        return json.load(f)


@pytest.fixture(scope="session")
def emulator():
    work = tempfile.mkdtemp(prefix="emulator-conformance-")
    scenario_file = os.path.join(work, "scenario.json")
    with open(scenario_file, "w") as f:
        json.dump(scenario(), f)
    ready_file = os.path.join(work, "ready.json")
    log = open(os.path.join(work, "emulator.log"), "w")
    process = subprocess.Popen(
        [_binary(), "--listen", "127.0.0.1:0", "--ready-file", ready_file, "--scenario", scenario_file],
        stdout=log,
        stderr=log,
    )
    ready = _wait_for(ready_file, process)
    # What a customer does to trust a private CA with the Python SDKs (requests underneath).
    os.environ["REQUESTS_CA_BUNDLE"] = ready["ca_cert_file"]
    os.environ["SSL_CERT_FILE"] = ready["ca_cert_file"]
    try:
        yield ready
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()
        shutil.rmtree(work, ignore_errors=True)


@pytest.fixture(scope="session")
def credential(emulator):
    from azure.identity import ClientSecretCredential

    return ClientSecretCredential(
        emulator["tenant_id"],
        emulator["client_id"],
        emulator["client_secret"],
        authority=emulator["authority_host"],
        # MSAL otherwise asks login.microsoftonline.com to validate the authority.
        disable_instance_discovery=True,
    )


def arm_client(cls, emulator, credential, **kwargs):
    return cls(
        credential,
        emulator["subscription_ids"][0],
        base_url=emulator["arm_endpoint"],
        credential_scopes=[ARM_SCOPE],
        **kwargs,
    )


class Admin:
    """The emulator's own admin API (not Azure): request log, faults, realism."""

    def __init__(self, emulator):
        self.base = emulator["arm_endpoint"].rstrip("/") + "/_emulator"
        self.verify = emulator["ca_cert_file"]

    def get(self, path):
        response = requests.get(f"{self.base}/{path}", verify=self.verify, timeout=30)
        response.raise_for_status()
        return response.json()

    def post(self, path, body):
        response = requests.post(f"{self.base}/{path}", json=body, verify=self.verify, timeout=30)
        response.raise_for_status()
        return response.json() if response.content else None

    def delete(self, path):
        requests.delete(f"{self.base}/{path}", verify=self.verify, timeout=30).raise_for_status()


@pytest.fixture
def admin(emulator):
    admin = Admin(emulator)
    yield admin
    admin.delete("faults")
