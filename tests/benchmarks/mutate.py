"""Mutation testing of the code that guards data and identity (issue 17): each mutant changes one
operator, constant, condition, return or call in one function, and a fast test subset must fail.

    PYTHONPATH=. .venv/bin/python tests/benchmarks/mutate.py [--list] [--only FILE] [--budget S]

Targets: raysweep/store/results.py and storage.py (the functions that read, write, list and
de-duplicate; not the mount-table parsing of node_local_reason), plan.trial_id and the
executor's skip (to_run). Operators: comparisons (== !=, < <=, > >=, in / not in, is / is not),
arithmetic (+ -, * /), and / or, dropping `not` and unary minus, integers +1, True / False,
`if c` -> `if not c`, `return x` -> `return None`, a call statement -> `pass`. String constants
are not mutated: they are messages and paths, and a changed path is caught by the same tests as a
changed operator. A mutant is killed when one of its test subsets (tried in turn, the fastest
first) exits non-zero or runs past 120 s.

mutmut was not used: it rewrites the package into mutants/ with trampolines and runs the whole
suite once first (15 minutes here), and the S3 tests need the moto server of tests/s3_server.py;
a file at a time with the source restored afterwards, whatever happens, is enough here.
"""

from __future__ import annotations

import argparse
import ast
import copy
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RESULTS_TESTS = ["tests/test_results.py"]
TARGETS = [  # file, functions mutated, test subsets run in turn until one fails
    ("raysweep/store/results.py", {"record", "write", "read", "dedupe", "preference",
                                   "finished_ids"}, [RESULTS_TESTS]),
    ("raysweep/store/storage.py", {"scheme", "is_remote", "_checked_scheme", "absolute",
                                   "resolve", "_path", "write_bytes", "_write_local_atomic",
                                   "check_writable", "read_bytes", "exists", "list_files",
                                   "delete"}, [["tests/test_storage.py"], RESULTS_TESTS]),
    ("raysweep/sweep/plan.py", {"trial_id"}, [[*RESULTS_TESTS, "-k", "trial_id or trial_ids"]]),
    ("raysweep/run/executor.py", {"to_run"}, [[*RESULTS_TESTS, "-k", "never_run_again"]]),
]
SWAP = {ast.Eq: ast.NotEq, ast.NotEq: ast.Eq, ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE,
        ast.GtE: ast.Gt, ast.In: ast.NotIn, ast.NotIn: ast.In, ast.Is: ast.IsNot,
        ast.IsNot: ast.Is, ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div,
        ast.Div: ast.Mult, ast.And: ast.Or, ast.Or: ast.And}


def sites(fn: ast.FunctionDef):
    """(node path, description, mutate(node) -> replacement) for every mutation in FN's body."""
    for node in ast.walk(fn):
        line = getattr(node, "lineno", fn.lineno)
        if isinstance(node, ast.Compare):
            for i, op in enumerate(node.ops):
                if type(op) in SWAP:
                    yield node, f"{line}: {type(op).__name__} -> {SWAP[type(op)].__name__}", \
                        lambda n, i=i: _set_op(n, i)
        elif isinstance(node, (ast.BinOp, ast.BoolOp)) and type(node.op) in SWAP:
            yield node, f"{line}: {type(node.op).__name__} -> {SWAP[type(node.op)].__name__}", \
                lambda n: _replace(n, op=SWAP[type(n.op)]())
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.Not, ast.USub)):
            yield node, f"{line}: drop {type(node.op).__name__}", lambda n: n.operand
        elif isinstance(node, ast.Constant) and type(node.value) is bool:
            yield node, f"{line}: {node.value} -> {not node.value}", \
                lambda n: ast.Constant(not n.value)
        elif isinstance(node, ast.Constant) and type(node.value) is int:
            yield node, f"{line}: {node.value} -> {node.value + 1}", \
                lambda n: ast.Constant(n.value + 1)
        elif isinstance(node, (ast.If, ast.While)):
            yield node, f"{line}: negate condition", \
                lambda n: _replace(n, test=ast.UnaryOp(ast.Not(), n.test))
        elif isinstance(node, ast.Return) and node.value is not None:
            yield node, f"{line}: return None", lambda n: ast.Return(ast.Constant(None))
        elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Call) and node is not \
                fn.body[0]:
            yield node, f"{line}: call -> pass", lambda n: ast.Pass()


def _set_op(node, i):
    new = copy.copy(node)
    new.ops = [*node.ops[:i], SWAP[type(node.ops[i])](), *node.ops[i + 1:]]
    return new


def _replace(node, **fields):
    new = copy.copy(node)
    for k, v in fields.items():
        setattr(new, k, v)
    return new


def mutants(source: str, functions: set[str]):
    """(description, mutated source) for every site of FUNCTIONS in SOURCE."""
    tree = ast.parse(source)
    count = sum(1 for fn in ast.walk(tree) if isinstance(fn, ast.FunctionDef)
                and fn.name in functions for _ in sites(fn))
    for k in range(count):
        tree = ast.parse(source)
        found = [(fn.name, *s) for fn in ast.walk(tree) if isinstance(fn, ast.FunctionDef)
                 and fn.name in functions for s in sites(fn)]
        name, target, what, mutate = found[k]
        Swapper(target, mutate(target)).visit(tree)
        yield f"{name}:{what}", ast.unparse(ast.fix_missing_locations(tree))


class Swapper(ast.NodeTransformer):
    def __init__(self, old, new):
        self.old, self.new = old, new

    def generic_visit(self, node):
        if node is self.old:
            return self.new
        return super().generic_visit(node)

    def visit(self, node):
        return self.new if node is self.old else super().visit(node)


def killed(tests: list[str]) -> bool:
    """Run one subset from a scratch directory: a mutant that turns s3://... into a relative
    local path writes there, not into the checkout."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1"}
    args = [str(ROOT / t) if t.startswith("tests/") else t for t in tests]
    try:
        with tempfile.TemporaryDirectory() as scratch:
            run = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p",
                                  "no:cacheprovider", "--rootdir", str(ROOT), *args],
                                 cwd=scratch, env=env, capture_output=True, timeout=120,
                                 check=False)
    except subprocess.TimeoutExpired:
        return True
    return run.returncode != 0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--list", action="store_true", help="print the mutants; run nothing")
    p.add_argument("--only", help="mutate this file only")
    p.add_argument("--budget", type=float, default=1200, help="stop after this many seconds")
    p.add_argument("--match", nargs="*", help="run only mutants whose 'function:line: what' "
                                              "is one of these (e.g. the last run's survivors)")
    args = p.parse_args()
    start, tally, survivors = time.monotonic(), {"killed": 0, "survived": 0}, []
    for rel, functions, tests in TARGETS:
        if args.only and rel != args.only:
            continue
        path = ROOT / rel
        original = path.read_text()
        try:
            for what, source in mutants(original, functions):
                if args.match is not None and what not in args.match:
                    continue
                if args.list:
                    print(f"{rel} {what}")
                    continue
                if time.monotonic() - start > args.budget:
                    print(f"budget of {args.budget:g} s spent; stopping", flush=True)
                    break
                path.write_text(source)
                verdict = "killed" if any(killed(t) for t in tests) else "survived"
                tally[verdict] += 1
                if verdict == "survived":
                    survivors.append(f"{rel} {what}")
                print(f"{verdict:8s} {rel} {what}", flush=True)
        finally:
            path.write_text(original)
    total = tally["killed"] + tally["survived"]
    print(f"\n{total} mutants, {tally['killed']} killed, {tally['survived']} survived "
          f"({time.monotonic() - start:.0f} s)")
    for s in survivors:
        print(f"  survived: {s}")


if __name__ == "__main__":
    main()
