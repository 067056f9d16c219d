"""The public API's types under ``mypy --strict``: a typed handler's message, the model it is
parsed into and a cluster's globals are their own types, never ``Any``.

One mypy run over a small file that uses docs/examples/batch_models.py; each ``reveal_type``
line names the type it must reveal and each misuse the error it must raise, so a regression to
``Any`` (which reveals ``Any`` and accepts every misuse) fails here.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

mypy_api = pytest.importorskip("mypy.api", reason="mypy is a dev dependency")

ROOT = Path(__file__).resolve().parent.parent
ORDER = "docs.examples.batch_models.Order"

CHECKS = textwrap.dedent(
    """
    from __future__ import annotations

    from typing import Any

    import sqs_cluster
    from docs.examples.batch_models import Line, Order, Prices, price_of, process, total
    from sqs_cluster import ClusterRecord, MessageClient, ReceivedMessage, sync


    def plain(message: ReceivedMessage[Order]) -> None:
        reveal_type(message.body)  # reveal: {order}
        reveal_type(message.task)  # reveal: {order}
        reveal_type(message.body.lines[0].quantity)  # reveal: int
        message.task["n"]  # error: Value of type "Order" is not indexable


    def blocking(message: sync.ReceivedMessage[Order]) -> None:
        reveal_type(message.body)  # reveal: {order}
        reveal_type(message.task)  # reveal: {order}


    def untyped(message: ReceivedMessage[Any]) -> None:
        reveal_type(message.body)  # reveal: Any


    async def batch(client: MessageClient, facade: sync.MessageClient, event: Any) -> None:
        handler: sqs_cluster.Handler[Order] = total
        reveal_type(handler)  # reveal: def ({event}.ReceivedMessage[{order}])
        await client.safe_process_batch(event, total, model=Order)
        await client.safe_process_batch(event, total, model=Line)  # error: Argument 2 to "safe_
        facade.safe_process_batch(event, plain_sync, model=Order)
        facade.safe_process_batch(event, plain_sync, model=Line)  # error: Argument 2 to "safe_
        reveal_type(await process(client, event))  # reveal: TypedDict({batch}.PartialBatchResponse,


    def plain_sync(message: sync.ReceivedMessage[Order]) -> int:
        return len(message.body.lines)


    async def clusters(cluster: ClusterRecord[None, Prices]) -> None:
        reveal_type(await cluster.get_globals())  # reveal: TypedDict({ex}.Prices,
        reveal_type(await price_of(cluster, "a"))  # reveal: int
    """
).format(
    order=ORDER,
    ex="docs.examples.batch_models",
    batch="sqs_cluster._messages.batch",
    event="sqs_cluster._messages.event",
)


def expectations(source: str) -> dict[int, tuple[str, str]]:
    """Line number -> ("reveal" or "error", the text mypy must print there)."""
    found = {}
    for number, line in enumerate(source.splitlines(), start=1):
        match = re.search(r"# (reveal|error): (.+)$", line)
        if match:
            found[number] = (match[1], match[2])
    return found


def test_typed_handlers_models_and_globals_infer_their_types(tmp_path: Path) -> None:
    check = tmp_path / "typed_checks.py"
    check.write_text(CHECKS)
    out, err, _ = mypy_api.run(
        [
            "--strict",
            "--cache-dir",
            str(tmp_path / "cache"),
            "--config-file",
            str(ROOT / "pyproject.toml"),
            "--explicit-package-bases",
            str(check),
            str(ROOT / "docs" / "examples" / "batch_models.py"),
        ]
    )
    assert not err, err
    reported: dict[int, list[str]] = {}
    for line in out.splitlines():
        match = re.match(rf"{re.escape(str(check))}:(\d+): (?:note|error): (.*)", line)
        if match:
            reported.setdefault(int(match[1]), []).append(match[2])
        else:
            assert "batch_models.py" not in line, f"the example does not type-check: {line}"
    wanted = expectations(CHECKS)
    for number, (kind, text) in wanted.items():
        said = reported.get(number, [])
        if kind == "reveal":
            assert f'Revealed type is "{text}' in " ".join(said), (number, text, said)
        else:
            assert any(s.startswith(text) for s in said), (number, text, said)
    unexpected = {n: s for n, s in reported.items() if n not in wanted}
    assert not unexpected, unexpected
