#!/usr/bin/env python3
"""Generate ``src/sqs_cluster/sync/``, the blocking facade, from the async API.

    python scripts/gen_sync.py            # (re)write the package
    python scripts/gen_sync.py --check    # exit 1 if the checked-in package is not what we'd write

The async API is the one source of truth. This script imports ``sqs_cluster`` and walks it:

- *roots* (``ROOT_CLASSES``: ``MessageClient``): the twin owns an event-loop thread;
- *views*: any class reachable from the API that has async methods (``ReceivedMessage``,
  ``ClusterRecord``); the twin wraps an instance and blocks on its async methods. When its
  ``__init__`` takes a client (``Worker``), users build the twin and it runs on that client;
- *aliases* that mention a twin (``Handler``), re-emitted so they name the sync types;
- the async functions of ``sqs_cluster.__all__`` (and ``EXTRA_FUNCTIONS``).

Every twin keeps the name, parameters, defaults and docstring of its original; annotations are
copied as source text, with their names imported from where the original got them (or from the
twin). Bodies are one line through ``sqs_cluster._facade.runtime``. Output is formatted with the
project's ruff settings and stamped with a "generated — do not edit" header carrying a digest of
the body, so ``--check`` tells a file edited by hand from one left stale by an API change.
Configuration that does not match the API (a missing name, a rule never used, a redundant entry)
fails generation, so dead configuration cannot pile up.
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
from typing import Any, ClassVar

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))  # introspect this tree, not whatever is installed

PACKAGE = "sqs_cluster"
SYNC_PACKAGE = "sqs_cluster.sync"
TARGET = ROOT / "src" / "sqs_cluster" / "sync"

# -- configuration: every entry must match the API, or generation fails ----------------------

ROOT_CLASSES = ("sqs_cluster._client.client:MessageClient",)
"""Classes users construct: the twin owns an event-loop thread and keeps the core open on it."""

EXTRA_FUNCTIONS: tuple[str, ...] = ()
"""Async functions to twin besides those in ``sqs_cluster.__all__`` (``"module:name"``)."""

LIFECYCLE = {"__aenter__": "__enter__", "__aexit__": "__exit__", "aclose": "close"}
"""Root methods that ``_sync_support.ClientFacade`` provides under their blocking names."""

INSTANCE_ATTRIBUTES = {
    "sqs_cluster._cli.worker:Worker.queue_url": "str",
    "sqs_cluster._cli.worker:Worker.handler": "LambdaHandler",
    "sqs_cluster._cli.worker:Worker.options": "WorkerOptions",
    "sqs_cluster._cli.worker:Worker.stats": "WorkerStats",
}
"""Types of public attributes that ``__init__`` sets without an annotation."""

VIEW_BASE_FIELDS = ("client",)
"""View fields that ``_sync_support.View`` provides (the blocking client, not the async one)."""

DOC_REPLACEMENTS = (("``async with ", "``with "),)
"""Docstring text to change in the twins (like unasync's rules)."""

ASYNC_ITERATORS = {"AsyncIterator": "Iterator"}
"""Annotation names to replace; a method returning one becomes a blocking iterator."""

AWAITABLE = "Awaitable"  # ``Awaitable[X]`` becomes ``X``: the twin's callers get the value
TYPING_MODULES = ("typing", "collections.abc", "typing_extensions")
HEADER = "# Generated — do not edit: scripts/gen_sync.py writes this from {source}.\n"
DIGEST = "# Body digest: {digest} (gen_sync.py --check tells hand edits from stale files).\n"
WIDTH = 100  # the project's line length, for text this script wraps itself


class GenerationError(Exception):
    """The async API or the configuration cannot be turned into a facade."""


@dataclass(frozen=True, order=True)
class Ref:
    """Where a name comes from: ``from <module> import <name>`` (``name=""``: the module)."""

    module: str
    name: str
    type_checking: bool = False


# -- reading the source ---------------------------------------------------------------------


class Module:
    """A module's source: what each top-level name is bound to, and alias docstrings."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.package = importlib.import_module(name).__package__ or ""
        self.imports: dict[str, Ref] = {}
        self.assignments: dict[str, ast.expr] = {}
        self.docs: dict[str, str] = {}
        self.lines: dict[str, int] = {}
        self._scan(ast.parse(inspect.getsource(importlib.import_module(name))).body, False)

    def _scan(self, body: list[ast.stmt], type_checking: bool) -> None:
        for i, node in enumerate(body):
            if isinstance(node, ast.If) and ast.unparse(node.test).endswith("TYPE_CHECKING"):
                self._scan(node.body, True)
            elif isinstance(node, ast.ImportFrom):
                source = "." * node.level + (node.module or "")
                source = importlib.util.resolve_name(source, self.package)
                for a in node.names:
                    self.imports[a.asname or a.name] = Ref(source, a.name, type_checking)
            elif isinstance(node, ast.Import):
                for a in node.names:
                    local = a.asname or a.name.partition(".")[0]
                    self.imports[local] = Ref(a.name if a.asname else local, "", type_checking)
            elif isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in (t for t in targets if isinstance(t, ast.Name)):
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
    following = body[index + 1] if index + 1 < len(body) else None
    if isinstance(following, ast.Expr) and isinstance(following.value, ast.Constant):
        value = following.value.value
        return inspect.cleandoc(value) if isinstance(value, str) else ""
    return ""


_MODULES: dict[str, Module] = {}


def module(name: str) -> Module:
    if name not in _MODULES:
        _MODULES[name] = Module(name)
    return _MODULES[name]


def first_party(module_name: str) -> bool:
    inside = module_name == PACKAGE or module_name.startswith(PACKAGE + ".")
    generated = module_name == SYNC_PACKAGE or module_name.startswith(SYNC_PACKAGE + ".")
    return inside and not generated


def defining(ref: Ref) -> Ref:
    """Follow re-exports to the module that defines the name."""
    while ref.name and first_party(ref.module) and ref.name in module(ref.module).imports:
        ref = module(ref.module).imports[ref.name]
    return ref


def load(ref: Ref) -> Any:
    """The object a Ref names (None for a typing-only import that cannot be imported)."""
    try:
        found = importlib.import_module(ref.module)
    except ImportError:
        if ref.type_checking:
            return None
        raise
    return getattr(found, ref.name) if ref.name else found


def load_spec(spec: str, setting: str) -> Any:
    """``"module:Name"`` from a setting -> the object; a missing name is an error."""
    module_name, _, name = spec.partition(":")
    found = importlib.import_module(module_name)
    if not hasattr(found, name):
        raise GenerationError(f"{setting}: {spec!r} does not exist; remove or fix it")
    return getattr(found, name)


@dataclass
class Function:
    """One function or method: its parameters and annotations as source text."""

    name: str
    obj: Any
    module: str
    signature: inspect.Signature  # annotations and defaults hold source text
    doc: str
    line: int

    @classmethod
    def read(cls, fn: Any, name: str | None = None) -> Function:
        fn = inspect.unwrap(fn)
        node = ast.parse(textwrap.dedent(inspect.getsource(fn))).body[0]
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            raise GenerationError(f"{fn.__qualname__}: expected a function definition")
        return cls(
            name=name or fn.__name__,
            obj=fn,
            module=fn.__module__,
            signature=_source_signature(fn, node),
            doc=inspect.getdoc(fn) or "",
            line=inspect.getsourcelines(fn)[1],
        )

    @property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.obj)

    @property
    def iterates(self) -> bool:
        """True when it returns an async iterator (an async generator or ``-> AsyncIterator``)."""
        returns = self.signature.return_annotation
        outer = returns.split("[")[0] if isinstance(returns, str) else ""
        return inspect.isasyncgenfunction(self.obj) or outer in ASYNC_ITERATORS


def _source_signature(fn: Any, node: ast.FunctionDef | ast.AsyncFunctionDef) -> inspect.Signature:
    """``inspect.signature(fn)`` with each annotation and default replaced by its source text."""
    a = node.args
    positional = [*a.posonlyargs, *a.args]
    defaults = dict(zip([p.arg for p in positional][::-1], a.defaults[::-1], strict=False))
    defaults.update({p.arg: d for p, d in zip(a.kwonlyargs, a.kw_defaults, strict=True) if d})
    args = {arg.arg: arg for arg in [*positional, *a.kwonlyargs, a.vararg, a.kwarg] if arg}
    params = []
    for p in inspect.signature(fn).parameters.values():
        arg = args.get(p.name)
        if arg is None:
            raise GenerationError(f"{fn.__qualname__}: its source does not match its signature")
        default = defaults.get(p.name)
        params.append(
            p.replace(
                annotation=ast.unparse(arg.annotation) if arg.annotation else p.empty,
                default=ast.unparse(default) if default else p.empty,
            )
        )
    returns = ast.unparse(node.returns) if node.returns else inspect.Signature.empty
    return inspect.Signature(params, return_annotation=returns, __validate_parameters__=False)


# -- classes ----------------------------------------------------------------------------------


def public_members(cls: type) -> Iterator[tuple[str, Any]]:
    """Public names of ``cls`` and its first-party bases (not the lifecycle), raw."""
    seen: set[str] = set()
    for klass in cls.__mro__:
        if first_party(klass.__module__):
            for name, value in vars(klass).items():
                if name not in seen and not name.startswith("_") and name not in LIFECYCLE:
                    seen.add(name)
                    yield name, value


def has_async_surface(cls: type) -> bool:
    """True for a class with async methods or methods returning async iterators."""
    return any(
        inspect.iscoroutinefunction(value)
        or inspect.isasyncgenfunction(value)
        or (inspect.isfunction(value) and Function.read(value).iterates)
        for _, value in public_members(cls)
    )


@dataclass
class Field:
    """A forwarded attribute: name, annotation text and the module that annotation is from."""

    name: str
    annotation: str
    module: str
    doc: str = ""


def annotated_fields(cls: type) -> list[Field]:
    """Annotated public attributes (dataclass fields, class annotations), in definition order."""
    found: dict[str, Field] = {}
    for klass in reversed(cls.__mro__):
        if first_party(klass.__module__):
            for name, annotation in inspect.get_annotations(klass).items():
                if not name.startswith("_") and not str(annotation).startswith("ClassVar"):
                    found[name] = Field(name, str(annotation), klass.__module__)
    return list(found.values())


USED_ATTRIBUTES: set[str] = set()


def init_attributes(cls: type, known: set[str]) -> list[Field]:
    """Public attributes that ``__init__`` sets without an annotation, typed by configuration."""
    init = vars(cls).get("__init__")
    if not inspect.isfunction(init):
        return []
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(init)))
    except OSError:
        return []  # a generated __init__ (dataclass)
    fields = []
    for node in ast.walk(tree):
        for target in node.targets if isinstance(node, ast.Assign) else []:
            name = target.attr if isinstance(target, ast.Attribute) else "_"
            if name.startswith("_") or name in known or ast.unparse(target) != f"self.{name}":
                continue
            key = f"{cls.__module__}:{cls.__qualname__}.{name}"
            if key not in INSTANCE_ATTRIBUTES:
                raise GenerationError(
                    f"{key} is set in __init__ without a type: annotate it in the class body "
                    "or add it to INSTANCE_ATTRIBUTES"
                )
            known.add(name)
            USED_ATTRIBUTES.add(key)
            fields.append(Field(name, INSTANCE_ATTRIBUTES[key], cls.__module__))
    return fields


@dataclass
class ClassInfo:
    """What a class's twin forwards."""

    cls: type
    kind: str  # "root", "view" or "bound" (a view users construct with a client)
    fields: list[Field] = field(default_factory=list)
    properties: list[Function] = field(default_factory=list)
    methods: list[Function] = field(default_factory=list)
    init: Function | None = None

    @classmethod
    def read(cls, klass: type, kind: str) -> ClassInfo:
        fields = annotated_fields(klass)
        base_fields = set(VIEW_BASE_FIELDS) if kind != "root" else set()
        fields += init_attributes(klass, {f.name for f in fields} | base_fields)
        info = cls(
            klass, kind, [f for f in fields if kind == "root" or f.name not in VIEW_BASE_FIELDS]
        )
        for name, value in public_members(klass):
            if name in {f.name for f in fields}:
                continue
            if isinstance(value, property) and value.fget is not None:
                info.properties.append(Function.read(value.fget, name))
            elif inspect.isfunction(value):
                info.methods.append(Function.read(value, name))
            else:
                raise GenerationError(
                    f"{klass.__qualname__}.{name}: no blocking form for a {type(value).__name__} "
                    "member; teach scripts/gen_sync.py about it"
                )
        if kind in ("root", "bound"):
            info.init = Function.read(vars(klass)["__init__"])
        if kind == "root":
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
        self.roots = [load_spec(spec, "ROOT_CLASSES") for spec in ROOT_CLASSES]
        self.classes: dict[type, ClassInfo] = {}
        self.aliases: dict[Ref, ast.expr] = {}
        self.functions: dict[Ref, Function] = {}
        self._twinned_alias: dict[Ref, bool] = {}

    def kind(self, ref: Ref | None) -> str | None:
        """``"root"``, ``"view"``, ``"alias"`` (mentions a twin), or None (used as it is)."""
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
            kind = "root"
        elif not has_async_surface(cls):
            return None
        elif inspect.iscoroutinefunction(getattr(cls, "__aenter__", None)):
            raise GenerationError(
                f"{cls.__module__}.{cls.__qualname__} is an async context manager: add it to "
                "ROOT_CLASSES so its twin owns an event loop"
            )
        else:
            kind = "bound" if self.root_parameter(cls) else "view"
        if cls not in self.classes:
            self.classes[cls] = ClassInfo(cls, kind)  # a placeholder while reading it
            self.classes[cls] = ClassInfo.read(cls, kind)
        return kind

    def root_parameter(self, cls: type) -> str | None:
        """The ``__init__`` parameter of ``cls`` that takes a client (of a root class), if any."""
        init = vars(cls).get("__init__")
        if not inspect.isfunction(init) or cls in self.roots:
            return None
        try:
            fn = Function.read(init)
        except OSError:
            return None  # a generated __init__ (dataclass): instances come from a client
        context = module(fn.module)
        for p in fn.signature.parameters.values():
            if isinstance(p.annotation, str):
                names = [n.id for n in ast.walk(ast.parse(p.annotation)) if isinstance(n, ast.Name)]
                refs = [context.resolve(n) for n in names]
                if any(r and r.name and load(defining(r)) in self.roots for r in refs):
                    return p.name
        return None

    def _alias_is_twinned(self, ref: Ref) -> bool:
        if ref not in self._twinned_alias:
            self._twinned_alias[ref] = False  # a placeholder against recursion
            source = module(ref.module)
            expr = source.assignments[ref.name]
            names = [n.id for n in ast.walk(expr) if isinstance(n, ast.Name)]
            self._twinned_alias[ref] = any(self.kind(source.resolve(n)) for n in names)
            if self._twinned_alias[ref]:
                self.aliases[ref] = expr
        return self._twinned_alias[ref]

    def is_callback(self, ref: Ref) -> bool:
        """True for an alias of a ``Callable`` type: values are the user's functions."""
        expr = self.aliases.get(defining(ref))
        return isinstance(expr, ast.Subscript) and ast.unparse(expr.value).endswith("Callable")

    def twin(self, ref: Ref) -> Ref:
        ref = defining(ref)
        return Ref(sync_module(ref.module), ref.name)

    def discover(self) -> None:
        """Walk the public API: roots, ``sqs_cluster.__all__`` and the extra functions."""
        for cls in self.roots:
            self._class_kind(cls)
        package = importlib.import_module(PACKAGE)
        for name in package.__all__:
            ref = module(PACKAGE).resolve(name)
            if inspect.iscoroutinefunction(getattr(package, name)) and ref is not None:
                self.functions[defining(ref)] = Function.read(getattr(package, name))
            else:
                self.kind(ref)
        for spec in EXTRA_FUNCTIONS:
            fn = load_spec(spec, "EXTRA_FUNCTIONS")
            ref = defining(Ref(fn.__module__, fn.__name__))
            if not inspect.iscoroutinefunction(fn) or ref in self.functions:
                raise GenerationError(
                    f"EXTRA_FUNCTIONS: {spec} is not an async function, or is already in "
                    f"{PACKAGE}.__all__; remove it"
                )
            self.functions[ref] = Function.read(fn)


def sync_module(source_module: str) -> str:
    """``sqs_cluster._messages.event`` -> ``sqs_cluster.sync._event``: one flat twin module."""
    return f"{SYNC_PACKAGE}._{source_module.rpartition('.')[2].lstrip('_')}"


# -- rewriting annotations for a generated module -----------------------------------------------


@dataclass
class Annotation:
    """An annotation rewritten for the twin, and how values of that type cross over."""

    text: str
    twinned: bool = False  # mentions a twin: values are converted (unwrap / to_sync)
    callback: bool = False  # mentions a callback alias: the user's function is adapted
    root: bool = False  # names a root class: a client the twin can run on
    top_level_any: bool = False  # Any (or Any | ...): may carry a view, so converted too


class Writer:
    """Collects the imports and code of one generated module."""

    BODY_NAMES = frozenset({"self", "_sync_support", "cast"})  # parameters must not shadow these
    INTRODUCED: ClassVar[dict[str, Ref]] = {
        new: Ref("collections.abc", new) for new in ASYNC_ITERATORS.values()
    }

    def __init__(self, api: Api, name: str) -> None:
        self.api = api
        self.name = name
        self.used_rules: set[str] = set()
        self.imports: dict[str, Ref] = {}
        self.chunks: list[str] = []

    def use(self, ref: Ref, local: str | None = None) -> str:
        """Import ``ref`` (as ``local``) unless it is defined here; returns its local name."""
        local = local or ref.name or ref.module.partition(".")[0]
        if ref.module != self.name:
            bound = self.imports.setdefault(local, ref)
            if (bound.module, bound.name) != (ref.module, ref.name):
                raise GenerationError(f"{self.name}: {local!r} would mean {bound} and {ref}")
        return local

    def annotation(self, text: Any, context: str) -> Annotation:
        """Rewrite annotation source from module ``context`` for this module; import its names."""
        if not isinstance(text, str):
            return Annotation("")
        tree = _Unasync(self, module(context)).visit(ast.parse(text, mode="eval"))
        info = Annotation(ast.unparse(tree))
        for node in ast.walk(tree):
            if isinstance(node, ast.Name):
                self._import_name(node.id, context, info)
        info.top_level_any = any(
            isinstance(m, ast.Name) and _is_any(module(context).resolve(m.id))
            for m in _union_members(tree.body)
        )
        return info

    def _import_name(self, name: str, context: str, info: Annotation) -> None:
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
        info.root = info.root or kind == "root"
        info.callback = info.callback or (kind == "alias" and self.api.is_callback(ref))
        self.use(self.api.twin(ref), name)

    def expression(self, text: Any, context: str) -> Any:
        """A default value: the same source text, with its names imported."""
        if isinstance(text, str):
            for node in ast.walk(ast.parse(text, mode="eval")):
                if isinstance(node, ast.Name) and (ref := module(context).resolve(node.id)):
                    self.use(ref, node.id)
        return text

    def render(self, docstring: str) -> str:
        lines = [docstring, "from __future__ import annotations", ""]
        checking: list[str] = []
        for local, ref in sorted(self.imports.items()):
            (checking if ref.type_checking else lines).append(_import_line(self.name, ref, local))
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
            node.slice.elts = _dedupe(node.slice.elts)
            return node.slice.elts[0] if len(node.slice.elts) == 1 else node
        return node

    def visit_BinOp(self, node: ast.BinOp) -> ast.expr:
        self.generic_visit(node)
        if not isinstance(node.op, ast.BitOr):
            return node
        first, *rest = _dedupe(_union_members(node))
        for member in rest:
            first = ast.BinOp(first, ast.BitOr(), member)
        return first

    def visit_Constant(self, node: ast.Constant) -> ast.expr:
        if isinstance(node.value, str):  # a quoted forward reference: rewrite what it says
            rewritten: ast.expr = self.visit(ast.parse(node.value, mode="eval").body)
            return rewritten
        return node


def _union_members(node: ast.expr) -> list[ast.expr]:
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        return [*_union_members(node.left), *_union_members(node.right)]
    return [node]


def _dedupe(nodes: list[ast.expr]) -> list[ast.expr]:
    return list({ast.dump(n): n for n in nodes}.values())


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
    source = (
        _relative(here, ref.module)
        if first_party(ref.module) or ref.module.startswith(SYNC_PACKAGE)
        else ref.module
    )
    return f"from {source} import {ref.name}" + (f" as {local}" if local != ref.name else "")


def _relative(here: str, target: str) -> str:
    """``from`` text for ``target`` as seen from module ``here`` (both in this package)."""
    package, parts = here.split(".")[:-1], target.split(".")
    common = 0
    while common < min(len(package), len(parts)) and package[common] == parts[common]:
        common += 1
    return "." * (len(package) - common + 1) + ".".join(parts[common:])


# -- emitting twins -----------------------------------------------------------------------------


@dataclass
class Text:
    """Source text standing in for an annotation or default, so ``str(Signature)`` prints it."""

    text: str

    def __repr__(self) -> str:
        return self.text


def docstring(writer: Writer, text: str, indent: str) -> str:
    """A docstring literal of ``text`` after DOC_REPLACEMENTS, or nothing for no text."""
    if not text:
        return ""
    for old, new in DOC_REPLACEMENTS:
        if old in text:
            writer.used_rules.add(f"doc:{old}")
            text = text.replace(old, new)
    text = textwrap.indent(text.replace("\\", "\\\\").replace('"""', '\\"""'), indent).strip()
    closing = f"\n{indent}" if "\n" in text else ""
    return f'{indent}"""{text}{closing}"""\n'


def emit_def(writer: Writer, fn: Function, name: str) -> tuple[str, list[Annotation]]:
    """``def name(...) -> ...:`` and the rewritten annotation of each parameter, then the return."""
    infos, params = [], []
    for p in fn.signature.parameters.values():
        info = writer.annotation(p.annotation, fn.module)
        default = writer.expression(p.default, fn.module)
        infos.append(info)
        params.append(
            p.replace(
                annotation=Text(info.text) if info.text else p.empty,
                default=p.empty if default is p.empty else Text(default),
            )
        )
    returns = writer.annotation(fn.signature.return_annotation, fn.module)
    signature = inspect.Signature(
        params, return_annotation=Text(returns.text) if returns.text else inspect.Signature.empty
    )
    return f"def {name}{signature}:", [*infos, returns]


def call_arguments(fn: Function, infos: list[Annotation], root: str, unwrap: bool = True) -> str:
    """The arguments that pass the twin's parameters on to the original, converted as needed.

    ``unwrap=False`` leaves views and clients as they are (``call_function`` needs to see them).
    """
    args = []
    for p, info in zip(fn.signature.parameters.values(), infos, strict=False):
        if p.name in Writer.BODY_NAMES:
            if p.name == "self":
                continue
            raise GenerationError(f"{fn.obj.__qualname__}: rename the parameter {p.name!r}")
        value = p.name
        if info.callback:
            value = f"_sync_support.callback({p.name}, {root})"
        elif unwrap and (info.twinned or info.top_level_any):
            value = f"_sync_support.unwrap({p.name})"
        if p.kind is p.VAR_POSITIONAL:
            args.append(f"*{p.name}")
        elif p.kind is p.VAR_KEYWORD:
            args.append(f"**{p.name}")
        else:
            args.append(f"{p.name}={value}" if p.kind is p.KEYWORD_ONLY else value)
    return ", ".join(args)


def convert_result(writer: Writer, expr: str, returns: Annotation, root: str) -> str:
    if not (returns.twinned or returns.top_level_any):
        return expr
    converted = f"_sync_support.to_sync({expr}, {root})"
    if returns.text == "Any":
        return converted
    return f'{writer.use(Ref("typing", "cast"))}("{returns.text}", {converted})'


def body(expr: str, returns: Annotation) -> str:
    return f"return {expr}" if returns.text not in ("None", "") else expr


def emit_method(writer: Writer, fn: Function, on_loop: bool = False) -> str:
    signature, infos = emit_def(writer, fn, fn.name)
    args = call_arguments(fn, infos[:-1], "self._root")
    target, sep = f"self._core.{fn.name}", ", " if args else ""
    if fn.iterates:
        expr = f"self._iterate({target}{sep}{args})"
    elif fn.is_async:
        expr = convert_result(writer, f"self._call({target}{sep}{args})", infos[-1], "self._root")
    elif on_loop:  # a stateful object of the loop: even its plain methods run there
        expr = convert_result(writer, f"self._run({target}{sep}{args})", infos[-1], "self._root")
    else:
        expr = convert_result(writer, f"{target}({args})", infos[-1], "self._root")
    doc = docstring(writer, fn.doc, " " * 8)
    return f"    {signature}\n{doc}        {body(expr, infos[-1])}\n"


def emit_property(writer: Writer, name: str, annotation: str, context: str, doc: str) -> str:
    info = writer.annotation(annotation, context)
    expr = convert_result(writer, f"self._core.{name}", info, "self._root")
    text = docstring(writer, doc, " " * 8)
    return f"    @property\n    def {name}(self) -> {info.text}:\n{text}        return {expr}\n"


def emit_class(writer: Writer, info: ClassInfo) -> str:
    cls = info.cls
    core = writer.use(Ref(cls.__module__, cls.__name__), f"_Async{cls.__name__}")
    params = [p.__name__ for p in getattr(cls, "__parameters__", ())]
    for name in params:
        writer.use(defining(module(cls.__module__).resolve(name) or Ref("", name)), name)
    generic = f"[{', '.join(params)}]" if params else ""
    writer.use(Ref(f"{PACKAGE}._facade", "runtime"), "_sync_support")
    base = "ClientFacade" if info.kind == "root" else "View"
    bases = f"_sync_support.{base}[{core}{generic}]"
    if params:
        bases += f", {writer.use(Ref('typing', 'Generic'))}{generic}"
    if info.kind != "root":
        bases += f", core_type={core}"
    out = [f"class {cls.__name__}({bases}):\n", docstring(writer, class_doc(info), "    "), "\n"]
    if info.kind != "root":
        out.append("    __slots__ = ()\n\n")
    if info.init is not None:
        out.append(emit_init(writer, info, core) + "\n")
    for f in info.fields:
        out.append(emit_property(writer, f.name, f.annotation, f.module, f.doc) + "\n")
    for fn in sorted(info.properties, key=lambda p: p.line):
        returns = fn.signature.return_annotation
        out.append(emit_property(writer, fn.name, returns, fn.module, fn.doc) + "\n")
    out += [emit_method(writer, fn, info.kind == "bound") + "\n" for fn in info.methods]
    return "".join(out)


def emit_init(writer: Writer, info: ClassInfo, core: str) -> str:
    """A root builds its core; a bound view builds its core and runs on its client's loop."""
    assert info.init is not None
    signature, infos = emit_def(writer, info.init, "__init__")
    params = list(info.init.signature.parameters)
    client = next((params[i] for i, a in enumerate(infos[:-1]) if a.root), "")
    args = call_arguments(info.init, infos[:-1], client or "self")
    call = f"{core}({args})" + (f", {client}" if info.kind == "bound" else "")
    return f"    {signature}\n        super().__init__({call})\n"


def class_doc(info: ClassInfo) -> str:
    if info.kind == "root":
        what = "Blocking client"
        how = (
            "each method runs its async twin on this client's own event-loop thread, which "
            "starts on first use and stops in ``close()`` (or at exit)"
        )
    elif info.kind == "bound":
        what = "Blocking twin"
        how = (
            "it runs on the event-loop thread of the client it is given; its methods block "
            "and return the result"
        )
    else:
        what = "Blocking view"
        how = "fields are the async object's; its async methods block and return the result"
    note = f"{what} generated from :class:`{PACKAGE}.{info.cls.__name__}`: {how}. See docs/sync.md."
    original = inspect.getdoc(info.cls) or ""
    return f"{original}\n\n{textwrap.fill(note, WIDTH - 4)}" if original else note


def emit_function(writer: Writer, fn: Function) -> str:
    signature, infos = emit_def(writer, fn, fn.name)
    params = list(fn.signature.parameters)
    roots = [params[i] for i, info in enumerate(infos[:-1]) if info.root]
    if not roots and (infos[-1].twinned or any(i.callback for i in infos[:-1])):
        raise GenerationError(f"{fn.name}: converting its values needs a client parameter")
    root = roots[0] if roots else "None"
    args = call_arguments(fn, infos[:-1], root, unwrap=False)
    core = writer.use(Ref(fn.module, fn.name), f"_async_{fn.name}")
    writer.use(Ref(f"{PACKAGE}._facade", "runtime"), "_sync_support")
    call = f"_sync_support.call_function({core}{', ' if args else ''}{args})"
    expr = convert_result(writer, call, infos[-1], root)
    return f"{signature}\n{docstring(writer, fn.doc, '    ')}    {body(expr, infos[-1])}\n"


def emit_alias(writer: Writer, ref: Ref, expr: ast.expr) -> str:
    info = writer.annotation(ast.unparse(expr), ref.module)
    return f"{ref.name} = {info.text}\n" + docstring(writer, module(ref.module).docs[ref.name], "")


# -- the whole package --------------------------------------------------------------------------


def generate() -> dict[str, tuple[str, str]]:
    """Relative path -> (source module, unformatted source) for every generated file."""
    USED_ATTRIBUTES.clear()
    api = Api()
    api.discover()
    found = -1
    while found != len(api.aliases):  # emitting finds aliases through annotations: repeat
        found = len(api.aliases)
        writers = emit_all(api)
    files = {}
    for source, writer in writers.items():
        path = f"{sync_module(source).rpartition('.')[2]}.py"
        files[path] = (source, writer.render(f'"""Blocking twin of ``{source}`` (generated)."""\n'))
    files["__init__.py"] = (PACKAGE, render_init(api))
    check_rules(set().union(*(w.used_rules for w in writers.values())))
    return files


def emit_all(api: Api) -> dict[str, Writer]:
    """One writer per source module, with its twins in source order."""
    members: dict[str, list[tuple[int, Any]]] = {}
    for cls, info in api.classes.items():
        members.setdefault(cls.__module__, []).append(
            (module(cls.__module__).lines[cls.__name__], info)
        )
    for ref, fn in api.functions.items():
        members.setdefault(ref.module, []).append((fn.line, fn))
    for ref in list(api.aliases):
        members.setdefault(ref.module, []).append((module(ref.module).lines[ref.name], ref))
    writers = {}
    for source in sorted(members):
        writer = writers[source] = Writer(api, sync_module(source))
        for _, item in sorted(members[source], key=lambda m: m[0]):
            if isinstance(item, ClassInfo):
                writer.chunks.append(emit_class(writer, item))
            elif isinstance(item, Function):
                writer.chunks.append(emit_function(writer, item))
            else:
                writer.chunks.append(emit_alias(writer, item, api.aliases[item]))
    return writers


def render_init(api: Api) -> str:
    """The package: every name of ``sqs_cluster.__all__`` (twins where they exist), and more."""
    package = importlib.import_module(PACKAGE)
    writer = Writer(api, f"{SYNC_PACKAGE}.__init__")
    exported = []
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
    writer.chunks.append("__all__ = [\n" + "".join(f'    "{n}",\n' for n in exported) + "]\n")
    return writer.render(
        f'"""Blocking twin of :mod:`{PACKAGE}` (generated): the same API, with no ``async``.\n\n'
        "Each client keeps its own event loop in a background thread, so calls block while the\n"
        "async core still fans out concurrently and keeps its connections warm. See docs/sync.md.\n"
        '"""\n'
    )


def check_rules(used: set[str]) -> None:
    rules = {AWAITABLE, *ASYNC_ITERATORS, *(f"doc:{old}" for old, _ in DOC_REPLACEMENTS)}
    if unused := sorted(rules - used):
        raise GenerationError(f"rules never used, remove them from gen_sync.py: {unused}")
    if unused := sorted(set(INSTANCE_ATTRIBUTES) - USED_ATTRIBUTES):
        raise GenerationError(f"INSTANCE_ATTRIBUTES never used (annotated now?): {unused}")


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
        raise GenerationError(f"ruff {args[0]} failed on {path.name}:\n{result.stderr}")
    return result.stdout


def finish(relative: str, origin: str, source: str) -> str:
    """Sort imports, format, then stamp the header with a digest of the formatted body."""
    path = TARGET / relative
    text = ruff("check", "--fix-only", "--select", "I", "--quiet", source=source, path=path)
    text = ruff("format", "--quiet", source=text, path=path)
    return HEADER.format(source=origin) + DIGEST.format(digest=digest(text)) + text


def digest(body: str) -> str:
    return hashlib.sha256(body.encode()).hexdigest()[:16]


def render_tree(folder: Path) -> None:
    """Generate, format and write the whole package into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for relative, (origin, source) in sorted(generate().items()):
        (folder / relative).write_text(finish(relative, origin, source), encoding="utf-8")


def tree_files(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (bytecode caches aside), by relative path."""
    if not folder.is_dir():
        return {}
    return {
        p.relative_to(folder).as_posix(): p.read_text(encoding="utf-8")
        for p in sorted(folder.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    }


def compare(expected_dir: Path, actual_dir: Path) -> list[str]:
    """One entry per problem (missing, orphan, edited, stale), with a diff for changed files."""
    expected, actual = tree_files(expected_dir), tree_files(actual_dir)
    problems = [f"missing: {name}" for name in sorted(expected.keys() - actual.keys())]
    problems += [f"orphan: {name} (not generated)" for name in sorted(actual.keys() - expected)]
    for name in sorted(expected.keys() & actual.keys()):
        if expected[name] != actual[name]:
            verdict = "edited by hand" if edited(actual[name]) else "stale (the async API changed)"
            lines = difflib.unified_diff(
                expected[name].splitlines(),
                actual[name].splitlines(),
                "generated",
                name,
                n=1,
                lineterm="",
            )
            problems.append(f"{verdict}: {name}\n" + "\n".join(list(lines)[:40]))
    return problems


def edited(text: str) -> bool:
    """True when the body does not match the digest in the file's own header."""
    header, _, rest = text.partition("\n")
    digest_line, _, body = rest.partition("\n")
    recorded = digest_line.removeprefix("# Body digest: ").split(" ")[0]
    return not (header.startswith("# Generated") and recorded == digest(body))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare only; exit 1 on problems")
    parser.add_argument("--tree", type=Path, default=TARGET, help="the package folder")
    args = parser.parse_args(argv)
    try:
        with tempfile.TemporaryDirectory(prefix="gen-sync-") as tmp:
            fresh = Path(tmp) / "sync"
            render_tree(fresh)
            problems = compare(fresh, args.tree)
            if problems and not args.check:
                shutil.rmtree(args.tree, ignore_errors=True)
                shutil.copytree(fresh, args.tree)
    except GenerationError as exc:
        print(f"gen_sync: {exc}", file=sys.stderr)
        return 2
    if not args.check:
        print(f"gen_sync: {len(problems)} file(s) rewritten in {args.tree}")
        return 0
    for problem in problems:
        print(f"gen_sync --check: {problem}", file=sys.stderr)
    if problems:
        print(
            f"gen_sync --check: {len(problems)} problem(s); run scripts/gen_sync.py",
            file=sys.stderr,
        )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
