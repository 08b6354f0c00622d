"""Static checks of the scale-out tier (no binary needed): manifest-tier.yaml, tier-agent.yaml, tier-gateway.yaml."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest
import yaml

from ._otelcol import AGENT_YAML, COLLECTOR_DIR, REPO
from ._tier import TIER_AGENT_YAML, TIER_BUILD_SH, TIER_GATEWAY_YAML, TIER_MANIFEST
from .test_static import (
    CONTRIB,
    CORE,
    component_type,
    env_default,
    listener_problems,
    queue_problems,
    release_problems,
    tls_problems,
)

pytestmark = pytest.mark.collector

TIER_CONFIGS = {"tier-agent": TIER_AGENT_YAML, "tier-gateway": TIER_GATEWAY_YAML}

# What issue 18 asks for, by kind: module path (without version) -> component type.
TIER_COMPONENTS = {
    "receivers": {CORE + "receiver/otlpreceiver": "otlp"},
    "processors": {
        CORE + "processor/memorylimiterprocessor": "memory_limiter",
        CONTRIB + "processor/resourceprocessor": "resource",
        CONTRIB + "processor/redactionprocessor": "redaction",
        CONTRIB + "processor/tailsamplingprocessor": "tail_sampling",
    },
    "exporters": {
        CORE + "exporter/otlpexporter": "otlp_grpc",
        CORE + "exporter/debugexporter": "debug",
        CONTRIB + "exporter/loadbalancingexporter": "load_balancing",
        CONTRIB + "exporter/zipkinexporter": "zipkin",
        CONTRIB + "exporter/prometheusexporter": "prometheus",
    },
    "connectors": {CONTRIB + "connector/spanmetricsconnector": "span_metrics"},
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


def load(path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def tier_modules() -> dict[str, list[tuple[str, str]]]:
    m = load(TIER_MANIFEST)
    out = {kind: [tuple(e["gomod"].split()) for e in m.get(kind) or []] for kind in TIER_COMPONENTS}
    out["telemetry"] = [tuple(m["telemetry"]["gomod"].split())]
    return out  # type: ignore[return-value]


def tier_builder_version() -> str:
    m = re.search(r'^BUILDER_VERSION="(v[0-9.]+)"', TIER_BUILD_SH.read_text(), re.M)
    assert m, "BUILDER_VERSION not found in build-tier.sh"
    return m.group(1)


# -- the manifest ------------------------------------------------------------------------------------


def test_tier_manifest_lists_exactly_the_tier_components():
    mods = tier_modules()
    for kind, wanted in TIER_COMPONENTS.items():
        assert {mod for mod, _ in mods[kind]} == set(wanted), kind


def test_one_release_across_the_tier_manifest_and_its_builder():
    versions = [(mod, ver) for entries in tier_modules().values() for mod, ver in entries]
    assert release_problems(versions, tier_builder_version()) == []
    assert tier_builder_version() == "v0.161.0"  # the release the load balancer and Zipkin exporter are served at
    assert load(TIER_MANIFEST)["dist"]["version"].startswith("0.161.0")
    mixed = [(m, "v0.165.1" if m.endswith("loadbalancingexporter") else v) for m, v in versions]
    assert release_problems(mixed, tier_builder_version())


def test_tier_replaces_touch_no_collector_module():
    for line in load(TIER_MANIFEST).get("replaces") or []:
        old, new = (part.split()[0] for part in line.split("=>"))
        assert not old.startswith(("go.opentelemetry.io/collector", CONTRIB)), line
        assert old == new, line  # a version pin of the same module, nothing swapped in


def test_tier_build_output_is_git_ignored_and_scripts_are_executable():
    assert load(TIER_MANIFEST)["dist"]["output_path"] == "./_build/tier"
    assert "collector/_build/" in (REPO / ".gitignore").read_text().split()
    for script in (TIER_BUILD_SH, COLLECTOR_DIR / "build.sh", COLLECTOR_DIR / "test-deps.sh", REPO / "scripts/stack.sh"):
        assert script.stat().st_mode & 0o111, script
    assert "build-tier.sh" in (COLLECTOR_DIR / "build.sh").read_text()  # `make test` builds the tier too


# -- the configs -------------------------------------------------------------------------------------


def pipeline_problems(cfg: dict) -> list[str]:
    problems = []
    for pname, p in cfg["service"]["pipelines"].items():
        procs = p.get("processors") or []
        if not procs or component_type(procs[0]) != "memory_limiter":
            problems.append(f"pipeline {pname}: memory_limiter is not first ({procs})")
    limiter = cfg["processors"]["memory_limiter"]
    if not re.fullmatch(r"[1-9]\d*(ms|s)", str(limiter.get("check_interval"))):
        problems.append("memory_limiter: explicit non-zero check_interval expected")
    return problems


@pytest.mark.parametrize("name", TIER_CONFIGS)
def test_tier_configs_use_only_tier_components(name):
    cfg = load(TIER_CONFIGS[name])
    for kind in ("receivers", "processors", "exporters", "connectors", "extensions"):
        types = {component_type(c) for c in cfg.get(kind) or {}}
        assert types <= set(TIER_COMPONENTS[kind].values()), (name, kind, types)


@pytest.mark.parametrize("name", TIER_CONFIGS)
def test_tier_memory_limiter_first_listeners_on_loopback_queues_persistent(name):
    cfg, text = load(TIER_CONFIGS[name]), TIER_CONFIGS[name].read_text()
    assert pipeline_problems(cfg) == []
    assert listener_problems(cfg, text) == []
    pushed = copy.deepcopy(cfg)
    for eid in list(pushed["exporters"]):
        if component_type(eid) == "prometheus":  # a pull endpoint: no queue to persist
            assert str(env_default(pushed["exporters"][eid]["endpoint"])).startswith("127.0.0.1:")
            del pushed["exporters"][eid]
    assert queue_problems(pushed) == []
    health = cfg["extensions"]["health_check"]
    assert "check_collector_pipeline" not in health


def test_tier_agent_routes_by_trace_id_over_tls_13_with_a_token_and_no_per_replica_queue():
    agent, gateway = load(TIER_AGENT_YAML), load(TIER_GATEWAY_YAML)
    assert set(agent["exporters"]) == {"load_balancing/gateways"}
    lb = agent["exporters"]["load_balancing/gateways"]
    assert lb["routing_key"] == "traceID"
    assert list(lb["resolver"]) == ["static"]
    assert env_default(lb["resolver"]["static"]["hostnames"]) is None  # required, from the environment
    otlp = lb["protocol"]["otlp"]
    # Failures go back to the persistent top-level queue, not to an in-memory per-replica one.
    assert otlp["sending_queue"] == {"enabled": False} and otlp["retry_on_failure"] == {"enabled": False}
    as_exporter = {**agent, "exporters": {"load_balancing/gateways": otlp}}
    assert tls_problems(as_exporter, gateway) == []
    assert all(s.get("fsync") is True for k, s in agent["extensions"].items() if component_type(k) == "file_storage")
    # Negative control.
    broken = copy.deepcopy(as_exporter)
    broken["exporters"]["load_balancing/gateways"]["tls"]["min_version"] = "1.2"
    assert tls_problems(broken, gateway)


def test_tier_agent_redacts_exactly_like_the_agent():
    agent = load(TIER_AGENT_YAML)
    assert agent["processors"]["redaction"] == load(AGENT_YAML)["processors"]["redaction"]
    for pname, p in agent["service"]["pipelines"].items():
        assert "redaction" in p["processors"], pname


def sampling_problems(gateway: dict) -> list[str]:
    problems = []
    ts = gateway["processors"]["tail_sampling"]
    policies = {p["type"]: p for p in ts["policies"]}
    if policies.get("status_code", {}).get("status_code", {}).get("status_codes") != ["ERROR"]:
        problems.append("no policy keeping every trace with an error")
    if not env_default(policies.get("latency", {}).get("latency", {}).get("threshold_ms")):
        problems.append("no latency policy with a threshold")
    if env_default(policies.get("probabilistic", {}).get("probabilistic", {}).get("sampling_percentage")) is None:
        problems.append("no percentage of the rest")
    if ts.get("sample_on_first_match") or any(p["type"] in ("and", "composite", "drop") for p in ts["policies"]):
        problems.append("policies must be OR-ed plainly")
    pipelines = gateway["service"]["pipelines"]
    metrics_in = [p for p in pipelines.values() if "span_metrics" in p.get("exporters", [])]
    sampled = [p for p in pipelines.values() if "tail_sampling" in p.get("processors", [])]
    if len(metrics_in) != 1 or len(sampled) != 1:
        problems.append("one span-metrics pipeline and one sampled pipeline expected")
    else:
        if "tail_sampling" in metrics_in[0]["processors"]:
            problems.append("span metrics are made after sampling")
        if metrics_in[0]["receivers"] != sampled[0]["receivers"]:
            problems.append("span metrics do not see the same spans as the sampler")
    out = [p for p in pipelines.values() if "span_metrics" in p.get("receivers", [])]
    if not (out and all(component_type(e) == "prometheus" for p in out for e in p["exporters"])):
        problems.append("span metrics are not exported to the Prometheus endpoint")
    return problems


def test_tier_gateway_tail_samples_errors_slow_and_a_percentage_and_counts_every_span_first():
    gateway = load(TIER_GATEWAY_YAML)
    assert sampling_problems(gateway) == []
    dims = [d["name"] for d in gateway["connectors"]["span_metrics"]["dimensions"]]
    assert "http.route" in dims
    assert env_default(gateway["exporters"]["zipkin/backend"]["endpoint"]) is None  # required
    # Negative controls.
    broken = copy.deepcopy(gateway)
    broken["service"]["pipelines"]["traces/spanmetrics"]["processors"].append("tail_sampling")
    assert sampling_problems(broken)
    broken = copy.deepcopy(gateway)
    broken["processors"]["tail_sampling"]["policies"] = broken["processors"]["tail_sampling"]["policies"][1:]
    assert sampling_problems(broken)


def test_tier_gateway_receiver_requires_tls_13_and_a_token():
    gateway = load(TIER_GATEWAY_YAML)
    grpc = gateway["receivers"]["otlp"]["protocols"]["grpc"]
    assert list(gateway["receivers"]["otlp"]["protocols"]) == ["grpc"]
    assert str(grpc["tls"]["min_version"]) == "1.3"
    assert env_default(grpc["tls"]["cert_file"]) is None and env_default(grpc["tls"]["key_file"]) is None
    assert grpc["auth"]["authenticator"] == "bearertokenauth/agents"
    assert env_default(gateway["extensions"]["bearertokenauth/agents"]["filename"]) is None
