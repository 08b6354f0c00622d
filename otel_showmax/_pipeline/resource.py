"""The Resource: service identity, plus what tells one worker process from another."""

from __future__ import annotations

import os
import socket
import uuid
from typing import Any

from opentelemetry.sdk.resources import Resource

from .._config import Config
from .._version import __version__

INSTANCE_ID = "service.instance.id"


def build(config: Config) -> Resource:
    """The resource for this process: configured attributes win over detected ones."""
    attributes: dict[str, Any] = {
        "host.name": socket.gethostname(),
        "telemetry.distro.name": "otel_showmax",
        "telemetry.distro.version": __version__,
        **dict(config.resource_attributes),
        "service.name": config.service_name,
        "process.pid": os.getpid(),
    }
    resource = Resource.create(attributes)
    if INSTANCE_ID not in resource.attributes:  # opentelemetry-sdk 1.40 does not generate one
        resource = resource.merge(Resource({INSTANCE_ID: str(uuid.uuid4())}))
    return resource


def for_child(config: Config) -> Resource:
    """What changes in a forked child: its pid, and its instance id unless the user set one."""
    attributes: dict[str, Any] = {"process.pid": os.getpid()}
    if INSTANCE_ID not in dict(config.resource_attributes):
        attributes[INSTANCE_ID] = str(uuid.uuid4())
    return Resource(attributes)
