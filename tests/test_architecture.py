"""The one-library rules, checked on the source: dependencies point one way (see
docs/architecture.md), no module imports a private name of another package, and the
library never seeds torch's global generator."""

import ast
import pathlib

import pytest

SRC = pathlib.Path(__file__).resolve().parents[1] / "src" / "bayeskit"
BOTTOM = {"errors", "validation", "training", "nn", "sklearn_compat", "compiled", "machine"}

# package -> the bayeskit packages it may import (besides itself)
ALLOWED = {
    "errors": set(),
    "compiled": set(),
    "machine": {"errors"},
    "validation": {"errors"},
    "training": {"errors", "validation"},
    "nn": {"errors", "validation"},
    "sklearn_compat": {"errors", "validation"},
    "linalg": {"errors", "validation", "compiled", "machine"},
    "distributions": BOTTOM | {"linalg"},
    "gp": BOTTOM | {"linalg", "distributions"},
    "mcmc": BOTTOM | {"linalg", "distributions", "gp"},
    "ratio": BOTTOM | {"linalg", "distributions"},
    "bo": BOTTOM | {"linalg", "distributions", "gp", "ratio"},
    "vae": BOTTOM | {"linalg", "distributions"},
    "data": BOTTOM,
    "plotting": BOTTOM | {"linalg", "distributions", "gp", "mcmc", "ratio", "bo", "vae",
                          "data"},
    "cli": None,  # the top: may import everything
}


def package_of(path: pathlib.Path) -> str:
    parts = path.relative_to(SRC).parts
    return parts[0].removesuffix(".py") if parts[0] != "__init__.py" else "__init__"


def bayeskit_imports(path: pathlib.Path):
    """(line, target package, module path parts, imported names) of every bayeskit import."""
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and (
                node.module == "bayeskit" or node.module.startswith("bayeskit.")):
            parts = node.module.split(".")[1:]
            names = [a.name for a in node.names]
            if not parts:  # from bayeskit import x
                for name in names:
                    yield node.lineno, name, [name], []
            else:
                yield node.lineno, parts[0], parts, names
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("bayeskit."):
                    parts = a.name.split(".")[1:]
                    yield node.lineno, parts[0], parts, []


FILES = sorted(p for p in SRC.rglob("*.py"))


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(SRC)))
def test_dependencies_point_one_way_and_stay_public(path):
    own = package_of(path)
    allowed = ALLOWED.get(own, set())
    for line, target, parts, names in bayeskit_imports(path):
        if target == own or own == "__init__":
            continue
        where = f"{path.relative_to(SRC)}:{line}"
        if allowed is not None:
            assert target in allowed, f"{where}: {own} may not import {target}"
        private = [p for p in parts if p.startswith("_")] + [
            n for n in names if n.startswith("_")]
        assert not private, f"{where}: private name(s) {private} imported from {target}"


def test_nothing_imports_the_command_line_or_plotting():
    offenders = [f"{path.relative_to(SRC)}:{line} imports {target}"
                 for path in FILES for line, target, _, _ in bayeskit_imports(path)
                 if target in ("cli", "plotting")
                 and package_of(path) not in ("cli", "plotting", "__init__")]
    assert not offenders


def test_the_library_never_seeds_the_global_generator():
    for path in FILES:
        if package_of(path) == "cli":
            continue
        text = path.read_text()
        assert "torch.manual_seed(" not in text, path
        assert "np.random.seed(" not in text, path
