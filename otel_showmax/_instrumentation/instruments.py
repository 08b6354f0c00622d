"""Bound synchronous instruments: the SDK's aggregations looked up once per attribute set, same output.

``BoundHistogram(histogram).record(value, attributes, context)`` exports what
``histogram.record(value, attributes, context)`` would (same points, start times, exemplars, views,
temporality), for less work per call: the first measurement of an attribute set goes through the SDK,
which creates the aggregations; we then look up and keep those aggregation objects per attribute set,
and later measurements of the set call their ``aggregate`` directly (under the aggregation's own lock,
as the SDK does) with the exemplar filter evaluated once, as the SDK does. Skipped per call: the
Measurement's attribute cleaning and copying, the per-view copy and recursive hashing of the
attributes, and the reader/view lookups.

Equivalence rests on what opentelemetry-sdk 1.45 does, pinned by tests/instrumentation/test_instruments.py:

- an instrument's view matches and their aggregation objects are never replaced or removed once
  created (collection, in delta as in cumulative temporality, resets them in place);
- readers are added/removed by replacing the consumer's storage mapping, never by mutating it: we
  compare it by identity on every call and start a new cache when it changes;
- a fork keeps the storages (MeterProvider._handle_fork and ShowmaxMeterProvider._handle_fork only
  replace provider locks and the resource), so a cache built in the parent is valid in the child;
- the cache key is the tuple of attribute items, and a hit must also match the exact value types
  (``True``, ``1`` and ``1.0`` are equal in Python but are distinct attribute sets for the SDK).
  Only sets of non-empty ``str`` keys and ``str``/``int``/``float``/``bool`` values are cached.

Anything else goes through the SDK's own method per call: a non-SDK instrument (no-op, proxy), a
disabled meter, a value the SDK would reject, attributes that are not a plain dict, new attribute sets
once the cache holds ``cap`` of them, and every measurement when ``ENABLED`` is False: on SDK versions
other than ``SUPPORTED_SDK`` unless setup()'s check found the same points (otel_showmax/_selfcheck.py;
off on 1.40), and outside the supported range.

The private SDK metric names used here come from otel_showmax/_upstream.py; tests/instrumentation/test_instruments.py
fails loudly when an SDK release changes them.
"""

from __future__ import annotations

from math import isfinite
from time import time_ns
from typing import Any

from opentelemetry.context import Context, get_current
from opentelemetry.sdk.version import __version__ as SDK_VERSION

from .._upstream import DropAggregation as _DropAggregation
from .._upstream import ExplicitBucketHistogramAggregation as _ExplicitBucketHistogramAggregation
from .._upstream import ExponentialBucketHistogramAggregation as _ExponentialBucketHistogramAggregation
from .._upstream import LastValueAggregation as _LastValueAggregation
from .._upstream import SDKCounter as _Counter
from .._upstream import SDKHistogram as _Histogram
from .._upstream import SDKUpDownCounter as _UpDownCounter
from .._upstream import SumAggregation as _SumAggregation
from .._upstream import SynchronousMeasurementConsumer
from .._upstream import clean_attribute_value as _clean_attribute_value
from .._upstream import hash_attributes as _hash_attributes

__all__ = [
    "DEFAULT_CAP", "ENABLED", "BoundCounter", "BoundHistogram", "BoundUpDownCounter", "attribute_key", "bind",
    "supported_sdk",
]

DEFAULT_CAP = 2048
SUPPORTED_SDK = ("1.45.",)
# Their aggregate() reads only value, time_unix_nano, attributes and context off the measurement.
_AGGREGATIONS = frozenset(
    {
        _SumAggregation,
        _LastValueAggregation,
        _ExplicitBucketHistogramAggregation,
        _ExponentialBucketHistogramAggregation,
        _DropAggregation,
    }
)
_SCALARS = frozenset({str, int, float, bool})
_UNKNOWN: Any = object()  # an aggregation not in _AGGREGATIONS: the SDK's path only


def supported_sdk(version: str = SDK_VERSION) -> bool:
    """Whether the golden tests checked the fast path against this opentelemetry-sdk version."""
    return version.startswith(SUPPORTED_SDK)


# Whether instruments bound from now on take the fast path: the golden-tested SDK versions, or what
# setup()'s check found on the installed one (otel_showmax/_selfcheck.py).
ENABLED = supported_sdk()


def attribute_key(attributes: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    """The precomputed key for ``record_key``/``add_key``: the attributes' items in order."""
    return tuple(attributes.items())


class _Measurement:
    """What an SDK aggregation's ``aggregate`` reads off a Measurement (the attributes already cleaned)."""

    __slots__ = ("attributes", "context", "instrument", "time_unix_nano", "value")

    def __init__(self, value: Any, time_unix_nano: int, instrument: Any, context: Context, attributes: Any) -> None:
        self.value = value
        self.time_unix_nano = time_unix_nano
        self.instrument = instrument
        self.context = context
        self.attributes = attributes


# entry: (value types, cleaned attributes, aggregations in the SDK's order, the key it was made from)
_Entry = tuple[tuple[type, ...], dict[str, Any], tuple[Any, ...], tuple[tuple[str, Any], ...]]


class _Bound:
    __slots__ = ("_cap", "_enabled", "_inst", "_sdk", "_state")
    _kind: Any = None
    _method = "record"
    _negative = False

    def __init__(self, instrument: Any, cap: int = DEFAULT_CAP) -> None:
        self._inst: Any = instrument
        self._cap = cap
        self._sdk = getattr(instrument, self._method)
        self._enabled = (
            ENABLED
            and type(instrument) is self._kind
            and type(instrument._measurement_consumer) is SynchronousMeasurementConsumer
        )
        # (the consumer's storage mapping the cache belongs to, the cache, whether it takes new entries)
        self._state: tuple[Any, dict[tuple[tuple[str, Any], ...], _Entry], bool] = (None, {}, False)

    @property
    def instrument(self) -> Any:
        return self._inst

    def cached(self) -> int:
        """How many attribute sets take the fast path now."""
        return len(self._state[1])

    def _measure(self, amount: Any, attributes: Any = None, context: Context | None = None) -> None:
        inst = self._inst
        state = self._state
        if (
            self._enabled
            and type(attributes) is dict
            and inst._is_enabled()
            and isfinite(amount)
            and (amount >= 0 or self._negative)
        ):
            items = tuple(attributes.items())
            if inst._measurement_consumer._reader_storages is state[0]:
                try:
                    entry = state[1].get(items)
                except TypeError:  # an unhashable value (a list): never cached
                    entry = None
                if entry is not None and entry[0] == tuple(map(type, attributes.values())):
                    self._aggregate(inst, amount, entry, context)
                    return
            self._slow(amount, attributes, context, items)
            return
        self._slow(amount, attributes, context, None)

    def _measure_key(self, amount: Any, key: tuple[tuple[str, Any], ...], context: Context | None = None) -> None:
        inst = self._inst
        state = self._state
        if (
            self._enabled
            and inst._is_enabled()
            and isfinite(amount)
            and (amount >= 0 or self._negative)
            and inst._measurement_consumer._reader_storages is state[0]
        ):
            try:
                entry = state[1].get(key)
            except TypeError:
                entry = None
            if entry is not None and (entry[3] is key or entry[0] == tuple([type(v) for _, v in key])):
                self._aggregate(inst, amount, entry, context)
                return
        attributes = dict(key)
        self._slow(amount, attributes, context, key if type(key) is tuple and len(attributes) == len(key) else None)

    @staticmethod
    def _aggregate(inst: Any, amount: Any, entry: _Entry, context: Context | None) -> None:
        # As SynchronousMeasurementConsumer.consume_measurement: the filter once, then each aggregation.
        time_unix_nano = time_ns()
        context = context or get_current()
        attributes = entry[1]
        measurement = _Measurement(amount, time_unix_nano, inst, context, attributes)
        sample = inst._measurement_consumer._sdk_config.exemplar_filter.should_sample(
            amount, time_unix_nano, attributes, context
        )
        for aggregation in entry[2]:
            aggregation.aggregate(measurement, sample)

    def _slow(self, amount: Any, attributes: Any, context: Context | None, items: Any) -> None:
        self._sdk(amount, attributes, context)
        if not self._enabled:
            return
        inst = self._inst
        storages = inst._measurement_consumer._reader_storages
        state = self._state
        if storages is not state[0]:
            state = self._state = (storages, {}, True)
        if items is None or not state[2] or len(state[1]) >= self._cap or type(attributes) is not dict:
            return
        if not (inst._is_enabled() and isfinite(amount) and (amount >= 0 or self._negative)):
            return
        entry = self._entry(storages, attributes, items)
        if entry is _UNKNOWN:
            self._state = (storages, {}, False)
        elif entry is not None:
            state[1][items] = entry

    def _entry(self, storages: Any, attributes: dict[str, Any], items: tuple[tuple[str, Any], ...]) -> _Entry | None:
        for key, value in items:
            if type(key) is not str or not key or type(value) not in _SCALARS:
                return None
        cleaned = _clean_attribute_value(attributes, None)
        aggregations = []
        for storage in storages.values():
            matches = storage._instrument_view_instrument_matches.get(self._inst)
            if matches is None:
                return None
            for match in matches:
                keys = match._view._attribute_keys
                point = dict(cleaned) if keys is None else {k: v for k, v in cleaned.items() if k in keys}
                aggregation = match._attributes_aggregation.get(_hash_attributes(point))
                if aggregation is None:
                    return None
                if type(aggregation) not in _AGGREGATIONS:
                    return _UNKNOWN
                aggregations.append(aggregation)
        return tuple(type(value) for _, value in items), cleaned, tuple(aggregations), items


class BoundHistogram(_Bound):
    """An SDK Histogram's ``record`` for less; ``record_key`` takes ``attribute_key(attributes)`` instead."""

    __slots__ = ()
    _kind: Any = _Histogram
    record = _Bound._measure
    record_key = _Bound._measure_key


class BoundCounter(_Bound):
    """An SDK Counter's ``add`` for less; ``add_key`` takes ``attribute_key(attributes)`` instead."""

    __slots__ = ()
    _kind: Any = _Counter
    _method = "add"
    add = _Bound._measure
    add_key = _Bound._measure_key


class BoundUpDownCounter(BoundCounter):
    """An SDK UpDownCounter's ``add`` for less (negative amounts too)."""

    __slots__ = ()
    _kind = _UpDownCounter
    _negative = True


def bind(instrument: Any, cap: int = DEFAULT_CAP) -> BoundHistogram | BoundCounter:
    """The fast wrapper for a histogram, counter or up-down counter (any API instrument: non-SDK ones pass through)."""
    from opentelemetry.metrics import Counter, Histogram, UpDownCounter

    if isinstance(instrument, Histogram):
        return BoundHistogram(instrument, cap)
    if isinstance(instrument, UpDownCounter):
        return BoundUpDownCounter(instrument, cap)
    if isinstance(instrument, Counter):
        return BoundCounter(instrument, cap)
    raise TypeError(f"not a histogram, counter or up-down counter: {instrument!r}")
