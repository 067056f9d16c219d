"""The public API's types under ``mypy --strict``: a typed handler's message, the model it is
parsed into, a cluster's globals (read, updated, in its callback) and the results of records
are their own types, never ``Any``; left without their optional parameters they stay ``Any``.

One mypy run over a small file that uses docs/examples/batch_models.py and
docs/examples/typed_globals.py; each ``reveal_type``
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

    from collections.abc import AsyncIterator, Callable
    from typing import Any

    import sqs_cluster
    from docs.examples.batch_models import Line, Order, Prices, price_of, process, total
    from docs.examples.typed_globals import Line as TypedLine, discounted, invoice, line_cents
    from sqs_cluster import (
        ClusterRecord,
        MessageClient,
        MessageRecord,
        ReceivedMessage,
        RecordKey,
        TaskResult,
        sync,
    )


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
        reveal_type(handler)  # reveal: def ({event}.ReceivedMessage[{order}, Any])
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


    async def task_globals(
        m: ReceivedMessage[Line, Prices], blocking: sync.ReceivedMessage[Line, Prices]
    ) -> None:
        reveal_type(m.task)  # reveal: {ex}.Line
        reveal_type(await m.get_globals())  # reveal: {P}
        reveal_type(await m.get_message_cluster())  # reveal: {model}.ClusterRecord[Any, {P}
        reveal_type(blocking.get_globals())  # reveal: {P}
        reveal_type(blocking.get_message_cluster())  # reveal: {sync_model}.ClusterRecord[Any, {P}
        (await m.get_globals())["euros"]  # error: TypedDict "Prices" has no key "euros"


    async def untyped_globals(message: ReceivedMessage[Any], cluster: ClusterRecord[Any]) -> None:
        reveal_type(await message.get_globals())  # reveal: Any
        reveal_type(await cluster.get_globals())  # reveal: Any


    async def discounted_async(prices: Prices) -> Prices:
        return prices


    async def updating(
        c: MessageClient, f: sync.MessageClient, k: RecordKey, prices: Prices
    ) -> None:
        reveal_type(await c.update_message_cluster_globals(k, discounted))  # reveal: {TP}
        reveal_type(await c.update_cluster_globals(k, discounted_async))  # reveal: {P}
        reveal_type(await c.update_message_cluster_globals(k, prices))  # reveal: {P}
        reveal_type(await c.update_message_cluster_globals(k, lambda old: old))  # reveal: Any
        reveal_type(f.update_message_cluster_globals(k, discounted))  # reveal: {TP}
        reveal_type(f.update_cluster_globals(k, prices))  # reveal: {P}
        reveal_type(f.update_cluster_globals(k, lambda old: {{**old, "n": 1}}))  # reveal: Any
        n: int = await c.update_message_cluster_globals(k, discounted)  # error: Argument 2 to
        reveal_type(await c.get_message_cluster_globals(k))  # reveal: Any


    async def results(
        client: MessageClient, record: MessageRecord[None, int], untyped: MessageRecord[Any]
    ) -> None:
        reveal_type(record.result)  # reveal: int
        reveal_type(untyped.result)  # reveal: Any
        reveal_type(client.iter_results(record.key))  # reveal: {untyped_results}
        items: AsyncIterator[TaskResult[Line, int]] = client.iter_results(record.key)
        async for item in items:
            reveal_type(item.task)  # reveal: {ex}.Line
            reveal_type(item.result)  # reveal: int
            item.result.upper()  # error: "int" has no attribute "upper"


    async def callbacks(client: MessageClient, facade: sync.MessageClient, event: Any) -> None:
        await client.safe_process_batch(
            event, line_cents, model=TypedLine, on_cluster_complete=invoice
        )
        facade.safe_process_batch(event, plain_sync, on_cluster_complete=blocking_invoice)
        reveal_type(invoice)  # reveal: def (cluster: {model}.ClusterRecord[None, {TP}
        cluster: ClusterRecord[None, Prices] = await client.get_message_cluster("SQSMessage$c")
        reveal_type(cluster.meta)  # reveal: None
        reveal_type(await cluster.get_globals())  # reveal: {P}


    def blocking_invoice(
        cluster: sync.ClusterRecord[None, Prices], get_globals: Callable[[], Prices]
    ) -> None:
        reveal_type(get_globals())  # reveal: {P}
        reveal_type(cluster.get_globals())  # reveal: {P}
    """
).format(
    order=ORDER,
    ex="docs.examples.batch_models",
    typed="docs.examples.typed_globals",
    batch="sqs_cluster._messages.batch",
    event="sqs_cluster._messages.event",
    model="sqs_cluster._clusters.model",
    sync_model="sqs_cluster.sync._clusters_model",
    P="TypedDict(docs.examples.batch_models.Prices,",
    TP="TypedDict(docs.examples.typed_globals.Prices,",
    untyped_results="typing.AsyncIterator[tuple[int, Any, Any, "
    "fallback=sqs_cluster._clusters.model.TaskResult[Any, Any]]]",
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
            str(ROOT / "docs" / "examples" / "typed_globals.py"),
        ]
    )
    assert not err, err
    reported: dict[int, list[str]] = {}
    for line in out.splitlines():
        match = re.match(rf"{re.escape(str(check))}:(\d+): (?:note|error): (.*)", line)
        if match:
            reported.setdefault(int(match[1]), []).append(match[2])
        else:
            assert "docs/examples" not in line, f"an example does not type-check: {line}"
    wanted = expectations(CHECKS)
    for number, (kind, text) in wanted.items():
        said = reported.get(number, [])
        if kind == "reveal":
            assert f'Revealed type is "{text}' in " ".join(said), (number, text, said)
        else:
            assert any(s.startswith(text) for s in said), (number, text, said)
    unexpected = {n: s for n, s in reported.items() if n not in wanted}
    assert not unexpected, unexpected
