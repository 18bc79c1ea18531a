"""The import rule for method files, stated once in CONTRIBUTING.md, ``culbench/api.py`` and the
``culbench new-method`` template, and enforced on every ``methods/*.py`` by reading its syntax."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from culbench.catalog import builtin_dir
from culbench.scaffold import scaffold

ROOT = Path(__file__).resolve().parents[1]
PUBLIC = ("culbench.api", "culbench.training", "culbench.closed_form")
RULE = ("A method file imports culbench.api, culbench.training (the public training helpers) and "
        "culbench.closed_form (the closed-form cross-attention edits), the standard library and "
        "third-party libraries (torch, diffusers, numpy), and nothing else from culbench; a method tied to "
        "one backend (it declares backends) may also import that backend's package, culbench.<backend> "
        "(retrain: culbench.toyworld).")


def _declared_backends(tree: ast.Module) -> set[str]:
    """The ``backends = (...)`` names declared by the classes of a method file."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "backends" for t in node.targets):
            found.update(ast.literal_eval(node.value))
    return found


def _culbench_imports(tree: ast.Module) -> list[str]:
    """Every culbench module a file imports (anywhere, also inside functions); relative imports
    are reported as ``"."``."""
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names if alias.name.split(".")[0] == "culbench"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                names.append("." * node.level + (node.module or ""))
            elif node.module == "culbench":
                names += [f"culbench.{alias.name}" for alias in node.names]
            elif node.module and node.module.split(".")[0] == "culbench":
                names.append(node.module)
    return names


def _breaches(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    backends = tuple(f"culbench.{b}" for b in _declared_backends(tree))
    return [name for name in _culbench_imports(tree)
            if name not in PUBLIC and not any(name == b or name.startswith(b + ".") for b in backends)]


@pytest.mark.parametrize("path", sorted(builtin_dir("methods").glob("*.py")), ids=lambda p: p.name)
def test_method_files_import_only_the_public_api(path: Path) -> None:
    breaches = _breaches(path)
    assert not breaches, f"{path.name} imports {breaches}: {RULE}"


def test_the_checker_catches_private_and_relative_imports(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import culbench.errors\nfrom culbench import training, runner\nfrom . import dfr\n"
                   "from culbench.toyworld import train\n"
                   "def f():\n    from culbench.evaluation.judge import Judge\n")
    assert _breaches(bad) == ["culbench.errors", "culbench.runner", ".", "culbench.toyworld",
                              "culbench.evaluation.judge"]
    bad.write_text("from culbench.toyworld import train\nclass M:\n    backends = ('toyworld',)\n")
    assert _breaches(bad) == []  # a ToyWorld-only method may use the ToyWorld package


def test_the_new_method_template_follows_the_rule_and_passes_the_contract(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A plugin written against the documented API alone (installed and run end to end in
    tests/test_submit.py), loaded here as a plugin entry point would load it."""
    from culbench.catalog import METHODS
    from culbench.contract import run_contract

    root = scaffold("import_rule_probe", tmp_path)
    assert _breaches(root / "culbench_import_rule_probe" / "method.py") == []
    monkeypatch.syspath_prepend(str(root))
    METHODS.register_lazy("import_rule_probe", "culbench_import_rule_probe.method:ImportRuleProbe",
                          source="plugin culbench-import-rule-probe==0.1.0")
    try:
        failed = [f"{c.name}: {c.detail}" for c in run_contract("import_rule_probe") if not c.ok]
    finally:
        METHODS.unregister("import_rule_probe")
    assert not failed, failed


@pytest.mark.parametrize("where", ["CONTRIBUTING.md", "culbench/api.py", "culbench/scaffold.py"])
def test_the_import_rule_is_stated_the_same_everywhere(where: str) -> None:
    def flat(text: str) -> str:  # markdown/rst backticks, comment marks and line breaks aside
        return re.sub(r"\s+", " ", re.sub(r"^\s*#", " ", text.replace("`", ""), flags=re.M))

    assert flat(RULE) in flat((ROOT / where).read_text(encoding="utf-8"))
