"""Every test function asserts something: a test that cannot fail proves nothing.

The check reads the suite's source with ``ast``. A test asserts when its body (nested functions included)
has an ``assert``, a ``raise AssertionError``, a ``pytest.raises``/``pytest.warns``/``pytest.fail``, a
schemathesis ``case.call_and_validate()``, or calls a function of the suite that does, however deep
(``wait_until`` raises when its condition never holds, for instance). A method call counts only when no
function of the code under test has its name: ``manager.register(...)`` is the client's, not the interop
tests' asserting ``register``.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
PACKAGES = ("registry_server", "resilient_client", "registryctl")

# Calls that assert by themselves, from pytest and the libraries the tests drive.
ASSERTING_CALLS = frozenset({"raises", "warns", "fail", "call_and_validate"})


@dataclass(frozen=True)
class DefinedTest:
    path: str
    name: str
    node: ast.FunctionDef | ast.AsyncFunctionDef


def _modules(root: Path) -> Iterator[tuple[str, ast.Module]]:
    for path in sorted(root.rglob("*.py")):
        yield path.relative_to(REPO).as_posix(), ast.parse(path.read_text(), filename=str(path))


def _function_names(modules: list[tuple[str, ast.Module]]) -> set[str]:
    return {node.name for _path, module in modules for node in ast.walk(module)
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)}


PROJECT_FUNCTIONS = frozenset(_function_names([m for package in PACKAGES for m in _modules(REPO / package)]))


def _call_names(node: ast.AST) -> Iterator[tuple[str, bool]]:
    """The name of every call in ``node``, and whether it is a method's (``x.name(...)``)."""
    for call in ast.walk(node):
        if isinstance(call, ast.Call):
            if isinstance(call.func, ast.Name):
                yield call.func.id, False
            elif isinstance(call.func, ast.Attribute):
                yield call.func.attr, True


def _called_names(node: ast.AST) -> set[str]:
    """The functions ``node`` calls, and the methods it calls that the code under test has none of."""
    return {name for name, method in _call_names(node) if not (method and name in PROJECT_FUNCTIONS)}


def _asserts_directly(node: ast.AST) -> bool:
    for child in ast.walk(node):
        if isinstance(child, ast.Assert):
            return True
        if isinstance(child, ast.Raise) and child.exc is not None:
            raised = child.exc.func if isinstance(child.exc, ast.Call) else child.exc
            if isinstance(raised, ast.Name) and raised.id == "AssertionError":
                return True
    return any(name in ASSERTING_CALLS for name, _method in _call_names(node))


def asserting_functions(modules: list[tuple[str, ast.Module]]) -> set[str]:
    """Names of the suite's functions that assert, directly or through another function of the suite."""
    calls: dict[str, set[str]] = {}
    asserting: set[str] = set()
    for _path, module in modules:
        for node in ast.walk(module):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                calls.setdefault(node.name, set()).update(_called_names(node))
                if _asserts_directly(node):
                    asserting.add(node.name)
    grew = True
    while grew:
        found = {name for name, called in calls.items() if name not in asserting and called & asserting}
        asserting |= found
        grew = bool(found)
    return asserting


def defined_tests(modules: list[tuple[str, ast.Module]]) -> Iterator[DefinedTest]:
    for path, module in modules:
        if not Path(path).name.startswith("test_"):
            continue
        for node in module.body:
            in_class = isinstance(node, ast.ClassDef) and node.name.startswith("Test")
            for func in node.body if in_class else [node]:
                if isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef) and func.name.startswith("test"):
                    yield DefinedTest(path, func.name, func)


def silent_tests(modules: list[tuple[str, ast.Module]]) -> list[tuple[str, str]]:
    """The tests that assert nothing, as (path, name)."""
    asserting = asserting_functions(modules)
    return [(test.path, test.name) for test in defined_tests(modules)
            if not (_asserts_directly(test.node) or _called_names(test.node) & asserting)]


def test_every_test_function_asserts_something() -> None:
    silent = set(silent_tests(list(_modules(TESTS))))
    assert sorted(silent) == [], "these assert nothing: give each the assertion its name promises"


def test_the_check_tells_a_silent_test_from_an_asserting_one() -> None:
    module = ast.parse(
        "def check(x):\n    assert x\n"
        "def relay(x):\n    check(x)\n"
        "def test_silent():\n    print(1)\n"
        "def test_direct():\n    assert 1\n"
        "def test_through_helpers():\n    relay(1)\n"
        "def test_raises():\n    with pytest.raises(ValueError):\n        int('x')\n"
        "def test_raising_assertion_error():\n    raise AssertionError('never')\n"
        "def test_a_method_of_the_code_under_test_is_not_a_helper(manager):\n    manager.register()\n"
        "def register():\n    assert 1\n"
        "class TestGroup:\n    def test_method_silent(self):\n        pass\n")
    assert "register" in PROJECT_FUNCTIONS
    assert [name for _path, name in silent_tests([("tests/test_sample.py", module)])] == [
        "test_silent", "test_a_method_of_the_code_under_test_is_not_a_helper", "test_method_silent"]
