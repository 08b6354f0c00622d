"""otel_showmax._instrumentation.instruments: the same exported metrics as the SDK's own record/add, for less.

Golden tests replay one sequence of measurements and collections through the SDK instrument and
through the fast wrapper on two identical MeterProviders, on a controlled clock, and compare every
collected MetricsData. The "pinned" tests fail loudly when an SDK release changes a private name or
behaviour the fast path relies on.
"""

from __future__ import annotations

import dataclasses
import inspect
import random
import threading
from typing import Any

import pytest
from opentelemetry import context as context_api
from opentelemetry import trace
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.sdk.metrics import (
    AlwaysOffExemplarFilter,
    AlwaysOnExemplarFilter,
    Counter,
    ExemplarFilter,
    Histogram,
    MeterProvider,
    UpDownCounter,
)
from opentelemetry.sdk.metrics._internal import _view_instrument_match, instrument, measurement_consumer
from opentelemetry.sdk.metrics._internal import metric_reader_storage as storage_module
from opentelemetry.sdk.metrics._internal.measurement import Measurement
from opentelemetry.sdk.metrics.export import AggregationTemporality, InMemoryMetricReader
from opentelemetry.sdk.metrics.view import (
    DropAggregation,
    ExplicitBucketHistogramAggregation,
    ExponentialBucketHistogramAggregation,
    LastValueAggregation,
    SumAggregation,
    View,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from otel_showmax import _upstream
from otel_showmax._instrumentation import instruments
from otel_showmax._instrumentation.instruments import BoundCounter, BoundHistogram, BoundUpDownCounter, attribute_key, bind
from otel_showmax._pipeline.providers import ShowmaxMeterProvider
from tests._fork import in_child

# The fast path is golden-tested against the SDK versions in instruments.SUPPORTED_SDK; on the others
# (opentelemetry-sdk 1.40) it is off and every test here checks that bound instruments take the SDK's path.
FAST = instruments.ENABLED

RESOURCE = Resource({"service.name": "fastmetrics"})
DELTA = {Histogram: AggregationTemporality.DELTA, Counter: AggregationTemporality.DELTA,
         UpDownCounter: AggregationTemporality.DELTA}
VALUES = [0, 0.0, 3, 5, 5.5, 7, 10, 12, 30, 60, 75, 80, 200, 400, 800, 999.5, 2000, 7000, 9000, 20000]


class PickyFilter(ExemplarFilter):
    """Samples from what it is given: the value, the attributes and the context (None or not)."""

    def should_sample(self, value: float, time_unix_nano: int, attributes: Any, context: Any) -> bool:
        return context is not None and bool(attributes) and attributes.get("http.status_code") != 404 and value > 5


class Clock:
    now = 1_000_000_000

    def __call__(self) -> int:
        return self.now


@pytest.fixture
def clock(monkeypatch):
    clock = Clock()
    for module in (instrument, _view_instrument_match, storage_module, measurement_consumer, instruments):
        monkeypatch.setattr(module, "time_ns", clock)
    return clock


def span_context(n: int, sampled: bool) -> Any:
    flags = TraceFlags(TraceFlags.SAMPLED if sampled else TraceFlags.DEFAULT)
    ctx = SpanContext(trace_id=0x1000 + n, span_id=0x2000 + n, is_remote=False, trace_flags=flags)
    return trace.set_span_in_context(NonRecordingSpan(ctx))


def http_attrs(i: int, code: Any = 200) -> dict[str, Any]:
    return {
        "http.method": "GET", "http.scheme": "http", "http.flavor": "1.1", "http.server_name": "localhost",
        "net.host.port": 8000, "http.status_code": code, "http.target": f"/titles/{i}", "net.host.name": "127.0.0.1",
    }


def script(n: int = 400, seed: int = 7, collect_every: int = 37) -> list[tuple]:
    """Measurements over 12 target paths x 3 codes, values in every bucket, sampled/unsampled/no span."""
    rng = random.Random(seed)
    contexts = [None, span_context(1, True), span_context(2, False), span_context(3, True)]
    ops: list[tuple] = []
    for step in range(n):
        if step and step % collect_every == 0:
            ops.append(("collect",))
        if rng.random() < 0.6:  # hot sets, as a service's busiest routes
            attrs = http_attrs(rng.randrange(3))
        else:
            attrs = http_attrs(rng.randrange(12), rng.choice([200, 404, 500]))
        how = rng.choice(["dict", "dict", "key", "attached"])
        ops.append(("record", rng.choice(VALUES), attrs, rng.choice(contexts), how))
    # equal in Python, distinct attribute sets for the SDK
    codes = (200, 200.0, True, 1, 1.0, False, 0, "200")
    ops.extend(("record", 5, {"code": code}, contexts[1], "dict") for code in codes)
    ops.extend(("record", 7, {"code": code}, contexts[1], "key") for code in codes)
    ops.extend(("record", 6, {"code": code}, contexts[1], "dict") for code in reversed(codes))
    ops.append(("record", 9, {}, contexts[1], "dict"))
    ops.append(("record", 9, None, contexts[1], "dict"))
    if _upstream.METRIC_KEYS_BY_TYPE:  # opentelemetry-sdk 1.40 raises on a list value (unhashable)
        ops.append(("record", 11, {"list": [1, 2], "k": "v"}, contexts[3], "dict"))
    ops.append(("record", 12, {"k": type("Str", (str,), {})("v")}, contexts[3], "dict"))
    ops.append(("record", 13, {"k": "v"}, contexts[3], "dict"))
    ops.append(("collect",))
    return ops


def run(ops: list[tuple], use_fast: bool, clock: Clock, *, temporalities=("cumulative",), views=(),
        exemplar_filter=None, kind: str = "histogram", cap: int = 5, provider_class=MeterProvider,
        advisory=None, add_reader_at: int | None = None, between=None) -> tuple[list[Any], Any]:
    random.seed(1)  # the counters' SimpleFixedSizeExemplarReservoir
    clock.now = 1_000_000_000
    readers = [InMemoryMetricReader(preferred_temporality=DELTA if t == "delta" else {}) for t in temporalities]
    provider = provider_class(metric_readers=readers, resource=RESOURCE, views=views, exemplar_filter=exemplar_filter,
                              shutdown_on_exit=False)
    meter = provider.get_meter("test", "1.0")
    if kind == "histogram":
        inst: Any = meter.create_histogram("http.server.duration", unit="ms", description="d",
                                           explicit_bucket_boundaries_advisory=advisory)
    elif kind == "counter":
        inst = meter.create_counter("requests", unit="1")
    else:
        inst = meter.create_up_down_counter("in_flight", unit="1")
    target = bind(inst, cap) if use_fast else inst
    method = "record" if kind == "histogram" else "add"
    collected: list[Any] = []
    for index, op in enumerate(ops):
        clock.now += 1_000
        if index == add_reader_at:
            extra = InMemoryMetricReader()
            provider.add_metric_reader(extra)
            readers.append(extra)
        if between is not None:
            between(index, provider)
        if op[0] == "collect":
            collected.extend(reader.get_metrics_data() for reader in readers)
            continue
        _, value, attrs, ctx, how = op
        if kind == "updown" and index % 3 == 0:
            value = -value
        token = None
        if how == "attached":
            token = context_api.attach(ctx or context_api.Context())
            ctx = None
        try:
            if use_fast and how == "key" and type(attrs) is dict:
                getattr(target, method + "_key")(value, attribute_key(attrs), ctx)
            else:
                getattr(target, method)(value, attrs, ctx)
        finally:
            if token is not None:
                context_api.detach(token)
    return collected, target


def assert_same(sdk: list[Any], ours: list[Any]) -> None:
    assert len(sdk) == len(ours)
    for a, b in zip(sdk, ours, strict=True):
        assert a == b
        assert (a.to_json() if a else a) == (b.to_json() if b else b)  # attribute order too


def expected_sdk_calls(ops: list[tuple], cap: int) -> int:
    """How many measurements take the SDK's path: the cache's rules replayed."""
    cache: dict[Any, tuple] = {}
    calls = 0
    for op in ops:
        if op[0] != "record":
            continue
        attrs = op[2]
        ok = type(attrs) is dict and all(type(k) is str and k and type(v) in (str, int, float, bool)
                                         for k, v in attrs.items())
        items = tuple(attrs.items()) if ok else None
        types = tuple(map(type, attrs.values())) if ok else None
        if items is not None and cache.get(items) == types:
            continue
        calls += 1
        if items is not None and len(cache) < cap:
            cache[items] = types
    return calls


def count_sdk_calls(monkeypatch) -> list[int]:
    calls = [0]
    slow = instruments._Bound._slow

    def counting(self, *args):
        calls[0] += 1
        return slow(self, *args)

    monkeypatch.setattr(instruments._Bound, "_slow", counting)
    return calls


CONFIGS = {
    "cumulative": {},
    "delta": {"temporalities": ("delta",)},
    "two readers": {"temporalities": ("cumulative", "delta")},
    "always on": {"exemplar_filter": AlwaysOnExemplarFilter(), "temporalities": ("delta",)},
    "always off": {"exemplar_filter": AlwaysOffExemplarFilter()},
    "custom filter": {"exemplar_filter": PickyFilter(), "temporalities": ("delta",)},
    "advisory buckets": {"advisory": [0.0, 0.5, 4.0, 50.0, 1000.0], "temporalities": ("delta", "cumulative")},
    "views": {
        "temporalities": ("cumulative", "delta"),
        "views": [
            View(instrument_name="http.server.duration", attribute_keys={"http.method", "http.status_code", "code"}),
            View(instrument_name="http.server.duration", name="buckets",
                 aggregation=ExplicitBucketHistogramAggregation([0, 10, 100], record_min_max=False)),
            View(instrument_name="http.server.duration", name="expo", aggregation=ExponentialBucketHistogramAggregation(20)),
            View(instrument_name="http.server.duration", name="sum", aggregation=SumAggregation()),
            View(instrument_name="http.server.duration", name="last", aggregation=LastValueAggregation()),
            View(instrument_name="http.server.duration", name="dropped", aggregation=DropAggregation()),
        ],
    },
    "no attributes kept": {"views": [View(instrument_name="*", attribute_keys=set())]},
    "dropped": {"views": [View(instrument_name="*", aggregation=DropAggregation())]},
    "no reader": {"temporalities": ()},
    "showmax provider": {"provider_class": ShowmaxMeterProvider, "temporalities": ("delta",)},
}


@pytest.mark.parametrize("config", list(CONFIGS))
def test_histogram_golden(clock, monkeypatch, config):
    ops = script()
    sdk, _ = run(ops, False, clock, **CONFIGS[config])
    calls = count_sdk_calls(monkeypatch)
    ours, wrapper = run(ops, True, clock, **CONFIGS[config])
    assert_same(sdk, ours)
    if FAST:
        assert wrapper.cached() == 5  # the cap
        assert calls[0] == expected_sdk_calls(ops, 5)
        assert calls[0] < sum(1 for op in ops if op[0] == "record") / 2, "the fast path was hardly used"
    else:  # the SDK's path for every measurement
        assert wrapper.cached() == 0 and calls[0] == sum(1 for op in ops if op[0] == "record")
    if config not in ("no reader", "dropped"):
        assert any(e for m in sdk if m for p in m.resource_metrics[0].scope_metrics[0].metrics[0].data.data_points
                   for e in p.exemplars) == (config != "always off")


@pytest.mark.parametrize("kind", ["counter", "updown"])
@pytest.mark.parametrize("config", ["cumulative", "delta", "two readers", "always on", "views"])
def test_counters_golden(clock, kind, config):
    settings = dict(CONFIGS[config])
    if config == "views":
        name = "requests" if kind == "counter" else "in_flight"
        settings["views"] = [View(instrument_name="*", attribute_keys={"http.status_code"}),
                             View(instrument_name=name, name="all")]
        if hasattr(instruments._Counter, "_advisory") or FAST:  # opentelemetry-sdk 1.40 fails a counter's histogram view
            settings["views"].append(
                View(instrument_name=name, name="histogram", aggregation=ExplicitBucketHistogramAggregation()))
    ops = script()
    sdk, _ = run(ops, False, clock, kind=kind, **settings)
    ours, wrapper = run(ops, True, clock, kind=kind, **settings)
    assert_same(sdk, ours)
    assert isinstance(wrapper, BoundUpDownCounter if kind == "updown" else BoundCounter)
    assert wrapper.cached() == (5 if FAST else 0)


def test_large_cap_caches_every_plain_set(clock):
    ops = script()
    sdk, _ = run(ops, False, clock, temporalities=("delta", "cumulative"))
    ours, wrapper = run(ops, True, clock, temporalities=("delta", "cumulative"), cap=1000)
    assert_same(sdk, ours)
    # 12 paths x 3 codes (at most), 8 {"code": ...} sets with scalar values, {}, {"k": "v"}
    assert 20 < wrapper.cached() <= 36 + 10 if FAST else wrapper.cached() == 0


def test_reader_added_midway_starts_a_new_cache(clock):
    ops = script()
    if not hasattr(MeterProvider, "add_metric_reader"):  # opentelemetry-sdk 1.40: readers are fixed at creation
        assert not FAST
        return
    sdk, _ = run(ops, False, clock, temporalities=("delta",), add_reader_at=150)
    ours, wrapper = run(ops, True, clock, temporalities=("delta",), add_reader_at=150)
    assert_same(sdk, ours)
    assert wrapper.cached() == 5


def test_meter_disabled_midway(clock):
    from opentelemetry.sdk.metrics import _internal

    if not hasattr(_internal, "_MeterConfig"):  # opentelemetry-sdk 1.40: no meter configurator
        assert not FAST and not hasattr(MeterProvider, "_set_meter_configurator")
        return
    _MeterConfig = _internal._MeterConfig

    def between(index: int, provider: Any) -> None:
        if index in (100, 250):
            enabled = index == 250
            provider._set_meter_configurator(meter_configurator=lambda scope: _MeterConfig(is_enabled=enabled))

    ops = script()
    sdk, _ = run(ops, False, clock, between=between)
    ours, _ = run(ops, True, clock, between=between)
    assert_same(sdk, ours)


def test_values_the_sdk_rejects(clock):
    values = (5, -1, float("nan"), float("inf"), -0.5, 3)
    if not FAST:  # opentelemetry-sdk 1.40 aggregates NaN: NaN sums never compare equal
        values = (5, -1, float("inf"), -0.5, 3)
    ops = [("record", v, http_attrs(1), None, how) for v in values for how in ("dict", "key")] + [("collect",)]
    for kind in ("histogram", "counter", "updown"):
        sdk, _ = run(ops, False, clock, kind=kind)
        ours, _ = run(ops, True, clock, kind=kind)
        assert_same(sdk, ours)


def test_unknown_aggregation_means_the_sdk_path(clock, monkeypatch):
    ops = script()
    sdk, _ = run(ops, False, clock)
    monkeypatch.setattr(instruments, "_AGGREGATIONS", frozenset())
    calls = count_sdk_calls(monkeypatch)
    ours, wrapper = run(ops, True, clock)
    assert_same(sdk, ours)
    assert wrapper.cached() == 0
    assert calls[0] == sum(1 for op in ops if op[0] == "record")


def test_fast_path_off_means_the_sdk_path(clock, monkeypatch):
    """Another SDK version whose check failed at setup() (otel_showmax/_selfcheck.py), or out of range."""
    monkeypatch.setattr(instruments, "ENABLED", False)
    ops = script(60)
    sdk, _ = run(ops, False, clock)
    ours, wrapper = run(ops, True, clock)
    assert_same(sdk, ours)
    assert wrapper.cached() == 0


def test_non_sdk_instruments_pass_through():
    meter = NoOpMeterProvider().get_meter("x")
    for inst in (meter.create_histogram("h"), meter.create_counter("c"), meter.create_up_down_counter("u")):
        wrapper = bind(inst)
        assert wrapper.instrument is inst
        wrapper._measure(1, {"a": "b"}, None)
        wrapper._measure_key(1, (("a", "b"),), None)
        assert wrapper.cached() == 0
    with pytest.raises(TypeError):
        bind(meter.create_gauge("g"))


def test_wrong_wrapper_kind_passes_through():
    provider = MeterProvider(metric_readers=[reader := InMemoryMetricReader()], shutdown_on_exit=False)
    counter = provider.get_meter("x").create_counter("c")
    wrapper = BoundUpDownCounter(counter)
    wrapper.add(1, {"a": "b"})
    wrapper.add(1, {"a": "b"})
    assert wrapper.cached() == 0
    point = reader.get_metrics_data().resource_metrics[0].scope_metrics[0].metrics[0].data.data_points[0]
    assert point.value == 2


def test_threads(clock):
    """Concurrent fast records lose nothing: totals, buckets, min and max as the SDK's."""
    del clock  # the fixed clock keeps start times equal
    values = [VALUES[i % len(VALUES)] for i in range(3000)]
    results = []
    for use_fast in (False, True):
        reader = InMemoryMetricReader()
        provider = MeterProvider(metric_readers=[reader], resource=RESOURCE, shutdown_on_exit=False)
        hist = provider.get_meter("t").create_histogram("h")
        target: Any = BoundHistogram(hist, cap=4) if use_fast else hist
        ctx = span_context(1, True)

        def work(offset: int, target=target, ctx=ctx) -> None:
            for i, value in enumerate(values):
                target.record(value, http_attrs((i + offset) % 6), ctx)

        threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        points = reader.get_metrics_data().resource_metrics[0].scope_metrics[0].metrics[0].data.data_points
        results.append(sorted((sorted(p.attributes.items()), p.count, p.sum, p.bucket_counts, p.min, p.max)
                              for p in points))
    assert results[0] == results[1]
    assert sum(r[1] for r in results[1]) == 8 * len(values)


def test_fork_child_uses_the_parents_cache_correctly(clock):
    """A cache built before fork stays right in the child (the SDK keeps its storages across fork)."""
    ops = script(300)
    half = len(ops) // 2
    providers = []
    for use_fast in (False, True):
        reader = InMemoryMetricReader(preferred_temporality=DELTA)
        provider = ShowmaxMeterProvider(metric_readers=[reader], resource=RESOURCE, shutdown_on_exit=False)
        hist = provider.get_meter("t").create_histogram("http.server.duration", unit="ms")
        providers.append((reader, BoundHistogram(hist, cap=5) if use_fast else hist))

    def replay(part: list[tuple]) -> list[list[Any]]:
        out: list[list[Any]] = [[], []]
        for index, op in enumerate(part):
            for n, (reader, target) in enumerate(providers):
                clock.now = 2_000_000_000 + index * 1000
                if op[0] == "collect":
                    out[n].append(reader.get_metrics_data())
                else:
                    target.record(op[1], op[2], op[3])
        return out

    before = replay(ops[:half])
    assert_same(*before)
    assert providers[1][1].cached() == (5 if FAST else 0)
    def child() -> None:
        after = replay(ops[half:])
        assert_same(*after)
        assert providers[1][1].cached() == (5 if FAST else 0)

    assert in_child(child) == 0, "the child's fast measurements differ from the SDK's"


# -- pinned: what the fast path assumes of the SDK ----------------------------------------------------


def test_sdk_version_is_one_the_fast_path_was_checked_against():
    # Golden-tested on 1.45; elsewhere setup()'s check decides (otel_showmax/_selfcheck.py), off on 1.40.
    assert instruments.supported_sdk() is FAST
    assert FAST is (_upstream.installed_versions()["opentelemetry-sdk"].startswith(instruments.SUPPORTED_SDK))


def test_private_names_exist_and_look_as_assumed():
    provider = MeterProvider(metric_readers=[InMemoryMetricReader()], shutdown_on_exit=False)
    hist = provider.get_meter("x").create_histogram("h")
    if not FAST:  # opentelemetry-sdk 1.40: the fast path is off, and bound instruments say so
        assert BoundHistogram(hist)._enabled is False
        return
    assert type(hist) is instruments._Histogram
    assert type(provider.get_meter("x").create_counter("c")) is instruments._Counter
    assert type(provider.get_meter("x").create_up_down_counter("u")) is instruments._UpDownCounter
    consumer = hist._measurement_consumer
    assert type(consumer) is instruments.SynchronousMeasurementConsumer
    assert hist._is_enabled() is True
    assert hasattr(consumer._sdk_config.exemplar_filter, "should_sample")
    hist.record(1, {"a": "b"})
    (storage,) = consumer._reader_storages.values()
    (match,) = storage._instrument_view_instrument_matches[hist]
    assert match._view._attribute_keys is None
    key = instruments._hash_attributes(instruments._clean_attribute_value({"a": "b"}, None))
    assert type(match._attributes_aggregation[key]) is instruments._ExplicitBucketHistogramAggregation
    for cls in instruments._AGGREGATIONS:
        assert list(inspect.signature(cls.aggregate).parameters)[:3] == ["self", "measurement", "should_sample_exemplar"]


def test_our_measurement_has_the_sdks_fields():
    assert {f.name for f in dataclasses.fields(Measurement)} == set(instruments._Measurement.__slots__)


@pytest.mark.parametrize("temporality", ["delta", "cumulative"])
def test_aggregations_and_matches_survive_collection(temporality):
    reader = InMemoryMetricReader(preferred_temporality=DELTA if temporality == "delta" else {})
    provider = MeterProvider(metric_readers=[reader], shutdown_on_exit=False,
                             views=[View(instrument_name="h"), View(instrument_name="h", name="h2")])
    hist = provider.get_meter("x").create_histogram("h")
    hist.record(1, {"a": "b"})
    (storage,) = hist._measurement_consumer._reader_storages.values()
    matches = storage._instrument_view_instrument_matches[hist]
    before = [(m, dict(m._attributes_aggregation)) for m in matches]
    for _ in range(3):
        reader.get_metrics_data()
        assert storage._instrument_view_instrument_matches[hist] is matches
        assert [(m, m._attributes_aggregation) for m in matches] == before
        hist.record(2, {"a": "b"})


def test_reader_changes_replace_the_storage_mapping():
    if not hasattr(MeterProvider, "add_metric_reader"):  # opentelemetry-sdk 1.40: readers are fixed at creation
        assert not FAST
        return
    provider = MeterProvider(metric_readers=[first := InMemoryMetricReader()], shutdown_on_exit=False)
    consumer = provider._measurement_consumer
    storages = consumer._reader_storages
    provider.add_metric_reader(second := InMemoryMetricReader())
    assert consumer._reader_storages is not storages
    storages = consumer._reader_storages
    provider.remove_metric_reader(second)
    assert consumer._reader_storages is not storages
    assert list(consumer._reader_storages) == [first]


@pytest.mark.parametrize("cls", [MeterProvider, ShowmaxMeterProvider])
def test_fork_hook_keeps_the_storages(cls):
    provider = cls(metric_readers=[InMemoryMetricReader()], shutdown_on_exit=False)
    consumer = provider._measurement_consumer
    storages = consumer._reader_storages
    if not hasattr(provider, "_handle_fork"):  # opentelemetry-sdk 1.40: no at-fork hook on MeterProvider
        assert cls is MeterProvider and not FAST
        return
    provider._handle_fork()
    assert provider._measurement_consumer is consumer and consumer._reader_storages is storages
