"""Plain record classes for the hot paths: ``@record`` where ``@dataclass`` costs too much.

``@dataclass`` writes and compiles the source of ``__init__``, ``__repr__``, ``__eq__``
(and more) for every class it decorates: 0.3-1.3 ms a class, ≈ 9 ms for the records
``cellbox run`` loads (settings, container config and state, sandbox spec, image). A
record class gets the same behaviour from shared generic methods instead, for ≈ 10 µs:

* ``__init__`` taking the fields positionally or by keyword, in declaration order, with
  defaults and ``field(default_factory=...)``; TypeError for a missing, unknown or doubled
  argument, as a dataclass raises;
* ``__post_init__(self)``, when the class defines one, called at the end of ``__init__``
  (checks, or normalising a field: a frozen record sets it with ``object.__setattr__``);
* ``__repr__`` and ``__eq__`` (same class, equal fields) as a dataclass's; mutable records
  are unhashable; ``frozen=True`` ones refuse assignment (:class:`FrozenRecordError`) and
  hash by their fields;
* :func:`fields`, :func:`replace` and :func:`asdict` in place of the dataclasses functions.

Type checkers see a dataclass (PEP 681 ``dataclass_transform``), so constructor calls are
checked as before. Annotations are read as written (``from __future__ import
annotations``); ``ClassVar`` ones are not fields. No inheritance between records.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, TypeVar, dataclass_transform

    T = TypeVar("T")
else:
    def dataclass_transform(**_kwargs: object) -> Callable[[T], T]:
        return lambda function: function

__all__ = ["FrozenRecordError", "asdict", "field", "fields", "record", "replace"]

_MISSING: Any = object()


class FrozenRecordError(AttributeError):
    """A field of a frozen record was assigned (dataclasses' FrozenInstanceError)."""


class _Factory:
    __slots__ = ("make",)

    def __init__(self, make: Callable[[], Any]) -> None:
        self.make = make


def field(*, default_factory: Callable[[], Any]) -> Any:
    """A field whose default is made afresh for each record (a list, a dict...)."""
    return _Factory(default_factory)


@dataclass_transform(field_specifiers=(field,))
def record(cls: type[T] | None = None, /, *, frozen: bool = False) -> Any:
    """Make ``cls`` a record class (use as ``@record`` or ``@record(frozen=True)``)."""

    def wrap(cls: type[T]) -> type[T]:
        spec: list[tuple[str, Any, Callable[[], Any] | None]] = []
        # the class's own annotations; inspect.get_annotations would import inspect
        annotations = cls.__dict__.get("__annotations__", {})  # noqa: RUF063
        for name, annotation in annotations.items():
            if str(annotation).startswith(("ClassVar", "typing.ClassVar")):
                continue
            default = cls.__dict__.get(name, _MISSING)
            if isinstance(default, _Factory):
                delattr(cls, name)
                spec.append((name, _MISSING, default.make))
            else:
                spec.append((name, default, None))
        attributes: dict[str, Any] = {
            "__record_fields__": tuple(spec),
            "__record_post_init__": cls.__dict__.get("__post_init__"),
            "__init__": _init,
            "__repr__": _repr,
            "__eq__": _eq,
            "__hash__": _hash if frozen else None,
        }
        if frozen:
            attributes["__setattr__"] = _refuse_set
            attributes["__delattr__"] = _refuse_delete
        for key, value in attributes.items():
            type.__setattr__(cls, key, value)
        return cls

    return wrap if cls is None else wrap(cls)


def _init(self: Any, *args: Any, **kwargs: Any) -> None:
    cls = type(self)
    spec = cls.__record_fields__
    if len(args) > len(spec):
        raise TypeError(f"{cls.__name__}() takes {len(spec)} positional arguments but "
                        f"{len(args)} were given")
    assign = object.__setattr__
    for i, (name, default, factory) in enumerate(spec):
        if i < len(args):
            if name in kwargs:
                raise TypeError(f"{cls.__name__}() got multiple values for argument {name!r}")
            value = args[i]
        elif name in kwargs:
            value = kwargs.pop(name)
        elif factory is not None:
            value = factory()
        elif default is not _MISSING:
            value = default
        else:
            raise TypeError(f"{cls.__name__}() missing required argument: {name!r}")
        assign(self, name, value)
    if kwargs:
        raise TypeError(f"{cls.__name__}() got an unexpected keyword argument "
                        f"{next(iter(kwargs))!r}")
    post_init = cls.__record_post_init__
    if post_init is not None:
        post_init(self)


def _values(obj: Any) -> tuple[Any, ...]:
    return tuple(getattr(obj, name) for name, _, _ in type(obj).__record_fields__)


def _repr(self: Any) -> str:
    shown = ", ".join(f"{name}={getattr(self, name)!r}"
                      for name, _, _ in type(self).__record_fields__)
    return f"{type(self).__qualname__}({shown})"


def _eq(self: Any, other: object) -> object:
    if other.__class__ is not self.__class__:
        return NotImplemented
    return _values(self) == _values(other)


def _hash(self: Any) -> int:
    return hash(_values(self))


def _refuse_set(self: Any, name: str, value: object) -> None:
    raise FrozenRecordError(f"cannot assign to field {name!r}")


def _refuse_delete(self: Any, name: str) -> None:
    raise FrozenRecordError(f"cannot delete field {name!r}")


def fields(record_or_class: Any) -> tuple[str, ...]:
    """The field names of a record (or record class), in declaration order."""
    cls = record_or_class if isinstance(record_or_class, type) else type(record_or_class)
    try:
        return tuple(name for name, _, _ in getattr(cls, "__record_fields__"))  # noqa: B009
    except AttributeError:
        raise TypeError(f"{cls.__name__} is not a record class") from None


def replace(obj: T, /, **changes: Any) -> T:
    """A copy of the record ``obj`` with ``changes`` (dataclasses.replace)."""
    values = {name: getattr(obj, name) for name in fields(obj)}
    for name in changes:
        if name not in values:
            raise TypeError(f"{type(obj).__name__} has no field {name!r}")
    values.update(changes)
    return type(obj)(**values)


def asdict(obj: Any) -> dict[str, Any]:
    """The record as a dict, records, lists, tuples and dicts inside it copied likewise."""
    return {name: _plain(getattr(obj, name)) for name in fields(obj)}


def _plain(value: Any) -> Any:
    if hasattr(type(value), "__record_fields__"):
        return asdict(value)
    if isinstance(value, list | tuple):
        return type(value)(_plain(item) for item in value)
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    return value
