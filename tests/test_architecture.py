"""Imports point one way: pages -> core -> db. core never imports streamlit; db never imports torch or core."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def imported_roots(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


RULES = {
    "core": {"streamlit", "pages", "ui"},
    "db": {"torch", "torchvision", "timm", "streamlit", "core", "pages", "ui"},
    "pages": {"torch", "torchvision", "sqlalchemy", "db"},
    "ui": {"torch", "sqlalchemy", "db"},
}


@pytest.mark.parametrize("package,forbidden", RULES.items())
def test_layering(package, forbidden):
    files = [p for p in (ROOT / package).rglob("*.py")]
    assert files, package
    offenders = {str(p.relative_to(ROOT)): sorted(imported_roots(p) & forbidden) for p in files}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_app_is_only_a_router():
    roots = imported_roots(ROOT / "app.py")
    assert roots <= {"streamlit", "ui"}


@pytest.mark.parametrize("page", sorted(p.name for p in (ROOT / "pages").glob("*.py")))
def test_every_page_starts_with_page_setup(page):
    """page_setup() must run before anything is drawn: it hands a deep link on a fresh server to app.py."""
    body = ast.parse((ROOT / "pages" / page).read_text()).body
    statements = [n for n in body if not isinstance(n, (ast.Import, ast.ImportFrom))
                  and not (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant))]
    first = statements[0]
    assert isinstance(first, ast.Expr) and isinstance(first.value, ast.Call) and first.value.func.id == "page_setup"
