#!/usr/bin/env python3
"""Generate ``src/sqs_cluster/sync/``, the blocking facade, from the async API.

    python scripts/gen_sync.py            # (re)write the generated modules
    python scripts/gen_sync.py --check    # exit 1 if they differ from what would be written

Each class of ``sqs_cluster.__all__`` with async methods and each async function there gets a
twin with the same parameters, defaults, annotations, ``@overload`` signatures and docstrings
(an overload that takes an async callback has no blocking form: it is left out); each body is
one call into
the hand-written runtime (``sqs_cluster._facade.runtime``), which runs the async core on the
client's event loop and converts values. ``HAND_WRITTEN`` twins live in ``sync/_callbacks.py``.
Each setting below must be used, or generation fails: dead settings do not pile up.
"""

from __future__ import annotations

import argparse
import ast
import builtins
import dataclasses
import difflib
import functools
import hashlib
import importlib.util
import inspect
import itertools
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Any, NamedTuple, get_args, get_origin

from typing_extensions import get_overloads

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))  # introspect this tree, not whatever is installed

PACKAGE, SYNC = "sqs_cluster", "sqs_cluster.sync"
TARGET = ROOT / "src" / "sqs_cluster" / "sync"

HAND_WRITTEN = {
    "Handler": "callback",
    "ClusterCallback": "callback",
    "SuccessHook": "callback",
    "FailureHook": "callback",
    "RecordLike": "alias",
}
"""Type aliases that mention a twin, twinned by hand in ``sync/_callbacks.py``: a "callback"
(the user's function, adapted) or an "alias" (a value type, converted like any argument)."""

ATTRIBUTE_TYPES = {
    "Worker.queue_url": "str",
    "Worker.handler": "LambdaHandler",
    "Worker.options": "WorkerOptions",
    "Worker.stats": "WorkerStats",
}
"""Types of public attributes that an ``__init__`` sets without an annotation."""

LIFECYCLE = ("aclose",)
"""Client methods that the runtime's ``ClientFacade`` replaces (``close()``, ``__exit__``)."""

TYPE_RULES = {"AsyncIterator": "Iterator", "AsyncIterable": "Iterable"}
"""Annotation names to replace; a method returning the old form iterates in the twin."""

DOC_RULES = {"``async with ": "``with "}
"""Docstring text to replace in the twins."""

SETTINGS = ("HAND_WRITTEN", "ATTRIBUTE_TYPES", "LIFECYCLE", "TYPE_RULES", "DOC_RULES")
ASYNC_TYPES = {"Awaitable", "Coroutine", "AsyncIterator", "AsyncIterable", "AsyncGenerator"}
HEADER = "# Generated — do not edit: scripts/gen_sync.py writes this from {source}.\n"
DIGEST = "# Body digest: {digest} (gen_sync.py --check tells hand edits from stale files).\n"
INIT_DOC = f'''"""Blocking twin of :mod:`{PACKAGE}` (generated): the same API, with no ``async``.

Each client keeps its own event loop in a background thread, so calls block while the
async core still fans out concurrently and keeps its connections warm. See docs/sync.md.
"""
'''
NOTES = {  # how each kind of twin class behaves, the end of its docstring
    "client": "Blocking client generated from :class:`sqs_cluster.{}`: each method runs its "
    "async twin on this client's own event-loop thread, which starts on first use and stops in "
    "``close()`` (or at exit). See docs/sync.md.",
    "bound": "Blocking twin generated from :class:`sqs_cluster.{}`: it runs on the event-loop "
    "thread of the client it is given; its methods block and return the result. See docs/sync.md.",
    "view": "Blocking view generated from :class:`sqs_cluster.{}`: fields are the async object's; "
    "its async methods block and return the result. See docs/sync.md.",
}


class GenerationError(Exception):
    """The async API or a setting cannot be turned into a facade."""


class Ref(NamedTuple):
    """Where a name comes from: ``from <module> import <name>`` (``name=""``: the module)."""

    module: str
    name: str


USED: set[str] = set()  # "SETTING['key']" for each settings entry this generation used
TWINS: dict[Any, str] = {}  # async class or function -> its twin's kind: "function", "client" (an
# async context manager: owns an event loop), "bound" (built on a client) or "view" (a dataclass)


@functools.cache
def imports_of(module: str) -> dict[str, Ref]:
    """Where each name that ``module`` imports comes from (``if TYPE_CHECKING:`` ones too)."""
    package, table = load(Ref(module, "")).__package__, dict[str, Ref]()
    for node in ast.walk(ast.parse(inspect.getsource(load(Ref(module, ""))))):
        if isinstance(node, ast.ImportFrom):
            source = importlib.util.resolve_name("." * node.level + (node.module or ""), package)
            table.update({a.asname or a.name: Ref(source, a.name) for a in node.names})
        elif isinstance(node, ast.Import):
            table.update({a.asname or a.name: Ref(a.name, "") for a in node.names})
    return table


def resolve(name: str, context: str) -> Ref | None:
    """The Ref of a name used in module ``context``; None for a builtin."""
    if name in imports_of(context) or hasattr(load(Ref(context, "")), name):
        return imports_of(context).get(name, Ref(context, name))
    if not hasattr(builtins, name):
        raise GenerationError(f"{context}: cannot tell where the name {name!r} comes from")
    return None


def load(ref: Ref) -> Any:
    module = importlib.import_module(ref.module)
    return getattr(module, ref.name) if ref.name else module


def first_party(module: str) -> bool:
    return module.split(".")[0] == PACKAGE and not module.startswith(SYNC)


def twin_module(module: str) -> str:
    """``sqs_cluster._clusters.model`` -> ``sqs_cluster.sync._clusters_model``: flat, private."""
    return f"{SYNC}._" + "_".join(dict.fromkeys(p.lstrip("_") for p in module.split(".")[1:]))


def twin_of(ref: Ref) -> tuple[Ref, str]:
    """What the facade uses in place of ``ref``, and its kind: a twin's (see TWINS), "callback"
    (an alias in HAND_WRITTEN) or "" (``ref`` itself, used as it is)."""
    if not ref.name or not first_party(ref.module):
        return ref, ""
    obj = load(ref)
    if ref.name in HAND_WRITTEN and obj is getattr(load(Ref(ref.module, "")), ref.name, None):
        USED.add(f"HAND_WRITTEN[{ref.name!r}]")
        return Ref(f"{SYNC}._callbacks", ref.name), HAND_WRITTEN[ref.name]
    if (isinstance(obj, type) or inspect.isfunction(obj)) and obj in TWINS:
        return Ref(twin_module(obj.__module__), obj.__name__), TWINS[obj]
    if mentions_twin(obj) or (isinstance(obj, type) and has_async_surface(obj)):
        raise GenerationError(f"{ref.name} needs a twin: export it, or add it to HAND_WRITTEN")
    return ref, ""


def mentions_twin(obj: Any) -> bool:
    if isinstance(obj, (list, tuple)):  # the parameters of a Callable
        return any(map(mentions_twin, obj))
    twinned = isinstance(obj, type) and obj in TWINS
    return twinned or get_origin(obj) in TWINS or any(map(mentions_twin, get_args(obj)))


def members(cls: type) -> dict[str, Any]:
    """Public names defined by ``cls`` and its first-party bases (the nearest wins)."""
    found: dict[str, Any] = {}
    for klass in [k for k in cls.__mro__ if first_party(k.__module__)]:
        found |= {n: v for n, v in vars(klass).items() if n[0] != "_" and n not in found}
    return found


def iterates(fn: Any) -> bool:
    """True for a plain method that returns an async iterator (a TYPE_RULES form)."""
    returns = inspect.get_annotations(fn).get("return") if inspect.isfunction(fn) else None
    return isinstance(returns, str) and returns.split("[")[0] in TYPE_RULES


def has_async_surface(cls: type) -> bool:
    async_ = (inspect.iscoroutinefunction, inspect.isasyncgenfunction, iterates)
    return any(test(v) for v in members(cls).values() for test in async_)


def fields(cls: type, provided: type) -> dict[str, tuple[str, str, str]]:
    """Public data attributes (but those the runtime's ``provided`` base has): name ->
    (annotation, the module it is written in, the docstring written under it)."""
    found: dict[str, tuple[str, str, str]] = {}
    for klass in reversed([k for k in cls.__mro__ if first_party(k.__module__)]):
        tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        for node in ast.walk(tree):  # ``x: T`` in the class body, ``self.x = ...`` anywhere
            body = getattr(node, "body", None)
            for stmt, after in itertools.pairwise([*body, None]) if isinstance(body, list) else ():
                target = getattr(stmt, "target", None) or getattr(stmt, "targets", [None])[0]
                text = ast.unparse(target) if target else ""
                in_class = node is tree.body[0] or text.startswith("self.")
                name = text.removeprefix("self.") if in_class else ""
                key = f"{klass.__name__}.{name}"
                typed = ast.unparse(stmt.annotation) if isinstance(stmt, ast.AnnAssign) else ""
                public = name.isidentifier() and name[0] != "_" and not hasattr(provided, name)
                if not public or typed.startswith("ClassVar") or (not typed and name in found):
                    continue
                if not typed and key not in ATTRIBUTE_TYPES:
                    raise GenerationError(f"{key} has no type: annotate it, or see ATTRIBUTE_TYPES")
                if not typed:
                    USED.add(f"ATTRIBUTE_TYPES[{key!r}]")
                doc = getattr(after.value, "value", None) if isinstance(after, ast.Expr) else None
                doc = inspect.cleandoc(doc) if isinstance(doc, str) else ""
                found[name] = (typed or ATTRIBUTE_TYPES[key], klass.__module__, doc)
    return found


class Writer:
    """The imports and code of one generated module."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.imports: dict[str, Ref] = {}
        self.chunks: list[str] = []

    def use(self, ref: Ref, local: str = "") -> str:
        """Import ``ref`` (as ``local``) unless it is defined here; returns its local name."""
        local = local or ref.name or ref.module
        if ref.module != self.name and self.imports.setdefault(local, ref) != ref:
            raise GenerationError(f"{self.name}: {local!r} would mean {self.imports[local]}, {ref}")
        return local

    def annotation(self, node: ast.AST | str, context: str) -> tuple[str, set[str]]:
        """Rewrite an annotation or default (source from module ``context``) for this module,
        importing its names; returns its text and the kinds of twin it names (+ "twin")."""
        node = ast.parse(node, mode="eval") if isinstance(node, str) else node
        kinds: set[str] = set()
        for name in [n for n in ast.walk(node) if isinstance(n, ast.Name)]:
            ref = resolve(name.id, context)
            if ref and ref.name in TYPE_RULES and not first_party(ref.module):
                USED.add(f"TYPE_RULES[{ref.name!r}]")
                name.id = self.use(Ref("collections.abc", TYPE_RULES[ref.name]))
            elif ref and ref.name in ASYNC_TYPES and not first_party(ref.module):
                raise GenerationError(f"{context}: no blocking form of {ref.name} in TYPE_RULES")
            elif ref:
                twin, kind = twin_of(ref)
                kinds |= {"twin", kind} if kind else set()
                self.use(twin, name.id)
        return ast.unparse(node), kinds

    def render(self, doc: str) -> str:
        imports = [import_line(ref, local) for local, ref in sorted(self.imports.items())]
        return "\n".join([doc, "from __future__ import annotations", *imports, "", *self.chunks])


def import_line(ref: Ref, local: str) -> str:
    """The import of ``ref`` as ``local``; relative inside this package."""
    alias = f" as {local}" if local != (ref.name or ref.module) else ""
    module = ref.module
    if module.startswith(SYNC):
        module = "." + module.removeprefix(SYNC).lstrip(".")
    elif module.split(".")[0] == PACKAGE:
        module = ".." + module.removeprefix(PACKAGE).lstrip(".")
    return f"from {module} import {ref.name}{alias}" if ref.name else f"import {module}{alias}"


def docstring(text: str, indent: int) -> str:
    """A docstring literal of ``text`` after DOC_RULES (nothing for no text)."""
    for old in [old for old in DOC_RULES if old in text]:
        USED.add(f"DOC_RULES[{old!r}]")
        text = text.replace(old, DOC_RULES[old])
    text = textwrap.indent(text.replace("\\", "\\\\").replace('"""', '\\"""'), " " * indent)
    closing = "\n" + " " * indent if "\n" in text.strip() else ""
    return f'{" " * indent}"""{text.strip()}{closing}"""\n' if text else ""


def emit_def(w: Writer, fn: Any, name: str) -> tuple[str, list[str], str]:
    """The twin's ``def`` line, the arguments that pass its parameters on to the original, and
    the original's return annotation."""
    node = ast.parse(textwrap.dedent(inspect.getsource(fn))).body[0]
    assert isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)), fn
    a, arguments = node.args, []
    for default in filter(None, [*a.defaults, *a.kw_defaults]):
        w.annotation(default, fn.__module__)
    for arg in filter(None, [*a.posonlyargs, *a.args, a.vararg, *a.kwonlyargs, a.kwarg]):
        kinds = w.annotation(arg.annotation, fn.__module__)[1] if arg.annotation else set()
        value = f"self._callback({arg.arg})" if "callback" in kinds else arg.arg
        star = "*" if arg is a.vararg else "**" if arg is a.kwarg else ""
        if arg.arg != "self":
            arguments.append(f"{arg.arg}={value}" if arg in a.kwonlyargs else star + value)
    returns = ast.unparse(node.returns) if node.returns else ""
    head = f" -> {w.annotation(returns, fn.__module__)[0]}:" if returns else ":"
    return f"def {name}({ast.unparse(a)}){head}", arguments, returns


def emit_body(w: Writer, expr: str, returns: str, context: str, indent: int) -> str:
    """``return expr``, cast to the twin's type when the value was converted to one."""
    text, kinds = w.annotation(returns, context) if returns else ("None", set())
    if "twin" in kinds:
        expr = f'{w.use(Ref("typing", "cast"))}("{text}", {expr})'
    return " " * indent + (expr if text == "None" else f"return {expr}") + "\n"


def emit_function(w: Writer, fn: Any, name: str, call: str, target: str, indent: int) -> str:
    """A twin function or method whose body is ``call(target, <its arguments>)``, after the
    blocking forms of its ``@overload`` signatures."""
    head, arguments, returns = emit_def(w, fn, name)
    expr = f"{call}({', '.join([target, *arguments])})"
    body = emit_body(w, expr, returns, fn.__module__, indent + 4)
    doc = docstring(inspect.cleandoc(fn.__doc__ or ""), indent + 4)
    return f"{emit_overloads(w, fn, name, indent)}{' ' * indent}{head}\n{doc}{body}"


def emit_overloads(w: Writer, fn: Any, name: str, indent: int) -> str:
    """The ``@overload`` stubs of ``fn`` as blocking signatures (``def``, not ``async def``),
    but those taking an async callback (an ``Awaitable``), which has no blocking form."""
    stubs = [stub for stub in get_overloads(fn) if not takes_awaitable(stub)]
    if len(stubs) == 1:
        raise GenerationError(f"{fn.__qualname__}: one blocking overload left, mypy needs two")
    decorator = f"{' ' * indent}@{w.use(Ref('typing', 'overload'))}\n" if stubs else ""
    return "".join(f"{decorator}{' ' * indent}{emit_def(w, s, name)[0]} ...\n" for s in stubs)


def takes_awaitable(fn: Any) -> bool:
    """True when a parameter's annotation names an async type without a TYPE_RULES form."""
    node = ast.parse(textwrap.dedent(inspect.getsource(fn))).body[0]
    assert isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)), fn
    names = [n.id for n in ast.walk(node.args) if isinstance(n, ast.Name)]
    refs = [ref for ref in (resolve(n, fn.__module__) for n in names) if ref]
    blocking_less = ASYNC_TYPES - TYPE_RULES.keys()
    return any(r.name in blocking_less and not first_party(r.module) for r in refs)


def emit_property(w: Writer, name: str, annotation: str, context: str, doc: str) -> str:
    text, kinds = w.annotation(annotation, context)
    expr = f"_facade.to_sync(self._core.{name}, self._root)" if "twin" in kinds else ""
    body = emit_body(w, expr or f"self._core.{name}", annotation, context, 8)
    return f"    @property\n    def {name}(self) -> {text}:\n{docstring(doc, 8)}{body}"


def emit_class(w: Writer, cls: type, kind: str) -> str:
    core = w.use(Ref(cls.__module__, cls.__name__), f"_Async{cls.__name__}")
    params = [p.__name__ for p in getattr(cls, "__parameters__", ())]
    for param in params:
        w.use(resolve(param, cls.__module__) or Ref(cls.__module__, param), param)
    generic = f"[{', '.join(params)}]" if params else ""
    base = "ClientFacade" if kind == "client" else "View"
    bases = f"_facade.{base}[{core}{generic}]"
    bases += f", {w.use(Ref('typing', 'Generic'))}{generic}" if params else ""
    bases += f", core_type={core}" if kind != "client" else ""
    note = textwrap.fill(NOTES[kind].format(cls.__name__), 96)
    cls_doc = "\n\n".join(filter(None, [inspect.getdoc(cls), note]))
    out = [f"class {cls.__name__}({bases}):\n{docstring(cls_doc, 4)}"]
    out += ["    __slots__ = ()\n"] if kind != "client" else []
    if kind != "view":  # a client builds its core; a bound twin builds its core on a client
        call = "super().__init__" if kind == "client" else "self._build"
        out.append(emit_function(w, vars(cls)["__init__"], "__init__", call, core, 4))
    provided = getattr(load(Ref(f"{PACKAGE}._facade.runtime", "")), base)
    data = fields(cls, provided)
    out += [emit_property(w, name, *field) for name, field in data.items()]
    for name, value in members(cls).items():
        if kind == "client" and name in LIFECYCLE:
            USED.add(f"LIFECYCLE[{name!r}]")
        elif isinstance(value, property) and value.fget:
            returns, doc = inspect.get_annotations(value.fget)["return"], inspect.getdoc(value)
            out.append(emit_property(w, name, returns, value.fget.__module__, doc or ""))
        elif inspect.isfunction(value):
            call = "_iterate" if iterates(value) else "_run" if kind == "bound" else "_plain"
            call = "_call" if inspect.iscoroutinefunction(value) else call
            out.append(emit_function(w, value, name, f"self.{call}", f"self._core.{name}", 4))
        elif name not in data and not hasattr(provided, name):
            raise GenerationError(f"{cls.__name__}.{name}: no blocking form for this member")
    return "\n".join(out)


def generate() -> dict[str, tuple[str, str]]:
    """File name -> (source module, unformatted text), for every generated file."""
    USED.clear()
    TWINS.clear()
    package = load(Ref(PACKAGE, ""))
    for obj in [getattr(package, name) for name in package.__all__]:
        if isinstance(obj, type) and has_async_surface(obj):
            ctx = inspect.iscoroutinefunction(getattr(obj, "__aenter__", None))  # ``async with``
            TWINS[obj] = "client" if ctx else "view" if dataclasses.is_dataclass(obj) else "bound"
        elif inspect.iscoroutinefunction(obj):
            TWINS[obj] = "function"
    writers: dict[str, Writer] = {}
    for obj in sorted(TWINS, key=lambda o: (o.__module__, inspect.getsourcelines(o)[1])):
        w = writers.setdefault(obj.__module__, Writer(twin_module(obj.__module__)))
        w.use(Ref(f"{PACKAGE}._facade", "runtime"), "_facade")
        if TWINS[obj] == "function":
            core = w.use(Ref(obj.__module__, obj.__name__), f"_async_{obj.__name__}")
            w.chunks.append(emit_function(w, obj, obj.__name__, "_facade.call_function", core, 0))
        else:
            w.chunks.append(emit_class(w, obj, TWINS[obj]))
    init = writers[PACKAGE] = Writer(SYNC)  # the package: sqs_cluster.__all__, twins first
    for name in package.__all__:
        init.use(twin_of(Ref(PACKAGE, name))[0], name)
    init.chunks.append("__all__ = [\n" + "".join(f'    "{n}",\n' for n in package.__all__) + "]\n")
    files: dict[str, tuple[str, str]] = {}
    for source, w in writers.items():
        name = "__init__" if w is init else w.name.rpartition(".")[2]
        doc = INIT_DOC if w is init else f'"""Blocking twin of ``{source}`` (generated)."""\n'
        files[f"{name}.py"] = (source, w.render(doc))
    declared = {f"{setting}[{key!r}]" for setting in SETTINGS for key in globals()[setting]}
    if unused := sorted(declared - USED):
        raise GenerationError(f"settings never used, remove them from gen_sync.py: {unused}")
    return files


def render_tree(folder: Path) -> None:
    """Generate the package into ``folder``, formatted with the project's ruff settings."""
    folder.mkdir(parents=True, exist_ok=True)
    generated = generate()
    for name, (_, text) in generated.items():
        (folder / name).write_text(text, encoding="utf-8")
    for command in (["check", "--fix-only", "--select", "I"], ["format"]):
        config = ["--quiet", "--config", str(ROOT / "pyproject.toml"), str(folder)]
        ruff = [sys.executable, "-m", "ruff", *command, *config]
        result = subprocess.run(ruff, capture_output=True, text=True)
        if result.returncode != 0:
            raise GenerationError(f"ruff {command[0]} failed:\n{result.stdout}{result.stderr}")
    for name, (origin, _) in generated.items():
        body = (folder / name).read_text(encoding="utf-8")
        stamp = HEADER.format(source=origin) + DIGEST.format(digest=digest(body))
        (folder / name).write_text(stamp + body, encoding="utf-8")


def tree_files(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` but bytecode and the hand-written ``_callbacks.py``."""
    return {
        p.relative_to(folder).as_posix(): p.read_text(encoding="utf-8")
        for p in sorted(folder.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts and p.name != "_callbacks.py"
    }


def compare(expected_dir: Path, actual_dir: Path) -> list[str]:
    """One entry per problem (missing, orphan, edited, stale), with a diff for changed files."""
    expected, actual = tree_files(expected_dir), tree_files(actual_dir)
    problems = [f"missing: {name}" for name in sorted(expected.keys() - actual.keys())]
    problems += [f"orphan: {name} (not generated)" for name in sorted(actual.keys() - expected)]
    for name in sorted(expected.keys() & actual.keys()):
        if expected[name] != actual[name]:
            verdict = "edited by hand" if edited(actual[name]) else "stale (the async API changed)"
            lines = expected[name].splitlines(), actual[name].splitlines()
            diff = list(difflib.unified_diff(*lines, "generated", name, n=1, lineterm=""))
            problems.append(f"{verdict}: {name}\n" + "\n".join(diff[:40]))
    return problems


def digest(body: str) -> str:
    return hashlib.sha256(body.encode()).hexdigest()[:16]


def edited(text: str) -> bool:
    """True when the body does not match the digest in the file's own header."""
    header, digest_line, body = [*text.split("\n", 2), "", ""][:3]
    return not (header.startswith("# Generated") and f" {digest(body)} " in digest_line)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare only; exit 1 on problems")
    check = parser.parse_args(argv).check
    with tempfile.TemporaryDirectory(prefix="gen-sync-") as tmp:
        try:
            render_tree(Path(tmp) / "sync")
        except GenerationError as exc:
            print(f"gen_sync: {exc}", file=sys.stderr)
            return 2
        problems = compare(Path(tmp) / "sync", TARGET)
        if problems and not check:  # replace everything but the hand-written modules
            for path in set(TARGET.iterdir()) - {TARGET / "_callbacks.py"}:
                shutil.rmtree(path) if path.is_dir() else path.unlink()
            shutil.copytree(Path(tmp) / "sync", TARGET, dirs_exist_ok=True)
    for problem in problems if check else []:
        print(f"gen_sync --check: {problem}", file=sys.stderr)
    verdict = "differ: run scripts/gen_sync.py" if check else "rewritten"
    if problems or not check:
        print(f"gen_sync: {len(problems)} file(s) {verdict}", file=sys.stderr if check else None)
    return 1 if check and problems else 0


if __name__ == "__main__":
    sys.exit(main())
