"""Handlers reach uploads only through the service (issue 13).

``lint-imports`` (contract ``handlers-use-the-service``) keeps handlers from
importing a storage, the state store or the locker; this test closes the other
door, reaching them through an attribute: ``ctx.composer``, ``service.state``,
``service.composer`` and the like.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HANDLERS = ROOT / "handlers"

#: Attributes that are the backends themselves, whoever holds them.
BACKEND_ATTRIBUTES = frozenset({"composer", "locker", "storages"})
#: Attributes of the service (or of anything called ``service``) that are backends.
SERVICE_BACKENDS = frozenset({"state", "composer", "digests"})


def _holder_name(node: ast.expr) -> str | None:
    """``service`` for ``service.x`` and ``ctx.service.x``; None otherwise."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def reach_arounds(source: str) -> list[str]:
    """``line: expression`` of each attribute access in ``source`` that goes past the service."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Attribute):
            continue
        past_service = node.attr in SERVICE_BACKENDS and _holder_name(node.value) == "service"
        if node.attr in BACKEND_ATTRIBUTES or past_service:
            found.append(f"{node.lineno}: {ast.unparse(node)}")
    return sorted(found)


def test_the_check_sees_the_ways_around_the_service() -> None:
    source = (
        "async def f(handler, self):\n"
        "    handler.ctx.composer.storage(info.storage)\n"
        "    await self.ctx.service.state.update(i, {})\n"
        "    service.composer.locker.new_lock(i)\n"
        "    info.state, info.storage, handler.ctx.service.get(p, i)\n"
    )
    assert reach_arounds(source) == [
        "2: handler.ctx.composer",
        "3: self.ctx.service.state",
        "4: service.composer",
        "4: service.composer.locker",
    ]


def test_no_handler_reaches_past_the_service() -> None:
    modules = sorted(HANDLERS.glob("*.py"))
    assert len(modules) > 10  # the walk found the handlers
    found = {
        str(path.relative_to(ROOT)): hits for path in modules if (hits := reach_arounds(path.read_text()))
    }
    assert found == {}
