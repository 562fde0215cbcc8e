"""Every chapter keeps the five-step template (see ../shared/CONVENTIONS.md), so it cannot silently erode."""
import ast
import importlib
import sys
from pathlib import Path

import pytest

# The chapters package under test: the repository's, or a submission's when the grader runs these tests.
CHAPTERS_DIR = Path(importlib.import_module("chapters").__file__).parent
CHAPTERS = sorted(p.name for p in CHAPTERS_DIR.glob("ch[0-9]*") if p.is_dir())
STEPS = ("load_data", "build_model", "configure", "train", "save", "main")


def test_there_are_chapters():
    assert CHAPTERS, f"no chapters found in {CHAPTERS_DIR}"


@pytest.mark.points(1)
@pytest.mark.parametrize("chapter", CHAPTERS)
def test_chapter_exposes_the_five_steps(chapter):
    # `python -m chapters.<name>` runs __main__.py, which imports `main` from the chapter's main script.
    entry = importlib.import_module(f"chapters.{chapter}.__main__")
    script = sys.modules[entry.main.__module__]
    missing = [name for name in STEPS if not callable(getattr(script, name, None))]
    assert not missing, f"{script.__name__} lacks {missing}"


@pytest.mark.points(1)
@pytest.mark.parametrize("chapter", CHAPTERS)
def test_chapter_has_a_readme(chapter):
    readme = CHAPTERS_DIR / chapter / "README.md"
    assert readme.is_file() and readme.stat().st_size > 200, f"{readme} is missing or empty"


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_chapter_does_not_import_the_instructor_tools(chapter):
    # A lesson does not know it is graded: common/grading/ is the instructor's, and is not shipped with every copy.
    offenders = []
    for path in sorted((CHAPTERS_DIR / chapter).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            offenders += [f"{path.name}: {n}" for n in names if n == "common.grading" or n.startswith("common.grading.")]
    assert not offenders, f"chapter code imports the grading tools: {offenders}"
