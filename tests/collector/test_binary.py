"""The built distribution: `components` matches the manifest, `validate` accepts and refuses configs,
and collector/build.sh rebuilds only when needed and fails loudly."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from . import _otelcol
from ._otelcol import AGENT_YAML, BINARY, BUILD_SH, DEMO_YAML, GATEWAY_YAML, MANIFEST, REPO, clean_env, run_binary

pytestmark = pytest.mark.collector


def agent_env(pki: _otelcol.PKI, tmp: Path) -> dict[str, str]:
    return {
        "OTELCOL_AGENT_METRICS_PORT": str(_otelcol.free_port()),
        "OTELCOL_AGENT_GATEWAY_ENDPOINT": "127.0.0.1:4417",
        "OTELCOL_AGENT_GATEWAY_CA_FILE": str(pki.ca_cert),
        "OTELCOL_AGENT_GATEWAY_TOKEN_FILE": str(pki.token_file),
        "OTELCOL_AGENT_STORAGE_DIR": str(tmp / "agent"),
    }


def gateway_env(pki: _otelcol.PKI, tmp: Path) -> dict[str, str]:
    return {
        "OTELCOL_GATEWAY_METRICS_PORT": str(_otelcol.free_port()),
        "OTELCOL_GATEWAY_TLS_CERT_FILE": str(pki.server_cert),
        "OTELCOL_GATEWAY_TLS_KEY_FILE": str(pki.server_key),
        "OTELCOL_GATEWAY_TOKEN_FILE": str(pki.accepted_tokens_file),
        "OTELCOL_GATEWAY_BACKEND_ENDPOINT": "http://127.0.0.1:4319",
        "OTELCOL_GATEWAY_STORAGE_DIR": str(tmp / "gateway"),
    }


def test_components_lists_exactly_what_the_manifest_promises(otelcol_binary):
    proc = run_binary("components")
    assert proc.returncode == 0, proc.stderr
    out = yaml.safe_load(proc.stdout)
    manifest = yaml.safe_load(MANIFEST.read_text())
    assert out["buildinfo"]["command"] == manifest["dist"]["name"]
    assert out["buildinfo"]["version"] == manifest["dist"]["version"]
    for kind in ("receivers", "processors", "exporters", "extensions", "providers"):
        built = sorted(c["module"] for c in out.get(kind) or [])
        promised = sorted(entry["gomod"] for entry in manifest.get(kind) or [])
        assert built == promised, kind
    assert not out.get("connectors")
    names = {kind: sorted(c.get("name") or c.get("scheme") for c in out[kind])
             for kind in ("receivers", "processors", "exporters", "extensions", "providers")}
    assert names == {
        "receivers": ["otlp"],
        "processors": ["memory_limiter", "redaction", "resource"],
        "exporters": ["debug", "otlp_grpc", "otlp_http"],
        "extensions": ["bearertokenauth", "file_storage", "health_check"],
        "providers": ["env", "file", "yaml"],
    }


def test_validate_passes_with_the_environment_set(otelcol_binary, pki, tmp_path):
    for config, env in ((AGENT_YAML, agent_env(pki, tmp_path)), (GATEWAY_YAML, gateway_env(pki, tmp_path)),
                        (DEMO_YAML, {"OTELCOL_DEMO_STORAGE_DIR": str(tmp_path / "demo")})):
        proc = run_binary("validate", "--config", str(config), env=clean_env(env))
        assert proc.returncode == 0, f"{config.name}: {proc.stderr}"


# Each required variable, and the words the failure must contain to tell ops what is missing.
REQUIRED = [
    ("agent", "OTELCOL_AGENT_GATEWAY_ENDPOINT", ["otlp_grpc/gateway", "OTELCOL_AGENT_GATEWAY_ENDPOINT"]),
    ("agent", "OTELCOL_AGENT_GATEWAY_TOKEN_FILE", ["bearertokenauth/gateway", "no bearer token"]),
    ("gateway", "OTELCOL_GATEWAY_TLS_CERT_FILE", ["receivers::otlp::protocols::grpc", "certificate and key"]),
    ("gateway", "OTELCOL_GATEWAY_TLS_KEY_FILE", ["receivers::otlp::protocols::grpc", "certificate and key"]),
    ("gateway", "OTELCOL_GATEWAY_TOKEN_FILE", ["bearertokenauth/agents", "no bearer token"]),
    ("gateway", "OTELCOL_GATEWAY_BACKEND_ENDPOINT", ["otlp_http/backend", "endpoint"]),
]


@pytest.mark.parametrize(("which", "variable", "words"), REQUIRED, ids=[r[1] for r in REQUIRED])
def test_validate_fails_clearly_without_a_required_variable(otelcol_binary, pki, tmp_path, which, variable, words):
    env = agent_env(pki, tmp_path) if which == "agent" else gateway_env(pki, tmp_path)
    config = AGENT_YAML if which == "agent" else GATEWAY_YAML
    del env[variable]
    proc = run_binary("validate", "--config", str(config), env=clean_env(env))
    assert proc.returncode != 0
    message = proc.stderr + proc.stdout
    for word in words:
        assert word in message, f"missing {variable}: {message!r} does not say {word!r}"


def test_starting_without_a_required_variable_names_it(otelcol_binary, tmp_path):
    """At start the collector also names every unset variable the config references."""
    proc = run_binary("--config", str(GATEWAY_YAML), env=clean_env({"OTELCOL_GATEWAY_STORAGE_DIR": str(tmp_path)}),
                      timeout=30)
    assert proc.returncode != 0
    for variable in ("OTELCOL_GATEWAY_TLS_CERT_FILE", "OTELCOL_GATEWAY_TOKEN_FILE", "OTELCOL_GATEWAY_BACKEND_ENDPOINT"):
        assert variable in proc.stderr


def test_a_missing_token_file_stops_start_up_instead_of_running_without_a_token(otelcol_binary, pki, tmp_path):
    """Without wait_for_token_file the collector would run, and every export would be refused and dropped."""
    procs = []
    for config, env, variable in ((AGENT_YAML, agent_env(pki, tmp_path), "OTELCOL_AGENT_GATEWAY_TOKEN_FILE"),
                                  (GATEWAY_YAML, gateway_env(pki, tmp_path), "OTELCOL_GATEWAY_TOKEN_FILE")):
        env[variable] = str(tmp_path / "no-such.token")
        ports = {k: f"127.0.0.1:{_otelcol.free_port()}" for k in env_ports(config)}
        procs.append(subprocess.Popen([str(BINARY), "--config", str(config)], env=clean_env({**env, **ports}),
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    for proc in procs:
        try:
            out, _ = proc.communicate(timeout=40)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
        assert proc.returncode != 0
        assert "failed to read credentials file" in out and "no-such.token" in out


def env_ports(config: Path) -> list[str]:
    """The listener variables of a config (so a test run never touches the default ports)."""
    if config == AGENT_YAML:
        return ["OTELCOL_AGENT_OTLP_GRPC_ENDPOINT", "OTELCOL_AGENT_OTLP_HTTP_ENDPOINT", "OTELCOL_AGENT_HEALTH_ENDPOINT"]
    return ["OTELCOL_GATEWAY_OTLP_GRPC_ENDPOINT", "OTELCOL_GATEWAY_HEALTH_ENDPOINT"]


def test_build_script_is_a_no_op_when_the_manifest_is_unchanged(otelcol_binary):
    before = BINARY.stat().st_mtime_ns
    proc = subprocess.run([str(BUILD_SH)], cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "up to date" in proc.stderr
    assert BINARY.stat().st_mtime_ns == before


def test_build_script_rebuilds_when_the_manifest_changes(otelcol_binary, tmp_path):
    """In a copy of collector/: built once, then a no-op, then rebuilt after a manifest edit."""
    work = tmp_path / "collector"
    work.mkdir()
    shutil.copy(BUILD_SH, work / "build.sh")
    shutil.copy(MANIFEST, work / "manifest.yaml")

    def build() -> str:
        proc = subprocess.run([str(work / "build.sh")], capture_output=True, text=True, timeout=600, check=False)
        assert proc.returncode == 0, proc.stderr[-3000:]
        return proc.stderr

    assert "built " in build()
    stamp = (work / "_build" / ".stamp").read_text()
    assert "up to date" in build()
    with open(work / "manifest.yaml", "a") as f:
        f.write("# an edit\n")
    assert "built " in build()
    assert (work / "_build" / ".stamp").read_text() != stamp
    assert subprocess.run([str(work / "_build" / "otelcol-showmax"), "components"], capture_output=True,
                          timeout=30, check=False).returncode == 0


def test_build_script_fails_loudly_without_go(tmp_path):
    """No Go on PATH: build.sh exits non-zero with a clear message (and the tests then fail, not skip)."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for tool in ("dirname", "cat", "sha256sum", "cut", "mkdir", "sed"):
        found = shutil.which(tool)
        assert found, tool
        os.symlink(found, bindir / tool)
    bash = shutil.which("bash")
    assert bash
    proc = subprocess.run([bash, str(BUILD_SH)], env={"PATH": str(bindir), "HOME": str(tmp_path)},
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode != 0
    assert "Go is not installed" in proc.stderr


def test_build_script_fails_loudly_when_the_build_fails(otelcol_binary, tmp_path):
    """A manifest naming a module version that does not exist: non-zero exit, no stamp, no binary."""
    work = tmp_path / "collector"
    work.mkdir()
    shutil.copy(BUILD_SH, work / "build.sh")
    text = MANIFEST.read_text().replace("redactionprocessor v0.165.1", "redactionprocessor v0.0.999")
    assert "v0.0.999" in text
    (work / "manifest.yaml").write_text(text)
    proc = subprocess.run([str(work / "build.sh")], capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode != 0, proc.stderr[-2000:]
    assert "ERROR" in proc.stderr
    assert not (work / "_build" / ".stamp").exists()
    assert not (work / "_build" / "otelcol-showmax").exists()


def test_binary_resolved_one_release_for_every_collector_module(otelcol_binary):
    """Not only the manifest: every core and contrib module compiled in (direct or indirect) is at its release."""
    proc = subprocess.run(["go", "version", "-m", str(BINARY)], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    deps = [line.split()[1:3] for line in proc.stdout.splitlines() if line.split()[:1] in (["dep"], ["=>"])]
    manifest = yaml.safe_load(MANIFEST.read_text())
    kinds = ("receivers", "processors", "exporters", "extensions", "providers")
    manifest_versions = {entry["gomod"].split()[1] for kind in kinds for entry in manifest[kind]}
    core = [(m, v) for m, v in deps if m.startswith("go.opentelemetry.io/collector")]
    contrib = [(m, v) for m, v in deps if m.startswith("github.com/open-telemetry/opentelemetry-collector-contrib/")]
    assert len(core) > 20 and len(contrib) >= 6
    assert {v for _, v in core} <= manifest_versions, sorted(set(core))
    assert {v for _, v in contrib} <= manifest_versions, sorted(set(contrib))
    assert len({v for _, v in core if v.startswith("v0.")}) == 1 and len({v for _, v in core if v.startswith("v1.")}) == 1
    assert len({v for _, v in contrib}) == 1
