#!/usr/bin/env python3
"""Generate ``src/sqs_cluster/sync/``, the blocking facade, from the async API.

    python scripts/gen_sync.py            # (re)write the package
    python scripts/gen_sync.py --check    # exit 1 if the checked-in package is not what we'd write

The async API is the one source of truth. This script imports ``sqs_cluster`` and walks it: the
configured root classes (``MessageClient``), every class reachable from their signatures that
has async methods (a *view*, e.g. ``ReceivedMessage``), every type alias that mentions one of
those (``Handler``), the async functions of ``sqs_cluster.__all__`` and the configured extra
functions. Each gets a twin with the same name, parameters, defaults and docstring; annotations
are copied as source text with their names re-imported (twins where one exists). Bodies are one
line that runs the async core through ``sqs_cluster._sync_support``.

Output is formatted with the project's ruff settings and stamped with a "generated — do not
edit" header carrying a digest of the body, so ``--check`` tells a file edited by hand from one
left stale by a change to the async API. Configuration that no longer matches the API (a name
that does not exist, a rule never used) is an error, so dead configuration cannot pile up.
"""

from __future__ import annotations

import argparse
import ast
import builtins
import difflib
import hashlib
import importlib
import importlib.util
import inspect
import shutil
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))  # introspect this tree, not whatever is installed

PACKAGE = "sqs_cluster"
SYNC_PACKAGE = "sqs_cluster.sync"
TARGET = ROOT / "src" / "sqs_cluster" / "sync"

# -- configuration: every entry must match the API, or generation fails ----------------------

ROOT_CLASSES = ("sqs_cluster._client:MessageClient",)
"""Classes users construct: the twin owns an event-loop thread and keeps the core open on it."""

EXTRA_FUNCTIONS: tuple[str, ...] = ()
"""Async functions to twin besides those in ``sqs_cluster.__all__`` (``"module:name"``)."""

LIFECYCLE = {"__aenter__": "__enter__", "__aexit__": "__exit__", "aclose": "close"}
"""Root methods provided by ``_sync_support.ClientFacade`` under their blocking names."""

INSTANCE_ATTRIBUTES = {"sqs_cluster._client:MessageClient.config": "Config"}
"""Types of public attributes set in ``__init__`` without an annotation."""

VIEW_BASE_FIELDS = ("client",)
"""View fields provided by ``_sync_support.View`` (the blocking client, not the async one)."""

DOC_REPLACEMENTS = (("``async with ", "``with "),)
"""Docstring text to change in the blocking twin (like unasync's rules)."""

ASYNC_ITERATORS = {"AsyncIterator": "Iterator"}
AWAITABLE = "Awaitable"
TYPING_MODULES = ("typing", "collections.abc", "typing_extensions")
HEADER = "# Generated — do not edit: scripts/gen_sync.py writes this from {source}.\n"
MAX_LINE = 100
DIGEST = "# Body digest: {digest} (gen_sync.py --check tells hand edits from stale files).\n"


class GenerationError(Exception):
    """The async API or the configuration cannot be turned into a facade."""


@dataclass(frozen=True, order=True)
class Ref:
    """Where a name comes from: ``from <module> import <name>`` (``name=""``: ``import module``)."""

    module: str
    name: str
    type_checking: bool = False


def load_object(spec: str) -> Any:
    """``"module:Name"`` -> the object; a missing name is a configuration error."""
    module_name, _, name = spec.partition(":")
    module = importlib.import_module(module_name)
    if not hasattr(module, name):
        raise GenerationError(f"configured name {spec!r} does not exist: remove or fix it")
    return getattr(module, name)


# -- reading source modules -------------------------------------------------------------------


class Module:
    """A module's source: what each top-level name is bound to, and alias docstrings."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.module = importlib.import_module(name)
        self.tree = ast.parse(inspect.getsource(self.module))
        self.imports: dict[str, Ref] = {}
        self.assignments: dict[str, ast.expr] = {}
        self.docs: dict[str, str] = {}
        self.lines: dict[str, int] = {}
        self._scan(self.tree.body, type_checking=False)

    def _scan(self, body: list[ast.stmt], *, type_checking: bool) -> None:
        for i, node in enumerate(body):
            if isinstance(node, ast.If) and ast.unparse(node.test).endswith("TYPE_CHECKING"):
                self._scan(node.body, type_checking=True)
            elif isinstance(node, ast.ImportFrom):
                source = importlib.util.resolve_name(
                    "." * node.level + (node.module or ""), self.module.__package__ or ""
                )
                for alias in node.names:
                    self.imports[alias.asname or alias.name] = Ref(
                        source, alias.name, type_checking
                    )
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    local = alias.asname or alias.name.partition(".")[0]
                    self.imports[local] = Ref(
                        alias.name if alias.asname else local, "", type_checking
                    )
            elif isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    if isinstance(target, ast.Name):
                        self.assignments[target.id] = node.value
                        self.lines[target.id] = node.lineno
                        self.docs[target.id] = _docstring_after(body, i)
            elif isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                self.lines[node.name] = node.lineno

    def resolve(self, name: str) -> Ref | None:
        """The Ref of a name used in this module; None for builtins."""
        if name in self.imports:
            return self.imports[name]
        if name in self.lines:
            return Ref(self.name, name)
        if hasattr(builtins, name):
            return None
        raise GenerationError(f"{self.name}: cannot tell where the name {name!r} comes from")


def _docstring_after(body: list[ast.stmt], index: int) -> str:
    nxt = body[index + 1] if index + 1 < len(body) else None
    if isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant):
        return str(nxt.value.value) if isinstance(nxt.value.value, str) else ""
    return ""


_MODULES: dict[str, Module] = {}


def module(name: str) -> Module:
    if name not in _MODULES:
        _MODULES[name] = Module(name)
    return _MODULES[name]


def first_party(module_name: str) -> bool:
    return (module_name == PACKAGE or module_name.startswith(PACKAGE + ".")) and not (
        module_name == SYNC_PACKAGE or module_name.startswith(SYNC_PACKAGE + ".")
    )


def defining(ref: Ref) -> Ref:
    """Follow re-exports to the module that defines the name."""
    seen = set()
    while ref.name and first_party(ref.module) and ref not in seen:
        seen.add(ref)
        source = module(ref.module)
        if ref.name not in source.imports:
            return ref
        ref = source.imports[ref.name]
    return ref


def load(ref: Ref) -> Any:
    try:
        mod = importlib.import_module(ref.module)
    except ImportError:
        if ref.type_checking:
            return None
        raise
    return getattr(mod, ref.name) if ref.name else mod


# -- functions and their signatures -----------------------------------------------------------


@dataclass
class Param:
    kind: inspect._ParameterKind
    name: str
    annotation: str | None
    default: str | None


@dataclass
class Function:
    """One function or method, read from its source."""

    name: str
    obj: Any
    module: str
    params: list[Param]
    returns: str | None
    doc: str
    is_async: bool
    line: int

    @classmethod
    def read(cls, fn: Any, name: str | None = None) -> Function:
        fn = inspect.unwrap(fn)
        node = ast.parse(textwrap.dedent(inspect.getsource(fn))).body[0]
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            raise GenerationError(f"{fn.__qualname__}: expected a function definition")
        params = _params(node)
        actual = [(p.name, p.kind) for p in inspect.signature(fn).parameters.values()]
        if actual != [(p.name, p.kind) for p in params]:
            raise GenerationError(f"{fn.__qualname__}: its source does not match its signature")
        return cls(
            name=name or fn.__name__,
            obj=fn,
            module=fn.__module__,
            params=params,
            returns=ast.unparse(node.returns) if node.returns else None,
            doc=inspect.getdoc(fn) or "",
            is_async=inspect.iscoroutinefunction(fn),
            line=inspect.getsourcelines(fn)[1],
        )

    @property
    def iterates(self) -> bool:
        """True when it returns an async iterator (an async generator or ``-> AsyncIterator``)."""
        returns = (self.returns or "").split("[")[0]
        return inspect.isasyncgenfunction(self.obj) or returns in ASYNC_ITERATORS


def _params(node: ast.FunctionDef | ast.AsyncFunctionDef) -> list[Param]:
    a = node.args
    text = lambda n: ast.unparse(n) if n is not None else None  # noqa: E731
    positional = [*a.posonlyargs, *a.args]
    defaults: list[ast.expr | None] = [None] * (len(positional) - len(a.defaults))
    defaults += a.defaults
    params = [
        Param(
            inspect.Parameter.POSITIONAL_ONLY
            if arg in a.posonlyargs
            else inspect.Parameter.POSITIONAL_OR_KEYWORD,
            arg.arg,
            text(arg.annotation),
            text(d),
        )
        for arg, d in zip(positional, defaults, strict=True)
    ]
    if a.vararg:
        params.append(
            Param(inspect.Parameter.VAR_POSITIONAL, a.vararg.arg, text(a.vararg.annotation), None)
        )
    for arg, default in zip(a.kwonlyargs, a.kw_defaults, strict=True):
        params.append(
            Param(inspect.Parameter.KEYWORD_ONLY, arg.arg, text(arg.annotation), text(default))
        )
    if a.kwarg:
        params.append(
            Param(inspect.Parameter.VAR_KEYWORD, a.kwarg.arg, text(a.kwarg.annotation), None)
        )
    return params


# -- classes ----------------------------------------------------------------------------------


def public_members(cls: type) -> Iterator[tuple[str, Any]]:
    """Public names of ``cls`` and its first-party bases (never ``object``'s), raw."""
    seen: set[str] = set()
    for klass in cls.__mro__:
        if not first_party(klass.__module__):
            continue
        for name, value in vars(klass).items():
            if name not in seen and not name.startswith("_") and name not in LIFECYCLE:
                seen.add(name)
                yield name, value


def has_async_surface(cls: type) -> bool:
    """True for a class with async methods or methods returning async iterators."""
    for _, value in public_members(cls):
        if inspect.iscoroutinefunction(value) or inspect.isasyncgenfunction(value):
            return True
        if inspect.isfunction(value) and Function.read(value).iterates:
            return True
    return any(inspect.iscoroutinefunction(getattr(cls, n, None)) for n in ("__aenter__",))


@dataclass
class Field:
    name: str
    annotation: str
    module: str
    doc: str = ""


def fields_of(cls: type) -> list[Field]:
    """Annotated public attributes (dataclass fields, class annotations), in definition order."""
    found: dict[str, Field] = {}
    for klass in reversed(cls.__mro__):
        if not first_party(klass.__module__):
            continue
        for name, annotation in inspect.get_annotations(klass).items():
            if not name.startswith("_") and not str(annotation).startswith("ClassVar"):
                found[name] = Field(name, str(annotation), klass.__module__)
    return list(found.values())


def unannotated_attributes(cls: type, fields: list[Field]) -> list[Field]:
    """Public attributes assigned in ``__init__``: typed by INSTANCE_ATTRIBUTES."""
    init = vars(cls).get("__init__")
    if init is None or not inspect.isfunction(init):
        return []
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(init)))
    except (OSError, TypeError):
        return []  # generated (dataclass) __init__
    known = {f.name for f in fields}
    out = []
    for node in ast.walk(tree):
        targets = node.targets if isinstance(node, ast.Assign) else []
        for target in targets:
            if not (
                isinstance(target, ast.Attribute)
                and isinstance(target.value, ast.Name)
                and target.value.id == "self"
                and not target.attr.startswith("_")
                and target.attr not in known
            ):
                continue
            key = f"{cls.__module__}:{cls.__qualname__}.{target.attr}"
            if key not in INSTANCE_ATTRIBUTES:
                raise GenerationError(
                    f"{key} is set in __init__ without a type: annotate it in the class body "
                    "or add it to INSTANCE_ATTRIBUTES"
                )
            known.add(target.attr)
            out.append(Field(target.attr, INSTANCE_ATTRIBUTES[key], cls.__module__))
    return out


@dataclass
class ClassInfo:
    cls: type
    kind: str  # "root" or "view"
    methods: list[Function] = field(default_factory=list)
    properties: list[tuple[Function, str]] = field(default_factory=list)
    fields: list[Field] = field(default_factory=list)
    init: Function | None = None

    @classmethod
    def read(cls, klass: type, kind: str) -> ClassInfo:
        info = cls(klass, kind)
        info.fields = fields_of(klass)
        info.fields += unannotated_attributes(klass, info.fields)
        if kind == "view":
            info.fields = [f for f in info.fields if f.name not in VIEW_BASE_FIELDS]
        field_names = {f.name for f in fields_of(klass)}
        for name, value in public_members(klass):
            if name in field_names:
                continue
            if isinstance(value, property) and value.fget is not None:
                info.properties.append((Function.read(value.fget, name), name))
            elif inspect.isfunction(value):
                info.methods.append(Function.read(value, name))
            else:
                raise GenerationError(
                    f"{klass.__qualname__}.{name}: a {type(value).__name__} member has no "
                    "blocking form yet; teach scripts/gen_sync.py about it"
                )
        if kind == "root":
            info.init = Function.read(vars(klass)["__init__"])
            for name in LIFECYCLE:
                if not inspect.iscoroutinefunction(getattr(klass, name, None)):
                    raise GenerationError(
                        f"{klass.__qualname__} has no async {name}: fix LIFECYCLE"
                    )
        return info


# -- the API: what gets a twin ----------------------------------------------------------------


class Api:
    """Decides, for any name the async API mentions, whether it has a blocking twin."""

    def __init__(self) -> None:
        self.roots = {load_object(spec): spec for spec in ROOT_CLASSES}
        self.classes: dict[type, ClassInfo] = {}
        self.aliases: dict[Ref, ast.expr] = {}
        self.functions: dict[Ref, Function] = {}
        self._alias_memo: dict[Ref, bool] = {}

    def sync_module(self, source_module: str) -> str:
        return f"{SYNC_PACKAGE}.{source_module.rpartition('.')[2]}"

    def kind(self, ref: Ref | None) -> str | None:
        """ "root", "view", "alias" (mentions a twin), or None (used as it is)."""
        if ref is None or not ref.name:
            return None
        ref = defining(ref)
        if not first_party(ref.module):
            return None
        obj = load(ref)
        if isinstance(obj, type):
            return self._class_kind(obj)
        if ref.name in module(ref.module).assignments and self._alias_is_twinned(ref):
            return "alias"
        return None

    def _class_kind(self, cls: type) -> str | None:
        if cls in self.roots:
            if cls not in self.classes:
                self.classes[cls] = ClassInfo(cls, "root")  # placeholder against recursion
                self.classes[cls] = ClassInfo.read(cls, "root")
            return "root"
        if not has_async_surface(cls):
            return None
        if inspect.iscoroutinefunction(getattr(cls, "__aenter__", None)):
            raise GenerationError(
                f"{cls.__module__}.{cls.__qualname__} is an async context manager: add it to "
                "ROOT_CLASSES so its twin owns an event loop"
            )
        if cls not in self.classes:
            self.classes[cls] = ClassInfo(cls, "view")
            self.classes[cls] = ClassInfo.read(cls, "view")
        return "view"

    def _alias_is_twinned(self, ref: Ref) -> bool:
        if ref not in self._alias_memo:
            self._alias_memo[ref] = False  # recursion guard
            source = module(ref.module)
            expr = source.assignments[ref.name]
            names = [n.id for n in ast.walk(expr) if isinstance(n, ast.Name)]
            twinned = any(self.kind(source.resolve(n)) for n in names)
            self._alias_memo[ref] = twinned
            if twinned:
                self.aliases[ref] = expr
        return self._alias_memo[ref]

    def is_callback_alias(self, ref: Ref) -> bool:
        expr = self.aliases.get(defining(ref))
        return (
            isinstance(expr, ast.Subscript) and ast.unparse(expr.value).split(".")[-1] == "Callable"
        )

    def twin(self, ref: Ref) -> Ref:
        ref = defining(ref)
        return Ref(self.sync_module(ref.module), ref.name)

    def discover(self) -> None:
        """Walk the public API: roots, ``sqs_cluster.__all__`` and the extra functions."""
        for cls in self.roots:
            self._class_kind(cls)
        package = importlib.import_module(PACKAGE)
        for name in package.__all__:
            ref = module(PACKAGE).resolve(name)
            obj = getattr(package, name)
            if inspect.iscoroutinefunction(obj) and ref is not None:
                self.functions[defining(ref)] = Function.read(obj)
            else:
                self.kind(ref)
        for spec in EXTRA_FUNCTIONS:
            fn = load_object(spec)
            ref = defining(Ref(fn.__module__, fn.__name__))
            if not inspect.iscoroutinefunction(fn) or ref in self.functions:
                raise GenerationError(
                    f"EXTRA_FUNCTIONS: {spec} is not an async function, or is already in "
                    f"{PACKAGE}.__all__: remove it"
                )
            self.functions[ref] = Function.read(fn)


# -- writing one generated module -------------------------------------------------------------


@dataclass
class Annotation:
    text: str
    twinned: bool = False  # mentions a twin: values must be converted
    callback: bool = False  # mentions a callback alias: wrap the user's function
    top_level_any: bool = False  # may carry anything, a view included


class Writer:
    """Collects the imports and code of one generated module."""

    HELPERS = frozenset({"self", "_sync_support", "cast"})
    INTRODUCED = {new: Ref("collections.abc", new) for new in ASYNC_ITERATORS.values()}

    def __init__(self, api: Api, name: str, used_rules: set[str]) -> None:
        self.api = api
        self.name = name
        self.used_rules = used_rules
        self.imports: dict[str, Ref] = {}
        self.chunks: list[str] = []

    def use(self, ref: Ref, local: str | None = None) -> str:
        """Import ``ref`` (as ``local``) unless it is defined here; returns its local name."""
        local = local or ref.name or ref.module.partition(".")[0]
        if ref.module == self.name:
            return local
        bound = self.imports.setdefault(local, ref)
        if (bound.module, bound.name) != (ref.module, ref.name):
            raise GenerationError(f"{self.name}: {local!r} would mean {bound} and {ref}")
        return local

    def annotation(self, text: str | None, context: str) -> Annotation:
        """Rewrite an annotation from module ``context`` for this module; import its names."""
        if text is None:
            return Annotation("")
        tree = ast.parse(text, mode="eval")
        tree = _Unasync(self, module(context)).visit(tree)
        info = Annotation("")
        for node in ast.walk(tree):
            if isinstance(node, ast.Name):
                self._name(node.id, context, info)
        info.text = ast.unparse(tree)
        body = tree.body
        members = _union_members(body)
        info.top_level_any = any(
            _is_any(module(context).resolve(m.id)) for m in members if isinstance(m, ast.Name)
        )
        return info

    def _name(self, name: str, context: str, info: Annotation) -> None:
        if name in self.INTRODUCED:  # put there by _Unasync
            self.use(self.INTRODUCED[name])
            return
        ref = module(context).resolve(name)
        if ref is None:
            return
        kind = self.api.kind(ref)
        if kind is None:
            self.use(ref, name)
            return
        info.twinned = True
        info.callback = info.callback or (kind == "alias" and self.api.is_callback_alias(ref))
        self.use(self.api.twin(ref), name)

    def expression(self, text: str | None, context: str) -> str | None:
        """A default value: same text, its names imported."""
        if text is None:
            return None
        for node in ast.walk(ast.parse(text, mode="eval")):
            if isinstance(node, ast.Name):
                ref = module(context).resolve(node.id)
                if ref is not None:
                    self.use(ref, node.id)
        return text

    def render(self, header: str) -> str:
        lines = [header, "from __future__ import annotations", ""]
        checking = []
        for local, ref in sorted(self.imports.items()):
            line = _import_line(self.name, ref, local)
            (checking if ref.type_checking else lines).append(line)
        if checking:
            lines += ["from typing import TYPE_CHECKING", "", "if TYPE_CHECKING:"]
            lines += [f"    {line}" for line in checking]
        return "\n".join([*lines, "", *self.chunks]) + "\n"


class _Unasync(ast.NodeTransformer):
    """``Awaitable[X]`` -> ``X``; ``AsyncIterator[X]`` -> ``Iterator[X]``; dedupe unions."""

    def __init__(self, writer: Writer, context: Module) -> None:
        self.writer = writer
        self.context = context

    def _is(self, node: ast.expr, name: str) -> bool:
        if not isinstance(node, ast.Name) or node.id != name:
            return False
        ref = self.context.resolve(name)
        return ref is not None and ref.module in TYPING_MODULES

    def visit_Subscript(self, node: ast.Subscript) -> ast.expr:
        self.generic_visit(node)
        if self._is(node.value, AWAITABLE):
            self.writer.used_rules.add(AWAITABLE)
            return node.slice
        for old, new in ASYNC_ITERATORS.items():
            if self._is(node.value, old):
                self.writer.used_rules.add(old)
                node.value = ast.Name(new, ast.Load())
        if self._is(node.value, "Union") and isinstance(node.slice, ast.Tuple):
            members = _dedupe(node.slice.elts)
            if len(members) == 1:
                return members[0]
            node.slice.elts = members
        return node

    def visit_BinOp(self, node: ast.BinOp) -> ast.expr:
        self.generic_visit(node)
        if not isinstance(node.op, ast.BitOr):
            return node
        members = _dedupe(_union_members(node))
        result = members[0]
        for member in members[1:]:
            result = ast.BinOp(result, ast.BitOr(), member)
        return result

    def visit_Constant(self, node: ast.Constant) -> ast.expr:
        if isinstance(node.value, str):  # a quoted forward reference
            return self.visit(ast.parse(node.value, mode="eval").body)  # type: ignore[no-any-return]
        return node


def _union_members(node: ast.expr) -> list[ast.expr]:
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        return [*_union_members(node.left), *_union_members(node.right)]
    return [node]


def _dedupe(nodes: list[ast.expr]) -> list[ast.expr]:
    seen: dict[str, ast.expr] = {}
    for node in nodes:
        seen.setdefault(ast.dump(node), node)
    return list(seen.values())


def _is_any(ref: Ref | None) -> bool:
    if ref is None or not ref.name:
        return False
    try:
        return load(defining(ref)) is Any
    except (ImportError, AttributeError):
        return False


def _import_line(here: str, ref: Ref, local: str) -> str:
    if not ref.name:
        return f"import {ref.module}" + (f" as {local}" if local != ref.module else "")
    source = _relative(here, ref.module) if ref.module.startswith(PACKAGE) else ref.module
    alias = f" as {local}" if local != ref.name else ""
    return f"from {source} import {ref.name}{alias}"


def _relative(here: str, target: str) -> str:
    package = here.rpartition(".")[0].split(".")
    parts = target.split(".")
    common = 0
    while common < min(len(package), len(parts)) and package[common] == parts[common]:
        common += 1
    dots = "." * (len(package) - common + 1)
    rest = ".".join(parts[common:])
    return dots + rest


# -- emitting twins ---------------------------------------------------------------------------


def docstring(text: str, used_rules: set[str], indent: str) -> str:
    """A docstring literal of ``text`` after DOC_REPLACEMENTS."""
    for old, new in DOC_REPLACEMENTS:
        if old in text:
            used_rules.add(f"doc:{old}")
            text = text.replace(old, new)
    text = text.replace("\\", "\\\\").replace('"""', '\\"\\"\\"')
    body = textwrap.indent(text, indent).strip()
    multiline = "\n" in text
    return f'{indent}"""{body}\n{indent}"""' if multiline else f'{indent}"""{body}"""'


def emit_signature(writer: Writer, fn: Function, name: str) -> tuple[str, list[Annotation]]:
    """``def name(...) -> ...:`` and the converted annotation of each parameter."""
    parts: list[str] = []
    infos: list[Annotation] = []
    kinds = [p.kind for p in fn.params]
    for i, p in enumerate(fn.params):
        if (
            p.kind is inspect.Parameter.KEYWORD_ONLY
            and inspect.Parameter.VAR_POSITIONAL not in kinds
        ):
            if i == 0 or fn.params[i - 1].kind is not inspect.Parameter.KEYWORD_ONLY:
                parts.append("*")
        info = writer.annotation(p.annotation, fn.module)
        infos.append(info)
        star = {inspect.Parameter.VAR_POSITIONAL: "*", inspect.Parameter.VAR_KEYWORD: "**"}
        text = star.get(p.kind, "") + p.name + (f": {info.text}" if info.text else "")
        default = writer.expression(p.default, fn.module)
        if default is not None:
            text += f" = {default}" if info.text else f"={default}"
        parts.append(text)
        if p.kind is inspect.Parameter.POSITIONAL_ONLY and (
            i + 1 == len(fn.params)
            or fn.params[i + 1].kind is not inspect.Parameter.POSITIONAL_ONLY
        ):
            parts.append("/")
    returns = writer.annotation(fn.returns, fn.module)
    arrow = f" -> {returns.text}" if returns.text else ""
    infos.append(returns)
    return f"def {name}({', '.join(parts)}){arrow}:", infos


def call_arguments(fn: Function, infos: list[Annotation], root: str, skip_self: bool) -> str:
    args = []
    params = fn.params[1:] if skip_self else fn.params
    for p, info in zip(params, infos[1 if skip_self else 0 :], strict=False):
        if p.name in Writer.HELPERS:
            raise GenerationError(f"{fn.obj.__qualname__}: rename parameter {p.name!r}")
        value = p.name
        if info.callback:
            value = f"_sync_support.callback({p.name}, {root})"
        elif info.twinned or info.top_level_any:
            value = f"_sync_support.unwrap({p.name})"
        if p.kind is inspect.Parameter.VAR_POSITIONAL:
            args.append(f"*{p.name}")
        elif p.kind is inspect.Parameter.VAR_KEYWORD:
            args.append(f"**{p.name}")
        elif p.kind is inspect.Parameter.KEYWORD_ONLY:
            args.append(f"{p.name}={value}")
        else:
            args.append(value)
    return ", ".join(args)


def convert_result(expr: str, returns: Annotation, root: str) -> str:
    if not (returns.twinned or returns.top_level_any):
        return expr
    converted = f"_sync_support.to_sync({expr}, {root})"
    return converted if returns.text == "Any" else f'cast("{returns.text}", {converted})'


def emit_method(writer: Writer, fn: Function) -> str:
    signature, infos = emit_signature(writer, fn, fn.name)
    returns = infos[-1]
    args = call_arguments(fn, infos[:-1], "self._root", skip_self=True)
    target = f"self._core.{fn.name}"
    if fn.iterates:
        expr = f"self._iterate({target}{', ' if args else ''}{args})"
    elif fn.is_async:
        expr = convert_result(
            f"self._call({target}{', ' if args else ''}{args})", returns, "self._root"
        )
    else:
        expr = convert_result(f"{target}({args})", returns, "self._root")
    if "cast(" in expr:
        writer.use(Ref("typing", "cast"))
    body = f"return {expr}" if returns.text not in ("None", "") else expr
    doc = docstring(fn.doc, writer.used_rules, " " * 8) + "\n" if fn.doc else ""
    return f"    {signature}\n{doc}        {body}\n"


def emit_property(writer: Writer, name: str, annotation: str, context: str, doc: str) -> str:
    info = writer.annotation(annotation, context)
    expr = convert_result(f"self._core.{name}", info, "self._root")
    if "cast(" in expr:
        writer.use(Ref("typing", "cast"))
    text = docstring(doc, set(), " " * 8) + "\n" if doc else ""
    return f"    @property\n    def {name}(self) -> {info.text}:\n{text}        return {expr}\n"


def emit_class(writer: Writer, info: ClassInfo) -> str:
    cls = info.cls
    core = writer.use(Ref(cls.__module__, cls.__name__), f"_Async{cls.__name__}")
    params = [p.__name__ for p in getattr(cls, "__parameters__", ())]
    for p in params:
        writer.use(defining(module(cls.__module__).resolve(p) or Ref("", p)), p)
    generic = f"[{', '.join(params)}]" if params else ""
    writer.use(Ref(PACKAGE, "_sync_support"))
    if info.kind == "root":
        bases = f"_sync_support.ClientFacade[{core}{generic}]"
        what = "Blocking client"
        how = (
            "every method runs its async twin on this client's own event-loop thread, which "
            "starts on first use and stops in ``close()`` (or at exit)"
        )
    else:
        bases = f"_sync_support.View[{core}{generic}]"
        what = "Blocking view"
        how = "fields are the async object's; its async methods block and return the result"
    if params:
        writer.use(Ref("typing", "Generic"))
        bases += f", Generic[{', '.join(params)}]"
    if info.kind == "view":
        bases += f", core_type={core}"
    note = textwrap.fill(
        f"{what} generated from :class:`{PACKAGE}.{cls.__name__}`: {how}. See docs/sync.md.",
        width=MAX_LINE - 4,
    )
    doc = (inspect.getdoc(cls) or "").strip()
    out = [f"class {cls.__name__}({bases}):\n"]
    out.append(docstring(f"{doc}\n\n{note}" if doc else note, writer.used_rules, "    ") + "\n\n")
    if info.kind == "view":
        out.append("    __slots__ = ()\n\n")
    if info.init is not None:
        signature, infos = emit_signature(writer, info.init, "__init__")
        args = call_arguments(info.init, infos[:-1], "self", skip_self=True)
        out.append(f"    {signature}\n        super().__init__({core}({args}))\n\n")
    for f in info.fields:
        out.append(emit_property(writer, f.name, f.annotation, f.module, f.doc) + "\n")
    for fn, name in sorted(info.properties, key=lambda x: x[0].line):
        out.append(emit_property(writer, name, fn.returns or "Any", fn.module, fn.doc) + "\n")
    for fn in info.methods:
        out.append(emit_method(writer, fn) + "\n")
    return "".join(out)


def emit_function(writer: Writer, fn: Function) -> str:
    signature, infos = emit_signature(writer, fn, fn.name)
    roots = [
        p.name
        for p, info in zip(fn.params, infos, strict=False)
        if any(r.__name__ in info.text.split("[")[0].split(" | ") for r in writer.api.roots)
    ]
    needs_root = any(i.callback for i in infos[:-1]) or infos[-1].twinned
    if needs_root and not roots:
        raise GenerationError(f"{fn.name}: converting its values needs a client parameter")
    root = roots[0] if roots else "None"
    args = call_arguments(fn, infos[:-1], root, skip_self=False)
    core = writer.use(Ref(fn.module, fn.name), f"_async_{fn.name}")
    writer.use(Ref(PACKAGE, "_sync_support"))
    expr = convert_result(
        f"_sync_support.call_function({core}{', ' if args else ''}{args})", infos[-1], root
    )
    body = f"return {expr}" if infos[-1].text not in ("None", "") else expr
    doc = docstring(fn.doc, writer.used_rules, "    ") + "\n" if fn.doc else ""
    return f"{signature}\n{doc}    {body}\n"


def emit_alias(writer: Writer, ref: Ref, expr: ast.expr) -> str:
    info = writer.annotation(ast.unparse(expr), ref.module)
    doc = module(ref.module).docs.get(ref.name, "")
    text = f"{ref.name} = {info.text}\n"
    return text + (docstring(doc, set(), "") + "\n" if doc else "")


# -- the whole package ------------------------------------------------------------------------


def generate() -> dict[str, tuple[str, str]]:
    """Relative path -> (source module, unformatted source) for every generated file."""
    api = Api()
    api.discover()
    known = -1
    while known != len(api.aliases):  # emitting finds aliases through annotations: repeat
        known = len(api.aliases)
        writers = emit_all(api)
    used_rules = set().union(*(w.used_rules for w in writers.values()))
    files = {}
    for source, writer in writers.items():
        path = f"{api.sync_module(source).rpartition('.')[2]}.py"
        doc = f'"""Blocking twin of ``{source}`` (generated)."""\n'
        files[path] = (source, writer.render(doc))
    files["__init__.py"] = (PACKAGE, render_init(api))
    check_rules(used_rules)
    return files


def emit_all(api: Api) -> dict[str, Writer]:
    """One writer per source module, with its twins in source order."""
    members: dict[str, list[tuple[int, Any]]] = {}
    for cls, info in api.classes.items():
        line = module(cls.__module__).lines[cls.__name__]
        members.setdefault(cls.__module__, []).append((line, info))
    for ref, fn in api.functions.items():
        members.setdefault(ref.module, []).append((fn.line, fn))
    for ref in list(api.aliases):
        members.setdefault(ref.module, []).append((module(ref.module).lines[ref.name], ref))
    writers = {}
    for source in sorted(members):
        writer = writers[source] = Writer(api, api.sync_module(source), set())
        for _, item in sorted(members[source], key=lambda m: m[0]):
            if isinstance(item, ClassInfo):
                writer.chunks.append(emit_class(writer, item))
            elif isinstance(item, Function):
                writer.chunks.append(emit_function(writer, item))
            else:
                writer.chunks.append(emit_alias(writer, item, api.aliases[item]))
    return writers


def render_init(api: Api) -> str:
    package = importlib.import_module(PACKAGE)
    writer = Writer(api, f"{SYNC_PACKAGE}.__init__", set())
    exported: list[str] = []
    for name in package.__all__:
        ref = module(PACKAGE).resolve(name)
        assert ref is not None
        twinned = api.kind(ref) is not None or defining(ref) in api.functions
        writer.use(api.twin(ref) if twinned else Ref(PACKAGE, name), name)
        exported.append(name)
    for ref in api.functions:
        if ref.name not in exported:
            writer.use(api.twin(ref), ref.name)
            exported.append(ref.name)
    names = "".join(f'    "{n}",\n' for n in exported)
    writer.chunks.append(f"__all__ = [\n{names}]\n")
    doc = (
        f'"""Blocking twin of :mod:`{PACKAGE}` (generated): the same API, with no ``async``.\n\n'
        "Each client keeps its own event loop in a background thread, so calls block while the\n"
        "async core still fans out concurrently and keeps its connections warm. See docs/sync.md.\n"
        '"""\n'
    )
    return writer.render(doc)


def check_rules(used_rules: set[str]) -> None:
    rules = {AWAITABLE, *ASYNC_ITERATORS, *(f"doc:{old}" for old, _ in DOC_REPLACEMENTS)}
    unused = sorted(rules - used_rules)
    if unused:
        raise GenerationError(f"rules never used (remove them from gen_sync.py): {unused}")


# -- formatting, writing, checking ------------------------------------------------------------


def ruff(*args: str, source: str, path: Path) -> str:
    """Run the venv's ruff on ``source`` as if it were the file at ``path`` (its settings)."""
    exe = Path(sys.executable).with_name("ruff")
    command = [str(exe)] if exe.exists() else [sys.executable, "-m", "ruff"]
    result = subprocess.run(
        [*command, *args, "--stdin-filename", str(path), "-"],
        input=source,
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    if result.returncode != 0:
        raise GenerationError(f"ruff {' '.join(args)} failed on {path.name}:\n{result.stderr}")
    return result.stdout


def finish(relative: str, origin: str, source: str) -> str:
    """Sort imports, format, then stamp the header with a digest of the formatted body."""
    path = TARGET / relative
    body = ruff("check", "--fix-only", "--select", "I", "--quiet", source=source, path=path)
    body = ruff("format", "--quiet", source=body, path=path)
    header = HEADER.format(source=origin) + DIGEST.format(digest=digest(body))
    return header + body


def digest(body: str) -> str:
    return hashlib.sha256(body.encode()).hexdigest()[:16]


def render_tree(folder: Path) -> None:
    """Generate, format and write the whole package into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for relative, (origin, source) in sorted(generate().items()):
        (folder / relative).write_text(finish(relative, origin, source), encoding="utf-8")


def tree_files(folder: Path) -> dict[str, str]:
    if not folder.is_dir():
        return {}
    return {
        p.relative_to(folder).as_posix(): p.read_text(encoding="utf-8")
        for p in sorted(folder.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    }


def compare(expected_dir: Path, actual_dir: Path) -> list[str]:
    """One line per problem (missing, orphan, edited, stale), with a diff for changed files."""
    expected, actual = tree_files(expected_dir), tree_files(actual_dir)
    problems = []
    for name in sorted(expected.keys() - actual.keys()):
        problems.append(f"missing: {name} (run scripts/gen_sync.py)")
    for name in sorted(actual.keys() - expected.keys()):
        problems.append(f"orphan: {name} is not generated any more (run scripts/gen_sync.py)")
    for name in sorted(expected.keys() & actual.keys()):
        if expected[name] == actual[name]:
            continue
        verdict = "edited by hand" if edited(actual[name]) else "stale (the async API changed)"
        diff = difflib.unified_diff(
            expected[name].splitlines(), actual[name].splitlines(), "generated", name, lineterm=""
        )
        problems.append(f"{verdict}: {name}\n" + "\n".join(list(diff)[:40]))
    return problems


def edited(text: str) -> bool:
    """True when the body does not match the digest in the file's own header."""
    lines = text.splitlines(keepends=True)
    if len(lines) < 2 or not lines[1].startswith("# Body digest: "):
        return True
    recorded = lines[1].removeprefix("# Body digest: ").split()[0]
    return recorded != digest("".join(lines[2:]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare, do not write")
    parser.add_argument("--tree", type=Path, default=TARGET, help="the package folder to check")
    args = parser.parse_args(argv)
    try:
        with tempfile.TemporaryDirectory(prefix="gen-sync-") as tmp:
            fresh = Path(tmp) / "sync"
            render_tree(fresh)
            problems = compare(fresh, args.tree)
            if not args.check and problems:
                shutil.rmtree(args.tree, ignore_errors=True)
                shutil.copytree(fresh, args.tree)
    except GenerationError as exc:
        print(f"gen_sync: {exc}", file=sys.stderr)
        return 2
    if args.check:
        for problem in problems:
            print(f"gen_sync --check: {problem}", file=sys.stderr)
        if problems:
            print(f"gen_sync --check: {len(problems)} problem(s) in {args.tree}", file=sys.stderr)
        return 1 if problems else 0
    print(f"gen_sync: {len(problems)} file(s) updated in {args.tree}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
