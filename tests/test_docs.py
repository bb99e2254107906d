"""The docs stay true to the code: the READMEs' Python runs as far as its imports and the commands
they name exist; the library's docstrings carry no dated measurements; every BENCHMARKS.md section
the code and docs cite by name exists.

Left out: running the READMEs' commands (they train, or need a bucket); their imports and module
names are what broke before (`from raysweep import results`).
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
READMES = ("README.md", "cluster/README.md")
FENCE = re.compile(r"```(\w*)\n(.*?)```", re.DOTALL)
PYTHON_C = re.compile(r"""python3? -c (["'])(.*?)\1""", re.DOTALL)
MODULE = re.compile(r"python3? -m (raysweep[\w.]*)")
DATE = re.compile(r"\b20\d\d-[01]\d-[0-3]\d\b")
CITED = re.compile(r'BENCHMARKS\.md,\s*"([^"]+)"')
CITING = ("raysweep/**/*.py", "docs/*.md", "sweeps/*.yaml", "README.md", "cluster/README.md")
HISTORY = "docs/benchmarks-history.md"   # cites the section names of its own day


def python_snippets(text: str) -> list[str]:
    """```python blocks, and the code of every `python -c "..."` in any block."""
    blocks = FENCE.findall(text)
    return ([code for lang, code in blocks if lang == "python"]
            + [m.group(2) for _, code in blocks for m in PYTHON_C.finditer(code)])


def run_imports(code: str) -> None:
    """Resolve the snippet's import statements as Python would: ImportError where one fails."""
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                importlib.import_module(alias.name)
        elif isinstance(node, ast.ImportFrom):
            module = importlib.import_module(node.module)
            for alias in node.names:
                if not hasattr(module, alias.name):   # a submodule not imported yet, or nothing
                    importlib.import_module(f"{node.module}.{alias.name}")


@pytest.mark.parametrize("readme", READMES)
def test_readme_python_imports_resolve(readme):
    snippets = python_snippets((ROOT / readme).read_text())
    assert snippets or readme == "README.md"   # cluster/README.md reads results in Python
    for code in snippets:
        run_imports(code)


def test_readme_check_catches_the_import_that_broke():
    with pytest.raises(ImportError):
        run_imports(python_snippets('```bash\npython -c "from raysweep import results"\n```')[0])


@pytest.mark.parametrize("readme", READMES)
def test_readme_commands_name_modules_that_exist(readme):
    for name in set(MODULE.findall((ROOT / readme).read_text())):
        assert importlib.util.find_spec(name) is not None, f"{readme}: python -m {name}"


def library_files() -> list[pathlib.Path]:
    return sorted((ROOT / "raysweep").rglob("*.py"))


@pytest.mark.parametrize("path", library_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_dated_figures_in_the_library(path):
    """A date in a docstring or comment marks a measurement of that day: it goes to
    BENCHMARKS.md, where it keeps its command and machine."""
    dated = [f"{i}: {line.strip()}" for i, line in enumerate(path.read_text().splitlines(), 1)
             if DATE.search(line)]
    assert not dated, f"{path.relative_to(ROOT)}: move to BENCHMARKS.md: {dated}"


def headings(markdown: str) -> list[str]:
    return [line.lstrip("#").strip() for line in markdown.splitlines() if line.startswith("#")]


def citations(text: str) -> list[str]:
    """Section names cited as BENCHMARKS.md, "NAME", read across line breaks and comment marks."""
    flat = re.sub(r"\s*\n\s*(#\s*)?", " ", text)
    return [" ".join(name.split()) for name in CITED.findall(flat)]


def cited_names() -> list[tuple[str, str]]:
    files = {p for pattern in CITING for p in ROOT.glob(pattern)} - {ROOT / HISTORY}
    return sorted((str(p.relative_to(ROOT)), name) for p in files
                  for name in citations(p.read_text()))


def test_cited_benchmark_sections_exist():
    names = headings((ROOT / "BENCHMARKS.md").read_text())
    cited = cited_names()
    assert len(cited) >= 10   # the library does cite it: a broken pattern would find none
    missing = [(path, name) for path, name in cited
               if not any(h.startswith(name) for h in names)]
    assert not missing, f"BENCHMARKS.md has no section starting with these names: {missing}"


def test_citation_reader_follows_line_breaks_and_comments():
    text = 'x (BENCHMARKS.md, "Worker\n    # imports") and BENCHMARKS.md, "Gone"'
    assert citations(text) == ["Worker imports", "Gone"]


def test_benchmarks_stays_short():
    assert len((ROOT / "BENCHMARKS.md").read_text().splitlines()) <= 250


def test_every_library_module_imports():
    """Docstring edits must not break a module (a stray quote ends a docstring early)."""
    for path in library_files():
        rel = path.relative_to(ROOT).with_suffix("")
        if rel.name == "__main__":
            continue
        importlib.import_module(".".join(rel.parts))


@pytest.mark.parametrize("bench", sorted((ROOT / "tests" / "benchmarks").glob("*.py")),
                         ids=lambda p: p.name)
def test_benchmarks_import_what_raysweep_has(bench):
    """A benchmark is run by hand, rarely: a refactor that moves a function must move its
    benchmarks' imports too (one imported two functions from a module they had left)."""
    tree = ast.parse(bench.read_text())
    run_imports("\n".join(ast.unparse(n) for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)
                          and (n.module or "").startswith("raysweep")))
