"""The text form of a fault injector's settings: ``SQS_CLUSTER_FAULTS`` for worker processes.

Two forms: a JSON object, or the compact ``seed=7,throttling=0.2,ops=sqs.SendMessageBatch|...``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from ._fault_kinds import ENV_VAR, FaultKind


def parse_spec(spec: str) -> dict[str, Any]:
    """The constructor arguments of :class:`FaultInjector` (by name) a spec describes."""
    text = spec.strip()
    if text.startswith("{"):
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError(f"{ENV_VAR}: expected a JSON object")
        return {
            "seed": data.get("seed", 0),
            "rates": data.get("rates", {}),
            "operations": data.get("operations"),
            "limit": data.get("limit"),
            "delay_scale": data.get("delay_scale"),
            "salt": str(data.get("salt", "")),
        }
    settings: dict[str, Any] = {"seed": 0, "rates": {}, "salt": ""}
    for part in filter(None, (p.strip() for p in re.split(r"[,;]", text))):
        name, sep, value = part.partition("=")
        if not sep:
            raise ValueError(f"{ENV_VAR}: expected name=value, got {part!r}")
        name = name.strip()
        value = value.strip()
        if name == "seed":
            settings["seed"] = int(value) if value.lstrip("-").isdigit() else value
        elif name in {"ops", "operations"}:
            settings["operations"] = [o for o in value.split("|") if o]
        elif name == "limit":
            settings["limit"] = int(value)
        elif name == "delay_scale":
            settings["delay_scale"] = float(value)
        elif name == "salt":
            settings["salt"] = value
        else:
            settings["rates"][FaultKind(name)] = float(value)
    return settings


def spec_text(
    *,
    seed: int | str,
    rates: Mapping[FaultKind, float],
    operations: Iterable[str] | None,
    limit: int | None,
    delay_scale: float | None,
    salt: str,
) -> str:
    """The JSON spec of these settings (what :func:`parse_spec` reads back)."""
    data: dict[str, Any] = {"seed": seed, "rates": {k.value: v for k, v in rates.items()}}
    if operations is not None:
        data["operations"] = sorted(operations)
    if limit is not None:
        data["limit"] = limit
    if delay_scale is not None:
        data["delay_scale"] = delay_scale
    if salt:
        data["salt"] = salt
    return json.dumps(data, separators=(",", ":"))
