"""``records``: the cheap stand-in for dataclasses on the hot paths behaves like one."""

from __future__ import annotations

import pytest
from cellbox.runtime.records import FrozenRecordError, asdict, field, fields, record, replace


@record
class Point:
    x: int
    y: int = 0
    tags: list[str] = field(default_factory=list)


@record(frozen=True)
class Box:
    corner: Point
    name: str = "box"


def test_construction_positional_keyword_defaults_and_factories() -> None:
    assert Point(1) == Point(x=1, y=0, tags=[])
    assert Point(1, 2, ["a"]).tags == ["a"]
    assert Point(1).tags is not Point(1).tags  # a fresh list each time
    assert Point.y == 0 and not hasattr(Point, "tags")  # as a dataclass leaves them


@pytest.mark.parametrize(("make", "message"), [
    (lambda: Point(), "missing required argument: 'x'"),
    (lambda: Point(1, x=2), "multiple values for argument 'x'"),
    (lambda: Point(1, z=2), "unexpected keyword argument 'z'"),
    (lambda: Point(1, 2, [], 4), "takes 3 positional arguments but 4 were given"),
])
def test_bad_arguments_are_type_errors(make: object, message: str) -> None:
    with pytest.raises(TypeError, match=message):
        make()  # type: ignore[operator]


def test_repr_eq_and_hash_as_a_dataclass_has_them() -> None:
    assert repr(Point(1, 2)) == "Point(x=1, y=2, tags=[])"
    assert Point(1) != Point(2) and Point(1) != (1, 0, [])
    with pytest.raises(TypeError):
        hash(Point(1))  # mutable: unhashable, like a dataclass with eq
    assert Box(Point(1)) == Box(Point(1)) != Box(Point(1), "other")

    @record(frozen=True)
    class Pair:
        a: int
        b: str = ""

    assert hash(Pair(1, "x")) == hash(Pair(1, "x")) and len({Pair(1), Pair(1), Pair(2)}) == 2


def test_frozen_records_refuse_assignment() -> None:
    box = Box(Point(1))
    with pytest.raises(FrozenRecordError, match="cannot assign to field 'name'"):
        box.name = "other"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        del box.name  # type: ignore[misc]
    point = Point(1)
    point.y = 5
    assert point.y == 5


def test_fields_replace_and_asdict() -> None:
    box = Box(Point(1, 2, ["t"]))
    assert fields(Box) == ("corner", "name") == fields(box)
    moved = replace(box, name="moved")
    assert moved == Box(Point(1, 2, ["t"]), "moved") and box.name == "box"
    with pytest.raises(TypeError, match="no field 'size'"):
        replace(box, size=3)
    plain = asdict(box)
    assert plain == {"corner": {"x": 1, "y": 2, "tags": ["t"]}, "name": "box"}
    plain["corner"]["tags"].append("u")
    assert box.corner.tags == ["t"]  # a copy, as dataclasses.asdict makes
    with pytest.raises(TypeError, match="not a record"):
        fields(int)


def test_post_init_checks_and_normalises_like_a_dataclass() -> None:
    @record(frozen=True)
    class Span:
        start: int
        end: int
        label: str = ""

        def __post_init__(self) -> None:
            if self.end < self.start:
                raise ValueError(f"end {self.end} before start {self.start}")
            object.__setattr__(self, "label", self.label.strip())

    assert Span(1, 2, " a ") == Span(1, 2, "a")
    assert replace(Span(1, 2), end=5, label=" b") == Span(1, 5, "b")  # replace runs it too
    with pytest.raises(ValueError, match="end 0 before start 1"):
        Span(1, 0)
    with pytest.raises(ValueError, match="end 0 before start 1"):
        replace(Span(1, 2), end=0)
