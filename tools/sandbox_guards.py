"""The restricted namespace sandboxed code runs in: guards, builtins and read-only module proxies.

This is the language layer of tools/sandbox.py. RestrictedPython rewrites the code so that every
attribute read, item read, iteration, unpacking, in-place operator and attribute write goes
through a function defined here; names and attributes that start with "_" are refused before
the code runs. On top of RestrictedPython's own checks this module:

- imports only an allowlist of pure-computation modules, and hands out read-only snapshots of
  their public names with every module-valued attribute removed (`datetime.sys`,
  `json.codecs`, `fractions.sys` and the like) unless that module is itself allowed;
- refuses attributes that lead to frames, code objects, tracebacks or real modules, whatever
  their name;
- replaces `str.format`/`format_map` with a formatter whose field lookups go through the same
  guards (so "{0.__class__}".format(x) fails like x.__class__ does);
- never hands out a metaclass (`type` itself, ABCMeta), so the three-argument `type()` that
  would build classes with arbitrary dunder methods cannot be reached; `type(x)` works for
  everything else;
- removes or narrows the few allowed-module functions that call the real getattr or eval() on
  names the code chooses (`string.Formatter`, `functools.singledispatch`, the `assigned`
  argument of `functools.wraps`/`update_wrapper`).

There is no `eval`, `exec`, `compile`, `open`, `globals`, `vars`, `dir`, `input`, `help`,
`exit` or `breakpoint` at all.

It deliberately is not a security boundary on its own: RestrictedPython has had bypasses, so it
only ever runs inside the locked-down child process that tools/sandbox_child.py sets up.
"""

from __future__ import annotations

import _string  # the C helper string.Formatter itself uses to split "a.b[c]" field names
import builtins
import functools
import importlib
import operator
import string
import sys
import types
from collections.abc import Callable, Mapping
from typing import Any

from RestrictedPython import safe_builtins
from RestrictedPython.Guards import (
    full_write_guard,
    guarded_iter_unpack_sequence,
    guarded_unpack_sequence,
    safer_getattr_raise,
)
from RestrictedPython.transformer import INSPECT_ATTRIBUTES

# Pure computation only: nothing here reaches files, processes, sockets or the interpreter.
ALLOWED_MODULES: tuple[str, ...] = (
    "bisect",
    "cmath",
    "collections",
    "collections.abc",
    "datetime",
    "decimal",
    "difflib",
    "fractions",
    "functools",
    "heapq",
    "itertools",
    "json",
    "math",
    "numbers",
    "random",
    "re",
    "statistics",
    "string",
    "textwrap",
    "unicodedata",
)

# Helpers that allowed modules import lazily from C (datetime.strptime imports _strptime):
# imported up front, because the locked-down child may not be able to read the stdlib later.
_HELPER_MODULES = ("_strptime",)

# Public names of allowed modules that would undo a guard.
_DENIED_MODULE_NAMES: dict[str, frozenset[str]] = {
    "string": frozenset({"Formatter"}),  # get_field/vformat walk attributes unguarded
    # register() evaluates string annotations with eval(), outside RestrictedPython.
    "functools": frozenset({"singledispatch", "singledispatchmethod"}),
}

# format/format_map on anything but a str (collections.UserString.format, str.format itself)
# would run the unguarded formatter; str instances get the guarded one instead.
_DENIED_ATTRS = INSPECT_ATTRIBUTES | {"format", "format_map", "f_generator"}
_DENIED_VALUE_TYPES = (types.ModuleType, types.FrameType, types.CodeType, types.TracebackType)

# fmt: off
_SAFE_BUILTIN_NAMES = (
    "all", "any", "ascii", "bin", "bytearray", "bytes", "classmethod", "dict", "enumerate",
    "filter", "format", "frozenset", "iter", "list", "map", "max", "min", "next", "object",
    "property", "reversed", "set", "sorted", "staticmethod", "sum", "tuple", "zip",
    "NotImplemented", "RecursionError", "TimeoutError", "ModuleNotFoundError",
    "StopAsyncIteration",
)
# fmt: on

_INPLACE_OPERATORS: dict[str, Callable[[Any, Any], Any]] = {
    "+=": operator.iadd,
    "-=": operator.isub,
    "*=": operator.imul,
    "/=": operator.itruediv,
    "//=": operator.ifloordiv,
    "%=": operator.imod,
    "**=": operator.ipow,
    "<<=": operator.ilshift,
    ">>=": operator.irshift,
    "|=": operator.ior,
    "^=": operator.ixor,
    "&=": operator.iand,
    "@=": operator.imatmul,
}


class ModuleProxy:
    """A read-only snapshot of an allowed module's public names: what `import` hands out."""

    __slots__ = ("_name", "_names")

    def __init__(self, name: str, names: dict[str, Any]) -> None:
        object.__setattr__(self, "_name", name)
        object.__setattr__(self, "_names", names)

    def __getattr__(self, attr: str) -> Any:
        try:
            return self._names[attr]
        except KeyError:
            raise AttributeError(
                f"module '{self._name}' has no attribute '{attr}' (or it is not allowed here)"
            ) from None

    def __setattr__(self, attr: str, value: object) -> None:
        raise AttributeError("modules are read-only in the sandbox")

    def __delattr__(self, attr: str) -> None:
        raise AttributeError("modules are read-only in the sandbox")

    def __repr__(self) -> str:
        return f"<module '{self._name}' (sandboxed)>"


def build_modules() -> dict[str, ModuleProxy]:
    """Import every allowed module now (no lazy imports after the process is locked down)."""
    real = {name: importlib.import_module(name) for name in ALLOWED_MODULES}
    for name in _HELPER_MODULES:
        importlib.import_module(name)
    proxies = {name: ModuleProxy(name, {}) for name in real}
    for name, module in real.items():
        denied = _DENIED_MODULE_NAMES.get(name, frozenset())
        names = proxies[name]._names
        for attr, value in vars(module).items():
            if attr.startswith("_") or attr in denied:
                continue
            if isinstance(value, types.ModuleType):
                # A module attribute is reachable only when that module is allowed anyway.
                if value.__name__ in proxies:
                    names[attr] = proxies[value.__name__]
                continue
            if not _is_metaclass(value):
                names[attr] = value
    # Custom `assigned`/`updated` would make these read any attribute with the real getattr.
    proxies["functools"]._names.update(wraps=_wraps, update_wrapper=_update_wrapper)
    return proxies


def _wraps(wrapped: Callable[..., Any]) -> Callable[..., Any]:
    return functools.wraps(wrapped)


def _update_wrapper(wrapper: Any, wrapped: Callable[..., Any]) -> Any:
    return functools.update_wrapper(wrapper, wrapped)


def make_importer(modules: Mapping[str, ModuleProxy]) -> Callable[..., ModuleProxy]:
    def guarded_import(
        name: str,
        globals: object = None,
        locals: object = None,
        fromlist: object = (),
        level: int = 0,
    ) -> ModuleProxy:
        if type(fromlist) is list and not fromlist and level == 0:
            # Only C code calls us like this (PyImport_Import, e.g. datetime.strptime importing
            # _strptime): it ignores our return value and reads sys.modules. Sandboxed code
            # cannot: `__import__` is not a name it may use. Never import anything new here.
            if sys.modules.get(name) is not None:
                return None  # type: ignore[return-value]
            raise ImportError(f"import of '{name}' is not allowed")
        if level != 0:
            raise ImportError("relative imports are not allowed")
        if name not in modules:
            raise ImportError(f"import of '{name}' is not allowed")
        # `import a.b` binds `a`; `from a.b import c` needs `a.b` itself.
        return modules[name] if fromlist else modules[name.partition(".")[0]]

    return guarded_import


def guarded_getattr(obj: object, name: str) -> Any:
    """What `obj.name` compiles to: RestrictedPython's checks, ours, and a check on the value."""
    if type(name) is not str:
        raise TypeError("attribute name must be a string")
    if name in ("format", "format_map") and isinstance(obj, str):
        return _safe_format_method(obj, name)
    if name.startswith("_") or name in _DENIED_ATTRS:
        raise AttributeError(f"access to attribute '{name}' is not allowed in the sandbox")
    value = safer_getattr_raise(obj, name)
    if isinstance(value, _DENIED_VALUE_TYPES) or _is_metaclass(value):
        raise AttributeError(f"access to attribute '{name}' is not allowed in the sandbox")
    return value


def _is_metaclass(value: object) -> bool:
    return isinstance(value, type) and issubclass(value, type)


def guarded_getitem(obj: Any, key: Any) -> Any:
    return obj[key]


class _GuardedFormatter(string.Formatter):
    """str.format whose "{0.attr[key]}" lookups go through guarded_getattr."""

    def get_field(self, field_name: str, args: Any, kwargs: Any) -> tuple[Any, Any]:
        first, rest = _string.formatter_field_name_split(field_name)
        obj = self.get_value(first, args, kwargs)
        for is_attr, key in rest:
            obj = guarded_getattr(obj, key) if is_attr else obj[key]
        return obj, first


_FORMATTER = _GuardedFormatter()


def _safe_format_method(text: str, name: str) -> Callable[..., str]:
    if name == "format":

        def format(*args: Any, **kwargs: Any) -> str:
            return _FORMATTER.vformat(text, args, kwargs)

        return format

    def format_map(mapping: Mapping[str, Any]) -> str:
        return _FORMATTER.vformat(text, (), mapping)

    return format_map


def _sandbox_getattr(obj: object, name: str, *default: Any) -> Any:
    if len(default) > 1:
        raise TypeError("getattr expected at most 3 arguments")
    try:
        return guarded_getattr(obj, name)
    except AttributeError:
        if default:
            return default[0]
        raise


def _sandbox_hasattr(obj: object, name: str) -> bool:
    try:
        guarded_getattr(obj, name)
    except AttributeError:
        return False
    return True


def _sandbox_setattr(obj: object, name: str, value: object) -> None:
    if type(name) is not str or name.startswith("_"):
        raise AttributeError(f"setting attribute {name!r} is not allowed in the sandbox")
    setattr(full_write_guard(obj), name, value)


def _sandbox_delattr(obj: object, name: str) -> None:
    if type(name) is not str or name.startswith("_"):
        raise AttributeError(f"deleting attribute {name!r} is not allowed in the sandbox")
    delattr(full_write_guard(obj), name)


def _sandbox_type(obj: object, *rest: object) -> type:
    if rest:
        raise TypeError("type() with 3 arguments is not allowed in the sandbox; use a class")
    result = type(obj)
    if _is_metaclass(result):
        # type(SomeClass) would be `type` itself, whose 3-argument call we just refused.
        raise TypeError("type() of a class is not available in the sandbox")
    return result


def _make_class(name: str, bases: tuple[type, ...], namespace: dict[str, Any]) -> type:
    # The `__metaclass__` of every class statement: instances of classes the code defines
    # itself may have their (non-underscore) attributes written; everything else stays
    # read-only through full_write_guard.
    namespace["_guarded_writes"] = True
    return type(name, bases, namespace)


def _inplacevar(op: str, target: Any, value: Any) -> Any:
    try:
        return _INPLACE_OPERATORS[op](target, value)
    except KeyError:
        raise SyntaxError(f"operator {op} is not supported") from None


def _apply(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    return fn(*args, **kwargs)


def make_builtins(modules: Mapping[str, ModuleProxy], extra: Mapping[str, Any]) -> dict[str, Any]:
    """The `__builtins__` of sandboxed code: safe builtins, the guards, and `extra` functions."""
    table: dict[str, Any] = dict(safe_builtins)
    for name in _SAFE_BUILTIN_NAMES:
        table[name] = getattr(builtins, name)
    table.update(
        {
            "__import__": make_importer(modules),
            "__metaclass__": _make_class,
            "type": _sandbox_type,
            "getattr": _sandbox_getattr,
            "hasattr": _sandbox_hasattr,
            "setattr": _sandbox_setattr,
            "delattr": _sandbox_delattr,
            "_getattr_": guarded_getattr,
            "_getitem_": guarded_getitem,
            "_getiter_": iter,
            "_write_": full_write_guard,
            "_iter_unpack_sequence_": guarded_iter_unpack_sequence,
            "_unpack_sequence_": guarded_unpack_sequence,
            "_inplacevar_": _inplacevar,
            "_apply_": _apply,
        }
    )
    table.update(extra)
    return table
