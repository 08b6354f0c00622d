"""Static checks of collector/ (no binary needed): the manifest and the agent, gateway and demo configs."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from ._otelcol import AGENT_YAML, BUILD_SH, COLLECTOR_DIR, DEMO_YAML, GATEWAY_YAML, MANIFEST, REPO

pytestmark = pytest.mark.collector

CORE = "go.opentelemetry.io/collector/"
CONTRIB = "github.com/open-telemetry/opentelemetry-collector-contrib/"
CONFIGS = {"agent": AGENT_YAML, "gateway": GATEWAY_YAML, "demo": DEMO_YAML}
# The README documents these and the scale-out tier's configs (tests/collector/test_tier_static.py).
README_CONFIGS = [AGENT_YAML, GATEWAY_YAML, DEMO_YAML,
                  COLLECTOR_DIR / "tier-agent.yaml", COLLECTOR_DIR / "tier-gateway.yaml",
                  COLLECTOR_DIR / "tier-agent-dns.yaml"]

# What issue 5 promises, by component kind: module path (without version) -> component type.
PROMISED = {
    "receivers": {CORE + "receiver/otlpreceiver": "otlp"},
    "processors": {
        CORE + "processor/memorylimiterprocessor": "memory_limiter",
        CONTRIB + "processor/resourceprocessor": "resource",
        CONTRIB + "processor/redactionprocessor": "redaction",
    },
    "exporters": {
        CORE + "exporter/otlpexporter": "otlp_grpc",
        CORE + "exporter/otlphttpexporter": "otlp_http",
        CORE + "exporter/debugexporter": "debug",
    },
    "extensions": {
        CONTRIB + "extension/healthcheckextension": "health_check",
        CONTRIB + "extension/storage/filestorage": "file_storage",
        CONTRIB + "extension/bearertokenauthextension": "bearertokenauth",
    },
    "providers": {
        CORE + "confmap/provider/envprovider": "env",
        CORE + "confmap/provider/fileprovider": "file",
        CORE + "confmap/provider/yamlprovider": "yaml",
    },
}

ENV_REF = re.compile(r"^\$\{env:([A-Za-z_][A-Za-z0-9_]*)(?::-(.*))?\}$")


def load(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def manifest_modules() -> dict[str, list[tuple[str, str]]]:
    """kind -> [(module, version)] from the manifest (telemetry included as its own kind)."""
    m = load(MANIFEST)
    out: dict[str, list[tuple[str, str]]] = {}
    for kind in ("receivers", "processors", "exporters", "extensions", "connectors", "providers", "converters"):
        out[kind] = [tuple(entry["gomod"].split()) for entry in m.get(kind) or []]  # type: ignore[misc]
    out["telemetry"] = [tuple(m["telemetry"]["gomod"].split())]  # type: ignore[list-item]
    return out


def env_default(value: Any) -> Any:
    """``${env:X:-d}`` -> d, ``${env:X}`` -> None (required), anything else unchanged."""
    if isinstance(value, str):
        m = ENV_REF.match(value.strip())
        if m:
            return m.group(2)
    return value


def walk(node: Any, path: tuple = ()):
    """Yield (path, key, value) for every mapping entry in a YAML tree."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield path, k, v
            yield from walk(v, (*path, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from walk(v, (*path, i))


def component_type(name: str) -> str:
    return name.split("/", 1)[0]


# -- the manifest ------------------------------------------------------------------------------------


def test_manifest_lists_exactly_the_promised_components():
    mods = manifest_modules()
    for kind, promised in PROMISED.items():
        assert {mod for mod, _ in mods[kind]} == set(promised), kind
    assert mods["connectors"] == [] and mods["converters"] == []


def release_problems(versions: list[tuple[str, str]], builder_version: str) -> list[str]:
    """Core v0.X.0, its stable modules v1.(X-94).0, contrib v0.X.P: one release, and the builder matches."""
    problems = [f"{mod} {ver}: not a plain release" for mod, ver in versions if not re.fullmatch(r"v\d+\.\d+\.\d+", ver)]
    problems += [f"{mod}: neither core nor contrib" for mod, _ in versions if not mod.startswith((CORE, CONTRIB))]
    core_unstable = {ver for mod, ver in versions if mod.startswith(CORE) and ver.startswith("v0.")}
    core_stable = {ver for mod, ver in versions if mod.startswith(CORE) and ver.startswith("v1.")}
    contrib = {ver for mod, ver in versions if mod.startswith(CONTRIB)}
    for what, found in (("core v0", core_unstable), ("core v1", core_stable), ("contrib", contrib)):
        if len(found) != 1:
            problems.append(f"{what} modules at {sorted(found)}: want exactly one release")
    if problems:
        return problems
    (core,), (stable,), (contrib_v,) = core_unstable, core_stable, contrib
    # The collector releases its stable (v1) and unstable (v0) modules together: v1.71.0 <-> v0.165.0.
    if int(stable.split(".")[1]) != int(core.split(".")[1]) - 94:
        problems.append(f"core {core} and stable {stable} are not one release")
    # Contrib v0.165.x is built against core v0.165.0 (a contrib patch release keeps the core pin).
    if contrib_v.split(".")[:2] != core.split(".")[:2]:
        problems.append(f"contrib {contrib_v} is not built against core {core}")
    if builder_version != core:
        problems.append(f"build.sh installs builder {builder_version}, the manifest is at {core}")
    return problems


def builder_version() -> str:
    m = re.search(r'^BUILDER_VERSION="(v[0-9.]+)"', BUILD_SH.read_text(), re.M)
    assert m, "BUILDER_VERSION not found in build.sh"
    return m.group(1)


def test_one_release_across_the_manifest():
    versions = [(mod, ver) for entries in manifest_modules().values() for mod, ver in entries]
    assert release_problems(versions, builder_version()) == []
    assert load(MANIFEST)["dist"]["version"].startswith(builder_version().lstrip("v"))
    # Negative controls: the check catches a mixed release.
    core_mod = CORE + "receiver/otlpreceiver"
    mixed = [(m, "v0.161.0" if m == core_mod else v) for m, v in versions]
    assert release_problems(mixed, builder_version())
    assert release_problems([(m, "v0.164.1" if m.startswith(CONTRIB) else v) for m, v in versions], builder_version())
    assert release_problems([(m, "v1.70.0" if v.startswith("v1.") else v) for m, v in versions], builder_version())
    assert release_problems(versions, "v0.164.0")


def test_build_output_is_git_ignored_and_script_is_executable():
    assert "collector/_build/" in (REPO / ".gitignore").read_text().split()
    assert load(MANIFEST)["dist"]["output_path"] in ("./_build", "_build")
    assert BUILD_SH.stat().st_mode & 0o111


# -- the configs -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", CONFIGS)
def test_configs_use_only_components_of_the_manifest(name):
    cfg = load(CONFIGS[name])
    for kind in ("receivers", "processors", "exporters", "extensions"):
        types = {component_type(c) for c in cfg.get(kind) or {}}
        assert types <= set(PROMISED[kind].values()), (name, kind, types)
    assert not cfg.get("connectors")


def memory_limiter_problems(cfg: dict) -> list[str]:
    problems = []
    pipelines = cfg["service"]["pipelines"]
    if not {"traces", "logs"} <= set(pipelines):
        problems.append("traces and logs pipelines expected")
    for pname, p in pipelines.items():
        procs = p.get("processors") or []
        if not procs or component_type(procs[0]) != "memory_limiter":
            problems.append(f"pipeline {pname}: memory_limiter is not first ({procs})")
    for pid, pcfg in cfg["processors"].items():
        if component_type(pid) == "memory_limiter":
            if not re.fullmatch(r"[1-9]\d*(ms|s)", str(pcfg.get("check_interval"))):
                problems.append(f"{pid}: explicit non-zero check_interval expected, got {pcfg.get('check_interval')!r}")
            if not (pcfg.get("limit_mib") or pcfg.get("limit_percentage")):
                problems.append(f"{pid}: no limit")
    return problems


def listener_problems(cfg: dict, text: str) -> list[str]:
    problems = []
    code = "\n".join(line.split(" #", 1)[0] for line in text.splitlines() if not line.lstrip().startswith("#"))
    for wildcard in ("0.0.0.0", "[::]", "::0"):
        if wildcard in code:
            problems.append(f"{wildcard} in the config")
    listeners = []
    for proto, pcfg in cfg["receivers"]["otlp"]["protocols"].items():
        listeners.append((f"receiver otlp {proto}", (pcfg or {}).get("endpoint")))
    for ext, ecfg in cfg["extensions"].items():
        if component_type(ext) == "health_check":
            listeners.append((ext, (ecfg or {}).get("endpoint")))
    for what, value in listeners:
        default = env_default(value)
        if not value:
            problems.append(f"{what} has no explicit endpoint")
        elif not (default and str(default).startswith("127.0.0.1:")):
            problems.append(f"{what} defaults to {default!r}, not 127.0.0.1")
    readers = cfg["service"].get("telemetry", {}).get("metrics", {}).get("readers") or []
    if not readers:
        problems.append("the collector's own metrics are not exposed")
    for reader in readers:
        prom = reader["pull"]["exporter"]["prometheus"]
        if env_default(prom.get("host")) != "127.0.0.1" or not env_default(prom.get("port")):
            problems.append(f"own metrics on {prom}, not 127.0.0.1:<port>")
    return problems


def queue_problems(cfg: dict) -> list[str]:
    problems = []
    extensions = cfg["extensions"]
    for eid, ecfg in cfg["exporters"].items():
        if component_type(eid) == "debug":
            continue  # no queue: nothing to persist
        q = ecfg.get("sending_queue") or {}
        if q.get("enabled") is not True:
            problems.append(f"{eid}: no explicit sending_queue")
        storage = q.get("storage")
        if not (storage and component_type(storage) == "file_storage" and storage in extensions
                and storage in cfg["service"]["extensions"]):
            problems.append(f"{eid}: queue not persisted in a file_storage extension in use ({storage!r})")
        elif not (extensions[storage].get("directory") and extensions[storage].get("create_directory") is True):
            problems.append(f"{storage}: explicit directory with create_directory expected")
        batch = q.get("batch")
        if not (isinstance(batch, dict) and batch.get("flush_timeout")):
            problems.append(f"{eid}: no exporter-side batching")
        elif q.get("sizer", "requests") == "requests" and batch.get("sizer") != "items":
            problems.append(f"{eid}: with the requests queue sizer, batch.sizer must be items")
        if not (q.get("queue_size") and q.get("num_consumers")):
            problems.append(f"{eid}: queue_size and num_consumers must be explicit")
        retry = ecfg.get("retry_on_failure") or {}
        if retry.get("enabled") is not True:
            problems.append(f"{eid}: retry_on_failure not enabled explicitly")
        for key in ("initial_interval", "max_interval", "max_elapsed_time", "multiplier"):
            if key not in retry:
                problems.append(f"{eid}: retry_on_failure.{key} must be set deliberately")
        if not ecfg.get("timeout"):
            problems.append(f"{eid}: no explicit timeout")
    if any(component_type(p) == "batch" for p in cfg["processors"]):
        problems.append("batch processor in use (batching belongs in the exporters' queues)")
    return problems


def tls_problems(agent: dict, gateway: dict) -> list[str]:
    problems = []
    for eid, exp in agent["exporters"].items():
        if str(exp.get("endpoint", "")).startswith("http://"):
            problems.append(f"agent {eid}: plain http endpoint")
        tls = exp.get("tls") or {}
        if tls.get("insecure") is not False or tls.get("insecure_skip_verify") is not False:
            problems.append(f"agent {eid}: TLS must be explicitly on and verified (insecure: false)")
        if str(tls.get("min_version")) != "1.3":
            problems.append(f"agent {eid}: TLS min_version must be 1.3")
        auth = (exp.get("auth") or {}).get("authenticator")
        if not (auth and component_type(auth) == "bearertokenauth" and auth in agent["service"]["extensions"]):
            problems.append(f"agent {eid}: no bearer token authenticator")
        elif not agent["extensions"][auth].get("filename") or {"token", "tokens"} & set(agent["extensions"][auth]):
            problems.append(f"agent {auth}: the token must come from a file, not the config")
        elif agent["extensions"][auth].get("wait_for_token_file") is not True:
            problems.append(f"agent {auth}: must not start without its token (wait_for_token_file)")
    protocols = gateway["receivers"]["otlp"]["protocols"]
    for proto, pcfg in protocols.items():
        tls = (pcfg or {}).get("tls") or {}
        if not (tls.get("cert_file") and tls.get("key_file")):
            problems.append(f"gateway {proto}: listens without TLS")
        if str(tls.get("min_version")) != "1.3":
            problems.append(f"gateway {proto}: TLS min_version must be 1.3")
        gw_auth = ((pcfg or {}).get("auth") or {}).get("authenticator")
        if not (gw_auth and component_type(gw_auth) == "bearertokenauth"
                and (gateway["extensions"].get(gw_auth) or {}).get("filename")):
            problems.append(f"gateway {proto}: no bearer token check")
        elif gateway["extensions"][gw_auth].get("wait_for_token_file") is not True:
            problems.append(f"gateway {gw_auth}: must not start without its tokens (wait_for_token_file)")
    for cname, cfg in (("agent", agent), ("gateway", gateway)):
        for _, key, value in walk(cfg):
            if key in ("insecure", "insecure_skip_verify") and value is not False:
                problems.append(f"{cname}: {key}: {value}")
    return problems


@pytest.mark.parametrize("name", CONFIGS)
def test_memory_limiter_first_in_every_pipeline_with_explicit_check_interval(name):
    assert memory_limiter_problems(load(CONFIGS[name])) == []


@pytest.mark.parametrize("name", CONFIGS)
def test_no_wildcard_listener_and_every_listener_explicit_on_loopback(name):
    assert listener_problems(load(CONFIGS[name]), CONFIGS[name].read_text()) == []


@pytest.mark.parametrize("name", CONFIGS)
def test_every_exporter_queue_is_persistent_batched_and_retried_deliberately(name):
    assert queue_problems(load(CONFIGS[name])) == []


def test_agent_to_gateway_link_keeps_tls_13_and_a_bearer_token_from_a_file():
    agent, gateway = load(AGENT_YAML), load(GATEWAY_YAML)
    assert set(agent["exporters"]) == {"otlp_grpc/gateway"}, "the agent exports only to the gateway"
    assert tls_problems(agent, gateway) == []


def test_static_checks_catch_broken_configs():
    """Negative controls: each check reports a config broken the way it guards against."""
    agent, gateway = load(AGENT_YAML), load(GATEWAY_YAML)

    broken = copy.deepcopy(agent)
    broken["service"]["pipelines"]["logs"]["processors"] = ["redaction", "memory_limiter"]
    assert memory_limiter_problems(broken)
    broken = copy.deepcopy(agent)
    broken["processors"]["memory_limiter"]["check_interval"] = "0s"
    assert memory_limiter_problems(broken)

    text = AGENT_YAML.read_text().replace("127.0.0.1:4318", "0.0.0.0:4318")
    assert listener_problems(yaml.safe_load(text), text)
    broken = copy.deepcopy(agent)
    del broken["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"]
    assert listener_problems(broken, AGENT_YAML.read_text())

    broken = copy.deepcopy(agent)
    del broken["exporters"]["otlp_grpc/gateway"]["sending_queue"]["storage"]
    assert queue_problems(broken)
    broken = copy.deepcopy(gateway)
    del broken["exporters"]["otlp_http/backend"]["sending_queue"]["batch"]["sizer"]
    assert queue_problems(broken)

    broken = copy.deepcopy(agent)
    broken["exporters"]["otlp_grpc/gateway"]["tls"]["insecure"] = True
    assert tls_problems(broken, gateway)
    broken = copy.deepcopy(agent)
    del broken["exporters"]["otlp_grpc/gateway"]["auth"]
    assert tls_problems(broken, gateway)
    broken = copy.deepcopy(agent)
    del broken["extensions"]["bearertokenauth/gateway"]["wait_for_token_file"]
    assert tls_problems(broken, gateway)
    broken = copy.deepcopy(gateway)
    del broken["receivers"]["otlp"]["protocols"]["grpc"]["tls"]
    assert tls_problems(agent, broken)
    broken = copy.deepcopy(gateway)
    broken["receivers"]["otlp"]["protocols"]["http"] = {"endpoint": "127.0.0.1:4418"}
    assert tls_problems(agent, broken)


@pytest.mark.parametrize("name", ["agent", "demo"])
def test_agent_storage_fsyncs(name):
    cfg = load(CONFIGS[name])
    stores = [e for eid, e in cfg["extensions"].items() if component_type(eid) == "file_storage"]
    assert stores and all(s.get("fsync") is True for s in stores)


@pytest.mark.parametrize("name", CONFIGS)
def test_health_check_and_own_metrics_enabled(name):
    cfg = load(CONFIGS[name])
    assert any(component_type(e) == "health_check" for e in cfg["service"]["extensions"])
    health = next(v for k, v in cfg["extensions"].items() if component_type(k) == "health_check")
    assert "check_collector_pipeline" not in health  # always reports healthy (contrib#11780)


SENSITIVE_KEYS = [
    "http.request.header.authorization", "http.request.header.cookie", "http.response.header.set-cookie",
    "http.request.header.x-api-key", "user.password", "db.passwd", "client_secret", "aws.secret_access_key",
    "access_token", "refresh_token", "app.api_key", "apikey", "private_key", "credentials", "x-amz-signature",
]
SAFE_KEYS = ["http.route", "url.path", "http.response.status_code", "service.name", "code.function.name",
             "user_agent.original", "catalogue.title_id", "book.author"]
SENSITIVE_VALUES = [
    ("Authorization: Bearer abc.DEF-123_x", "abc.DEF-123_x"),
    ("basic dXNlcjpwYXNzd29yZA==", "dXNlcjpwYXNzd29yZA"),
    ("jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjMifQ.c2lnbmF0dXJl here", "eyJzdWIiOiIxMjMifQ"),
    ("/titles?token=s3cr3t&limit=5", "s3cr3t"),
    ("login password=hunter2 ok", "hunter2"),
    ("/v1?access_token=tok1&x=1", "tok1"),
    ("cfg api_key=AK-998877 loaded", "AK-998877"),
    ("key AKIAABCDEFGHIJKLMNOP used", "AKIAABCDEFGHIJKLMNOP"),
]


def _go_to_python(pattern: str) -> re.Pattern:
    return re.compile(pattern)  # the patterns used are in the common subset of RE2 and Python re


def test_agent_redaction_policy_is_deliberate_and_identical_in_the_demo():
    agent = load(AGENT_YAML)
    red = agent["processors"]["redaction"]
    assert red["allow_all_keys"] is True, "the key policy must be explicit (the default keeps no keys)"
    assert red["redact_all_types"] is True  # list-valued header attributes are masked too
    assert red["summary"] in ("info", "silent")  # never the names/values of masked keys
    for pname, p in agent["service"]["pipelines"].items():
        assert "redaction" in p["processors"], f"agent {pname} pipeline does not redact"
    assert load(DEMO_YAML)["processors"]["redaction"] == red
    keys = [_go_to_python(p) for p in red["blocked_key_patterns"]]
    for k in SENSITIVE_KEYS:
        assert any(p.search(k) for p in keys), f"{k} would not be masked"
    for k in SAFE_KEYS:
        assert not any(p.search(k) for p in keys), f"{k} would be masked"
    values = [_go_to_python(p) for p in red["blocked_values"]]
    for text, secret in SENSITIVE_VALUES:
        masked = text
        for p in values:
            masked = p.sub("****", masked)
        assert secret not in masked, (text, masked)
    for harmless in ("GET /titles/42", "listing 20 titles", "basic plan", "the token bucket refilled"):
        assert all(not p.search(harmless) for p in values), harmless


def test_gateway_requires_its_secrets_and_backend_from_the_environment():
    gateway = load(GATEWAY_YAML)
    tls = gateway["receivers"]["otlp"]["protocols"]["grpc"]["tls"]
    assert env_default(tls["cert_file"]) is None and env_default(tls["key_file"]) is None
    assert env_default(gateway["extensions"]["bearertokenauth/agents"]["filename"]) is None
    assert env_default(gateway["exporters"]["otlp_http/backend"]["endpoint"]) is None


def test_readme_documents_every_environment_variable():
    readme = (COLLECTOR_DIR / "README.md").read_text()
    names = set()
    for path in README_CONFIGS:
        names |= set(re.findall(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)", path.read_text()))
    missing = sorted(n for n in names if n not in readme)
    assert not missing, f"collector/README.md does not document {missing}"
    for metric in ("otelcol_exporter_enqueue_failed", "otelcol_exporter_send_failed", "otelcol_exporter_queue_size",
                   "otelcol_exporter_queue_capacity", "otelcol_receiver_refused"):
        assert metric in readme


def test_readme_defaults_match_the_configs():
    """Each `| `VAR` | `default` |` row of the README's tables states the default the config really has."""
    readme = (COLLECTOR_DIR / "README.md").read_text()
    defaults: dict[str, set[str]] = {}
    for path in README_CONFIGS:
        for name, default in re.findall(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}", path.read_text()):
            defaults.setdefault(name, set()).add(default)
    rows = re.findall(r"^\| `(OTELCOL_[A-Z0-9_]+)` \| ([^|]+) \|", readme, re.M)
    assert len(rows) >= 30
    for name, cell in rows:
        assert name in defaults, f"README documents {name}, which no config uses"
        (config_default,) = defaults[name]
        stated = re.match(r"`([^`]*)`", cell.strip())
        if config_default == "" or config_default.startswith("unset "):
            assert not stated or "required" in cell, (name, cell)  # required, or a documented fallback
        else:
            assert stated and stated.group(1) == config_default, \
                f"{name}: README says {cell.strip()!r}, the config {config_default!r}"
