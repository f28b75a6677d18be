"""The layer contracts (pyproject.toml [tool.importlinter]) hold, and catch a breach.

`make check` runs `lint-imports` on the tree; these tests also show that the contracts are
not vacuous: an upward import or a cycle added to a copy of the package makes them fail.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT = Path(sys.executable).with_name("lint-imports")


def _lint(root: Path) -> subprocess.CompletedProcess[str]:
    """lint-imports with the project's contracts over the package found in `root`."""
    return subprocess.run(
        [str(LINT), "--no-cache", str(ROOT / "pyproject.toml")],
        cwd=root,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _copy(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "pixelforge", tmp_path / "pixelforge")
    return tmp_path


def test_the_tree_keeps_its_contracts() -> None:
    result = _lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "BROKEN" not in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "expect"),
    [
        # The store layer reaching up into the jobs layer.
        (
            "store/db.py",
            "from pixelforge.jobs import status as _up",
            "pixelforge.store is not allowed to import pixelforge.jobs",
        ),
        # A dialect importing a native API route module (siblings are independent).
        (
            "dialects/common.py",
            "from pixelforge.api.routes import jobs as _r",
            "pixelforge.dialects.common -> pixelforge.api",
        ),
        # A cycle inside a package: the lifecycle importing the runner that imports it.
        (
            "jobs/lifecycle.py",
            "from pixelforge.jobs import runner as _c",
            "no cycles are allowed in pixelforge.jobs",
        ),
    ],
)
def test_a_breach_fails_the_check(tmp_path: Path, module: str, line: str, expect: str) -> None:
    root = _copy(tmp_path)
    path = root / "pixelforge" / module
    text = path.read_text()
    # After the module docstring and `from __future__`, where an import may stand.
    marker = "from __future__ import annotations\n"
    assert marker in text
    path.write_text(text.replace(marker, marker + line + "  # noqa\n", 1))
    result = _lint(root)
    assert result.returncode != 0
    assert expect in result.stdout.lower()


STATUS_WORDS = {"queued", "running", "succeeded", "failed", "canceled", "started", "progress"}


def _bare_words(node: ast.AST) -> list[str]:
    """Status words written as string literals in `node` (a literal or a literal tuple)."""
    items = node.elts if isinstance(node, ast.Tuple | ast.List | ast.Set) else [node]
    return [i.value for i in items if isinstance(i, ast.Constant) and i.value in STATUS_WORDS]


def test_statuses_are_compared_as_enums_not_bare_strings() -> None:
    """`job.status == "succeeded"` drifts; `JobStatus.SUCCEEDED` is checked by mypy."""
    found = []
    for path in sorted((ROOT / "pixelforge").rglob("*.py")):
        if path.name == "status.py" and path.parent.name == "jobs":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Compare):
                sides = [node.left, *node.comparators]
                if any(
                    isinstance(s, ast.Attribute) and s.attr in ("status", "type") for s in sides
                ):
                    words = [w for s in sides for w in _bare_words(s)]
                    if words:
                        found.append(f"{path.relative_to(ROOT)}:{node.lineno} {words}")
            elif isinstance(node, ast.Dict):  # status -> word tables keyed by bare strings
                words = [w for k in node.keys if k is not None for w in _bare_words(k)]
                if len(words) >= 3:
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno} {words}")
    assert found == []
