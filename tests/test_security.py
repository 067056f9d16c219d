"""Security: no unsafe deserialisation or eval, private encrypted globals, a key space a message
body cannot leave, and a least-privilege IAM policy that covers every operation issued."""

from __future__ import annotations

import ast
import copy
import gc
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiobotocore.session import AioSession, get_session

from sqs_cluster import (
    ClusterRecord,
    Config,
    MalformedEventError,
    Message,
    MessageClient,
    ReceivedMessage,
    RecordNotFoundError,
    Status,
)
from sqs_cluster._aws.preflight import forget_passed_checks
from sqs_cluster._clusters.read import recent_cluster_keys
from sqs_cluster._messages.lambda_shape import lambda_event
from sqs_cluster.testing import Access, OperationRecorder, iam_match

from .conftest import REGION, Queue, make_queue, receive_event, unique

ROOT = Path(__file__).resolve().parent.parent
POLICY_PATH = ROOT / "docs" / "iam-policy.json"
ACCOUNT = "123456789012"  # the local server's account
UNSAFE_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "marshal", "shelve"}
UNSAFE_MODULES |= {"jsonpickle", "joblib"}
UNSAFE_YAML = {"load", "load_all", "unsafe_load", "unsafe_load_all", "full_load", "full_load_all"}
EXTRA_ACTIONS: dict[str, str] = {}
"""Allowed though never called (Sid -> action). s3:ListBucket is called: HeadBucket, the check
that the bucket exists; it also makes a missing globals object read as 404, not 403."""


def python_files() -> Iterator[Path]:
    for top in ("src", "tests", "scripts", "benchmarks", "examples", "docs"):
        yield from sorted((ROOT / top).rglob("*.py"))
    yield from sorted(ROOT.glob("*.py"))


def unsafe_imports(node: ast.AST) -> Iterator[str]:
    if isinstance(node, ast.Import):
        for alias in node.names:
            if alias.name.split(".")[0] in UNSAFE_MODULES:
                yield f"import {alias.name}"
    elif isinstance(node, ast.ImportFrom):
        if (node.module or "").split(".")[0] in UNSAFE_MODULES:
            yield f"from {node.module} import ..."
        if node.module == "yaml" and any(a.name in UNSAFE_YAML for a in node.names):
            yield "from yaml import an unsafe loader"


def unsafe_call(node: ast.Call) -> Iterator[str]:
    func = node.func
    if isinstance(func, ast.Name) and func.id in {"eval", "exec"}:
        yield f"{func.id}()"
    if isinstance(func, ast.Attribute) and func.attr in UNSAFE_YAML:
        loader = next((k.value for k in node.keywords if k.arg == "Loader"), None)
        safe = isinstance(loader, ast.Attribute) and loader.attr in {"SafeLoader", "CSafeLoader"}
        if isinstance(func.value, ast.Name) and func.value.id == "yaml" and not safe:
            yield f"yaml.{func.attr}() without SafeLoader"
    for keyword in node.keywords:
        value = keyword.value
        if keyword.arg == "shell" and isinstance(value, ast.Constant) and value.value is True:
            yield "shell=True"


def unsafe_calls(tree: ast.AST) -> Iterator[tuple[int, str]]:
    for node in ast.walk(tree):
        found = unsafe_call(node) if isinstance(node, ast.Call) else unsafe_imports(node)
        for what in found:
            yield getattr(node, "lineno", 0), what


def parse(path: Path) -> ast.AST:
    """ast.parse with the collector paused: on CPython 3.11.7 a finalizer that runs during
    the parse (any other test's leftover coroutine) trips 'AST constructor recursion depth
    mismatch'."""
    source = path.read_text(encoding="utf-8")
    enabled = gc.isenabled()
    gc.disable()
    try:
        return ast.parse(source, filename=str(path))
    finally:
        if enabled:
            gc.enable()


def test_no_pickle_eval_or_unsafe_yaml_anywhere() -> None:
    """Everywhere: no pickle-like modules, unsafe YAML or shell=True. In what ships or what
    users copy (src, scripts, examples, docs): no eval or exec either; tests may exec a
    documentation snippet to prove it runs."""
    found: list[str] = []
    files = list(python_files())
    for path in files:
        tree = parse(path)
        relative = path.relative_to(ROOT)
        test_code = relative.parts[0] in {"tests", "benchmarks"} or len(relative.parts) == 1
        for line, what in unsafe_calls(tree):
            if test_code and what in {"eval()", "exec()"}:
                continue
            found.append(f"{relative}:{line}: {what}")
    assert len(files) > 40
    assert found == []


def test_the_scanner_finds_what_it_looks_for() -> None:
    source = (
        "import pickle\nfrom marshal import loads\nimport yaml\neval('1')\nexec('x=1')\n"
        "yaml.load(s)\nyaml.load(s, Loader=yaml.SafeLoader)\nyaml.safe_load(s)\n"
        "subprocess.run('ls', shell=True)\n"
    )
    assert [line for line, _ in unsafe_calls(ast.parse(source))] == [1, 2, 4, 5, 6, 9]


# -- globals in S3: encrypted and never public -----------------------------------------------


@pytest.fixture(scope="module")
def session() -> AioSession:
    return get_session()


@pytest.fixture
async def client(base_config: Config, session: AioSession) -> AsyncIterator[MessageClient]:
    async with MessageClient(base_config, session=session) as c:
        yield c


PUBLIC_GRANTEES = (
    "http://acs.amazonaws.com/groups/global/AllUsers",
    "http://acs.amazonaws.com/groups/global/AuthenticatedUsers",
)


def public_grants(acl: dict[str, Any]) -> list[Any]:
    return [g for g in acl.get("Grants", []) if g.get("Grantee", {}).get("URI") in PUBLIC_GRANTEES]


async def test_globals_are_encrypted_and_never_public(client: MessageClient, queue: Queue) -> None:
    key = await client.create_message_cluster(queue.url, [1], globals={"secret": 1})
    location = client._globals_location(key)
    s3 = client._aws.s3
    await client.update_message_cluster_globals(key, lambda g: {**g, "more": 2})
    head = await s3.head_object(Bucket=location["Bucket"], Key=location["Key"])
    assert head["ServerSideEncryption"] == "AES256"
    await client.update_message_cluster_globals(key, {"replaced": True})
    head = await s3.head_object(Bucket=location["Bucket"], Key=location["Key"])
    assert head["ServerSideEncryption"] == "AES256"
    block = (await s3.get_public_access_block(Bucket=location["Bucket"]))[
        "PublicAccessBlockConfiguration"
    ]
    assert block == {
        "BlockPublicAcls": True,
        "IgnorePublicAcls": True,
        "BlockPublicPolicy": True,
        "RestrictPublicBuckets": True,
    }
    encryption = await s3.get_bucket_encryption(Bucket=location["Bucket"])
    rule = encryption["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    assert public_grants(await s3.get_bucket_acl(Bucket=location["Bucket"])) == []  # type: ignore[arg-type]
    object_acl = await s3.get_object_acl(Bucket=location["Bucket"], Key=location["Key"])
    assert public_grants(object_acl) == []  # type: ignore[arg-type]


# -- the key space: a message body cannot send the library elsewhere ------------------------


def touched(recorder: OperationRecorder) -> list[Access]:
    return sorted(recorder.access, key=lambda a: (a.operation, a.resource))


def leading_keys(recorder: OperationRecorder) -> set[str]:
    return {k for a in recorder.access for k in a.leading_keys}


def with_body(record: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    crafted = copy.deepcopy(record)
    crafted["body"] = json.dumps(body)
    return crafted


async def test_body_claiming_a_foreign_key_is_a_plain_message(
    client: MessageClient, queue: Queue, sqs: Any
) -> None:
    key = await client.send_message(queue.url, {"x": 1})
    (record,) = receive_event(sqs, queue.url)["Records"]
    crafted = with_body(
        record, {"type": "task", "pKey": "users#1", "rKey": "users#1", "index": 0, "task": 1}
    )
    recorder = OperationRecorder()
    remove = client.add_request_hook(recorder.hook)
    response = await client.safe_process_batch({"Records": [crafted]}, lambda m: None)
    remove()
    assert response == {"batchItemFailures": []}
    assert leading_keys(recorder) == {key.p_key}
    assert not any(a.action.startswith("s3:") for a in recorder.access)


async def test_key_attribute_outside_the_key_space_is_rejected(
    client: MessageClient, queue: Queue, sqs: Any
) -> None:
    await client.send_message(queue.url, "x")
    (record,) = receive_event(sqs, queue.url)["Records"]
    forged = json.dumps({"pKey": "users#1", "rKey": "users#1"})
    record["messageAttributes"]["sqsClusterKey"]["stringValue"] = forged
    with pytest.raises(MalformedEventError, match="SQSMessage"):
        client.read_sqs_record(record)
    recorder = OperationRecorder()
    remove = client.add_request_hook(recorder.hook)
    handled: list[Any] = []
    response = await client.safe_process_batch({"Records": [record]}, handled.append)
    remove()
    assert response == {"batchItemFailures": [{"itemIdentifier": record["messageId"]}]}
    assert handled == [] and leading_keys(recorder) == set()


async def test_crafted_cluster_keys_stay_in_the_globals_key_space(client: MessageClient) -> None:
    recorder = OperationRecorder()
    remove = client.add_request_hook(recorder.hook)
    for crafted in ("SQSMessage$../../etc/passwd", "SQSMessage$a/b?c#d", "SQSMessage$"):
        with pytest.raises(RecordNotFoundError):
            await client.get_message_cluster_globals(crafted)
    remove()
    bucket = client.config.bucket
    for access in recorder.access:
        assert iam_match(f"arn:aws:s3:::{bucket}/SQSMessage$*-globals.json", access.resource)


async def test_task_body_naming_another_cluster_cannot_touch_it(
    client: MessageClient, queue: Queue, sqs: Any
) -> None:
    own = await client.create_message_cluster(queue.url, ["own"], omit_globals=True)
    other = await client.create_message_cluster(queue.url, ["a", "b"], omit_globals=True)
    records = receive_event(sqs, queue.url, max_messages=3)["Records"]
    attribute = "sqsClusterKey"
    (mine,) = [
        r
        for r in records
        if json.loads(r["messageAttributes"][attribute]["stringValue"])["pKey"] == f"{own.p_key}.0"
    ]
    body = {**json.loads(mine["body"]), "pKey": other.p_key, "rKey": other.r_key}
    recorder = OperationRecorder()
    remove = client.add_request_hook(recorder.hook)
    response = await client.safe_process_batch({"Records": [with_body(mine, body)]}, lambda m: None)
    remove()
    assert response == {"batchItemFailures": [{"itemIdentifier": mine["messageId"]}]}
    after = await client.get_message_cluster(other, consistent_read=True)
    assert (after.completed, after.failed) == (0, 0)
    assert not any(k.startswith(other.p_key) for k in leading_keys(recorder))


async def test_task_body_naming_another_object_cannot_read_it(
    client: MessageClient, queue: Queue, sqs: Any
) -> None:
    secret_bucket = unique("other-team")
    s3 = client._aws.s3
    await s3.create_bucket(Bucket=secret_bucket)
    await s3.put_object(Bucket=secret_bucket, Key="salaries.json", Body=b'{"ceo": 1}')
    key = await client.create_message_cluster(queue.url, [1], globals={"rate": 2})
    (record,) = receive_event(sqs, queue.url)["Records"]
    body = {
        **json.loads(record["body"]),
        "globals": {"Bucket": secret_bucket, "Key": "salaries.json"},
    }
    seen: list[Any] = []

    async def handler(message: ReceivedMessage[Any]) -> None:
        seen.append(await message.get_globals())

    recorder = OperationRecorder()
    remove = client.add_request_hook(recorder.hook)
    response = await client.safe_process_batch({"Records": [with_body(record, body)]}, handler)
    remove()
    own = client._globals_location(key)
    s3_resources = {a.resource for a in recorder.access if a.action.startswith("s3:")}
    assert s3_resources <= {f"arn:aws:s3:::{own['Bucket']}/{own['Key']}"}
    assert seen == []  # the crafted message is rejected before any handler runs
    assert response == {"batchItemFailures": [{"itemIdentifier": record["messageId"]}]}


# -- the IAM policy ----------------------------------------------------------------------------


def load_policy() -> dict[str, Any]:
    policy: dict[str, Any] = json.loads(POLICY_PATH.read_text(encoding="utf-8"))
    return policy


def policy_actions(policy: dict[str, Any]) -> dict[str, str]:
    """Action -> Sid of the statement that allows it."""
    out = {}
    for statement in policy["Statement"]:
        actions = statement["Action"]
        for action in [actions] if isinstance(actions, str) else actions:
            out[action] = statement["Sid"]
    return out


def test_the_policy_is_resource_scoped_and_has_no_wildcard_actions() -> None:
    policy = load_policy()
    assert policy["Version"] == "2012-10-17"
    for statement in policy["Statement"]:
        assert statement["Effect"] == "Allow"
        resources = statement["Resource"]
        for resource in [resources] if isinstance(resources, str) else resources:
            assert resource != "*" and any(
                p in resource for p in ("TABLE_NAME", "BUCKET_NAME", "QUEUE_NAME")
            ), resource
    for action in policy_actions(policy):
        service, _, name = action.partition(":")
        assert service in {"dynamodb", "s3", "sqs"} and name and "*" not in name, action


async def representative_workload(config: Config, queue: Queue, session: AioSession) -> None:
    """Every public operation once: send, read, update, fan out, consume, fail, fan in."""
    async with MessageClient(config, session=session) as client:
        key = await client.send_message(queue.url, {"one": 1}, meta={"m": 1})
        keys = await client.send_message_batch(queue.url, [1, Message(body=2, delay_seconds=0)])
        large = await client.send_message(queue.url, "L" * 1_100_000)  # through S3
        await client.get_message_record(large, consistent_read=True, load_body=True)
        await client.get_message_record(key, consistent_read=True)
        await client.get_message_records([key, *keys])
        await client.update_message_record(key, {"owner": "me"})
        await client.update_message_record(key, lambda r: {"meta": {"m": 2}})
        cluster = await client.create_message_cluster(
            queue.url, [{"i": 0}, {"i": 1}, {"i": 2}], globals={"g": 0}, tolerated_failures=1
        )
        record = await client.get_message_cluster(cluster)
        _ = [t async for t in client.iter_tasks(record)]
        await client.update_message_cluster(cluster, {"meta": {"c": 1}})
        await client.update_message_cluster_globals(cluster, lambda g: {**g, "g": 1})
        await client.update_message_cluster_globals(cluster, {"g": 2})
        assert await client.get_message_cluster_globals(cluster) == {"g": 2}
        assert await client.max_receive_count(queue.url) == 3
        assert cluster.p_key in [k.p_key for k, _ in await recent_cluster_keys(client._aws, 100)]
        callbacks: list[Any] = []

        async def handler(message: ReceivedMessage[Any]) -> None:
            if message.is_task and message.task["i"] == 2:
                raise RuntimeError("task 2 always fails")
            if message.is_task:
                await message.get_globals()

        async def callback(done: ClusterRecord[Any, Any], get_globals: Any) -> None:
            callbacks.append(await get_globals())

        seen: list[dict[str, Any]] = []
        for _ in range(6):  # the worker's poll loop: receive, process, release failures
            received = await client.receive_messages(
                queue.url, max_messages=10, wait_seconds=0, visibility_timeout=30
            )
            if not received:
                break
            event = lambda_event(received, queue_url=queue.url, region=REGION)
            response = await client.safe_process_batch(
                event, handler, delete_succeeded=True, on_cluster_complete=callback
            )
            failed = {f["itemIdentifier"] for f in response["batchItemFailures"]}
            handles = [m["ReceiptHandle"] for m in received if m["MessageId"] in failed]
            await client.change_visibility(queue.url, handles, 0)
            seen.extend(r for r in event["Records"] if client.read_sqs_record(r).is_task)
        assert len(callbacks) == 1
        done = await client.get_message_cluster(cluster, consistent_read=True)
        assert (done.completed, done.failed, done.status) == (2, 1, Status.COMPLETE)
        # a duplicate completion once the cluster was counted whole (a ConditionCheck)
        assert await client.mark_complete(seen[0]) is False
    async with MessageClient(config.with_changes(delete_completed=True), session=session) as c:
        await c.send_message(queue.url, "deleted when complete")
        (message,) = await c.receive_messages(queue.url, wait_seconds=0)
        record_event = lambda_event([message], queue_url=queue.url, region=REGION)
        await c.safe_process_batch(record_event, lambda m: None, delete_succeeded=True)
        with pytest.raises(RecordNotFoundError):
            await c.get_message_record(c.read_sqs_record(record_event["Records"][0]).key)
        omitted = await c.create_message_cluster(queue.url, [1], omit_globals=True)
        with pytest.raises(RecordNotFoundError):  # a missing object: 404, thanks to ListBucket
            await c.get_message_cluster_globals(omitted)


@pytest.fixture(scope="module")
async def recorded(base_config: Config, session: AioSession) -> tuple[OperationRecorder, Queue]:
    queue = await make_queue(base_config, visibility_timeout=30)
    recorder = OperationRecorder(library_only=True, account_id=ACCOUNT)
    forget_passed_checks()  # the resource checks run once per process: make them run here
    with recorder.record_all_clients():
        await representative_workload(base_config, queue, session)
    return recorder, queue


def placeholders(config: Config, queue: Queue) -> dict[str, str]:
    assert config.bucket is not None
    return {
        "REGION": REGION,
        "ACCOUNT_ID": ACCOUNT,
        "TABLE_NAME": config.table,
        "BUCKET_NAME": config.bucket,
        "QUEUE_NAME": queue.url.rsplit("/", 1)[1],
    }


async def test_the_policy_allows_every_operation_the_library_issues(
    recorded: tuple[OperationRecorder, Queue], base_config: Config
) -> None:
    recorder, queue = recorded
    assert recorder.violations(load_policy(), placeholders(base_config, queue)) == []


async def test_the_policy_allows_nothing_the_library_does_not_need(
    recorded: tuple[OperationRecorder, Queue],
) -> None:
    recorder, _ = recorded
    allowed = policy_actions(load_policy())
    unused = {a for a, sid in allowed.items() if a not in recorder.actions()}
    assert unused == {a for sid, a in EXTRA_ACTIONS.items() if allowed.get(a) == sid}
    assert recorder.operations["dynamodb.TransactWriteItems"] > 0  # checked per item below
    assert "dynamodb:UpdateItem" in recorder.actions()


async def test_every_object_write_asks_for_encryption(
    recorded: tuple[OperationRecorder, Queue],
) -> None:
    recorder, _ = recorded
    writes = [a for a in recorder.access if a.action == "s3:PutObject"]
    assert writes and {a.sse for a in writes} == {"AES256"}


async def test_the_checker_catches_a_missing_action_or_key_space(
    recorded: tuple[OperationRecorder, Queue], base_config: Config
) -> None:
    recorder, queue = recorded
    names = placeholders(base_config, queue)
    policy = load_policy()
    records = policy["Statement"][0]
    records["Action"] = [a for a in records["Action"] if a != "dynamodb:UpdateItem"]
    problems = recorder.violations(policy, names)
    assert any("dynamodb.TransactWriteItems needs dynamodb:UpdateItem" in p for p in problems)
    assert any("dynamodb.UpdateItem needs dynamodb:UpdateItem" in p for p in problems)
    policy = load_policy()
    policy["Statement"][0]["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"] = [
        "Other$*"
    ]
    assert any("leading keys" in p for p in recorder.violations(policy, names))
    other_queue = {**names, "QUEUE_NAME": "some-other-queue"}
    assert any("sqs:SendMessage" in p for p in recorder.violations(load_policy(), other_queue))


def test_required_access_of_a_transaction_is_per_item() -> None:
    from sqs_cluster.testing import required_access

    body = {
        "TransactItems": [
            {"Update": {"TableName": "t", "Key": {"pKey": {"S": "SQSMessage$a"}}}},
            {"ConditionCheck": {"TableName": "t", "Key": {"pKey": {"S": "SQSMessage$b"}}}},
        ]
    }
    params = {"body": json.dumps(body).encode(), "context": {"client_region": "eu-west-1"}}
    access = required_access("dynamodb", "TransactWriteItems", params, account_id="1")
    assert [(a.action, a.resource, a.leading_keys) for a in access] == [
        ("dynamodb:UpdateItem", "arn:aws:dynamodb:eu-west-1:1:table/t", ("SQSMessage$a",)),
        ("dynamodb:ConditionCheckItem", "arn:aws:dynamodb:eu-west-1:1:table/t", ("SQSMessage$b",)),
    ]
