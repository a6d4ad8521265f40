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


# Services that change or create something someone owns: a page must say who is asking (a forgotten user is
# refused in a shared mode, so this catches it before a student does).
ACTING = {"cancel_job", "job_logs", "submit_benchmark", "submit_training", "submit_sweep", "upload_dataset", "add_checkpoint",
          "set_weights_path", "clear_weights_path", "delete_runs", "delete_upload", "rename_upload", "delete_model",
          "retitle_model", "reproduce", "classify", "detect", "segment", "restore", "generate"}


def _names_a_user(call: ast.Call) -> bool:
    def is_user(node) -> bool:
        return (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "current_user") or \
            (isinstance(node, ast.Name) and node.id == "user") or \
            (isinstance(node, ast.Attribute) and node.attr == "name" and is_user(node.value))
    return any(is_user(a) for a in call.args) or any(k.arg in ("user", "owner") and is_user(k.value) or k.arg is None
                                                     for k in call.keywords)


@pytest.mark.parametrize("path", sorted(str(p.relative_to(ROOT)) for d in ("pages", "ui") for p in (ROOT / d).glob("*.py")))
def test_pages_say_who_acts(path):
    offenders = []
    for node in ast.walk(ast.parse((ROOT / path).read_text())):
        if not isinstance(node, ast.Call):
            continue
        target = node.args[0] if isinstance(node.func, ast.Name) and node.func.id == "guarded" and node.args else node.func
        if isinstance(target, ast.Attribute) and target.attr in ACTING and not _names_a_user(node):
            offenders.append(f"line {node.lineno}: {target.attr}")
    assert offenders == []
