"""Imports point one way: pages -> ui -> core -> db, and inside core a fixed order of layers; no cycles, imports
inside functions counted. core never imports streamlit; db never imports torch or core."""
import ast
import re
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


# -- layers inside core ---------------------------------------------------------------------------------------
# A unit may import units of lower layers (and itself); units of one layer do not import each other, except in
# the foundation layer (small modules that import nothing else of core), whose imports must not form a cycle.
LAYERS = [
    ["db"],
    ["core", "core.config", "core.errors", "core.annotations", "core.wording", "core.provenance", "core.users",
     "core.store", "core.tuning"],
    ["core.models"],
    ["core.data", "core.metrics", "core.engine"],
    ["core.tasks", "core.runs", "core.charts"],
    ["core.jobs", "core.eval_charts"],  # jobs know benchmark and training only by their registered handlers
    ["core.benchmark"],
    ["core.training"],  # a training job ends with a benchmark of the trained model
    ["core.experiments"],  # experiments repeat small classifier runs; registered job kinds like benchmark and training
    ["core.services"],
    ["core.__main__"],
]
RANK = {unit: i for i, layer in enumerate(LAYERS) for unit in layer}
FOUNDATION = set(LAYERS[1])


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def unit_of(module: str) -> str:
    parts = module.split(".")
    if parts[0] != "core":
        return parts[0]
    return "core" if len(parts) == 1 else f"core.{parts[1]}"


def _type_checking_only(tree: ast.AST) -> set[int]:
    """Imports under `if TYPE_CHECKING:` (types for annotations; nothing runs them)."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            out |= {id(n) for stmt in node.body for n in ast.walk(stmt)}
    return out


def project_imports(path: Path) -> list[tuple[str, int, bool]]:
    """(imported project module, line, inside a function) for every import of core/db, relative ones resolved."""
    tree = ast.parse(path.read_text())
    skip = _type_checking_only(tree)
    nested = {id(n) for fn in ast.walk(tree) if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef))
              for n in ast.walk(fn)}
    me = module_name(path)
    package = me if path.name == "__init__.py" else me.rsplit(".", 1)[0]
    out = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        targets = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1] + ([node.module] if node.module else []))
            targets = [f"{base}.{a.name}" if (ROOT / Path(*f"{base}.{a.name}".split("."))).with_suffix(".py").exists()
                       or (ROOT / Path(*f"{base}.{a.name}".split(".")) / "__init__.py").exists() else base
                       for a in node.names]
        out += [(t, node.lineno, id(node) in nested) for t in targets if t.split(".")[0] in ("core", "db")]
    return out


CORE_FILES = sorted(p for d in ("core", "db") for p in (ROOT / d).rglob("*.py") if "migrations" not in p.parts)


def test_every_core_unit_has_a_layer():
    assert {unit_of(module_name(p)) for p in CORE_FILES} - set(RANK) == set()


@pytest.mark.parametrize("path", [str(p.relative_to(ROOT)) for p in CORE_FILES])
def test_core_imports_point_down_the_layers(path):
    me = unit_of(module_name(ROOT / path))
    offenders = []
    for target, line, _ in project_imports(ROOT / path):
        other = unit_of(target)
        if other == me:
            continue
        down = RANK[other] < RANK[me] or (me in FOUNDATION and other in FOUNDATION)
        if not down:
            offenders.append(f"line {line}: {me} (layer {RANK[me]}) imports {target} (layer {RANK[other]})")
    assert offenders == []


def _module_graph() -> dict[str, set[str]]:
    known = {module_name(p) for p in CORE_FILES}
    graph = {m: set() for m in known}
    for p in CORE_FILES:
        for target, _, _ in project_imports(p):
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != module_name(p):
                graph[module_name(p)].add(target)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(comp)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


# Cycles between modules of one package that remain, each with why; a new cycle fails, and one that disappears
# must be taken off this list.
KNOWN_CYCLES: set[frozenset[str]] = set()  # none: plug-ins (model adapters, the upload loader, job handlers) register


def test_no_new_import_cycles():
    assert {frozenset(c) for c in _cycles(_module_graph())} == KNOWN_CYCLES


def test_no_import_inside_a_function_dodges_a_layer_or_a_cycle():
    """An import of a project module inside a function is kept only for start-up time (the CLI) or inside one of
    the known cycles above; everything else is imported at module level, where the layer test sees it plainly."""
    cyclic = set().union(*KNOWN_CYCLES)
    offenders = []
    for p in CORE_FILES:
        me = module_name(p)
        if me == "core.__main__":  # each command imports only what it needs: `python -m core --help` starts fast
            continue
        for target, line, nested in project_imports(p):
            if nested and not (me in cyclic and any(target == m or target.startswith(m + ".") for m in cyclic)):
                offenders.append(f"{me} line {line}: {target}")
    assert offenders == []


def test_no_if_chain_over_task_names_outside_core_tasks():
    """Task-specific behaviour lives in core/tasks (one Task object per task); nothing else compares a task
    variable with a task's name."""
    names = ("classification", "detection", "segmentation", "restoration", "generation")
    either = "|".join(names)
    pattern = re.compile(rf"task\w*\s*(==|!=)\s*[\"']({either})[\"']|[\"']({either})[\"']\s*(==|!=)\s*\w*task")
    offenders = []
    for d in ("core", "ui", "pages", "db"):
        for p in (ROOT / d).rglob("*.py"):
            if p.relative_to(ROOT).parts[:2] == ("core", "tasks"):
                continue
            for i, line in enumerate(p.read_text().splitlines(), 1):
                if pattern.search(line):
                    offenders.append(f"{p.relative_to(ROOT)}:{i}: {line.strip()}")
    assert offenders == []
