"""``tusd_py.core.errors`` (with its auth branch in ``tusd_py.core.auth_errors``):
the one error table.

Every class has a valid status, a unique stable code and a message; the
documented tree in the module docstring lists every class under its real
parent; extra headers (Retry-After, WWW-Authenticate) are attached.
"""

from __future__ import annotations

import re

import pytest

from tusd_py.core import auth_errors, errors

#: The modules that define the table (the docstring tree of ``errors`` lists both).
MODULES = (errors, auth_errors)
CLASSES = errors.all_error_classes()


def _class(name: str) -> type[errors.TusError]:
    """The error class ``name`` from whichever module of the table defines it."""
    found = [vars(m)[name] for m in MODULES if getattr(vars(m).get(name), "__module__", None) == m.__name__]
    assert len(found) == 1, name
    cls: type[errors.TusError] = found[0]
    return cls


def test_the_table_is_complete() -> None:
    defined = {
        obj
        for module in MODULES
        for obj in vars(module).values()
        if isinstance(obj, type) and issubclass(obj, errors.TusError) and obj.__module__ == module.__name__
    }
    assert set(CLASSES) == defined
    assert len(CLASSES) == len(set(CLASSES))


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_each_class_has_status_code_and_message(cls: type[errors.TusError]) -> None:
    assert isinstance(cls.status, int) and 400 <= cls.status <= 599
    assert re.fullmatch(r"ERR_[A-Z0-9_]+", cls.code)
    assert cls.default_message and cls.default_message == cls.default_message.strip()
    error = cls()
    assert error.message == cls.default_message
    assert error.to_dict() == {"error": {"code": cls.code, "message": cls.default_message}}
    assert str(error) == cls.default_message
    assert cls("custom").message == "custom"


def test_codes_are_unique() -> None:
    """A code names exactly one class, hence one (status, message)."""
    by_code: dict[str, list[str]] = {}
    for cls in CLASSES:
        by_code.setdefault(cls.code, []).append(cls.__name__)
    assert {code: names for code, names in by_code.items() if len(names) > 1} == {}


def test_status_families_follow_the_tree() -> None:
    for cls in CLASSES:
        if issubclass(cls, errors.ProtocolError):
            assert 400 <= cls.status < 500, cls
        if issubclass(cls, auth_errors.AuthError):
            assert cls.status in (401, 403), cls
        if issubclass(cls, errors.BackendError):
            assert cls.status >= 500, cls
        if issubclass(cls, errors.InvalidHeader):
            assert cls.status == 400, cls


def _documented_tree() -> list[tuple[int, str]]:
    """``(depth, class name)`` for each line of the module docstring's tree."""
    doc = errors.__doc__ or ""
    tree = doc.split("Exception tree::", 1)[1].split("\n\n", 2)[1]
    rows = []
    for line in tree.splitlines():
        match = re.match(r"^    ([│├└─ ]*)([A-Z][A-Za-z]+)", line)
        assert match, line
        rows.append((len(match.group(1)) // 4, match.group(2)))
    return rows


def test_docstring_tree_lists_every_class_under_its_parent() -> None:
    rows = _documented_tree()
    parents: list[str] = []
    seen = set()
    for depth, name in rows:
        cls = _class(name)
        del parents[depth:]
        if parents:
            assert _class(parents[-1]) in cls.__bases__, f"{name} is not a {parents[-1]}"
        else:
            assert cls is errors.TusError
        parents.append(name)
        seen.add(cls)
    assert seen == set(CLASSES)


def test_documented_statuses_match() -> None:
    doc = errors.__doc__ or ""
    for name, status in re.findall(r"── ([A-Z][A-Za-z]+) +(\d{3})", doc):
        assert _class(name).status == int(status), name


@pytest.mark.parametrize(
    "cls", [c for c in CLASSES if issubclass(c, errors.LimitError)], ids=lambda c: c.__name__
)
@pytest.mark.parametrize(("retry_after", "header"), [(0.0, "1"), (1.0, "1"), (1.2, "2"), (30, "30")])
def test_limit_errors_carry_retry_after(
    cls: type[errors.LimitError], retry_after: float, header: str
) -> None:
    error = cls(retry_after=retry_after)
    assert error.headers["Retry-After"] == header


def test_unauthenticated_asks_for_a_bearer_token() -> None:
    error = auth_errors.Unauthenticated(headers={"X-Extra": "1"})
    assert error.headers["WWW-Authenticate"].startswith("Bearer ")
    assert error.headers["X-Extra"] == "1"


def test_headers_are_per_instance() -> None:
    one = errors.RangeNotSatisfiable(headers={"Content-Range": "bytes */1"})
    two = errors.RangeNotSatisfiable()
    assert "Content-Range" not in two.headers
    one.headers["X"] = "y"
    assert "X" not in errors.RangeNotSatisfiable().headers
