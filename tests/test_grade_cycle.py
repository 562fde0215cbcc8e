"""The whole assignment cycle on the real chapter 1, as an instructor and a student walk it.

Export the chapter (`python -m common.grading.assign export --chapters ch01_house_price`, its main() in-process),
run the student copy's own pytest with this checkout's reference solution importable (the TODO tests must fail
there), fill the TODOs from the reference and grade (full marks), submit something that is not a submission
(refused, with a results.json that says why), and check every results.json against Gradescope's schema. Slow by
nature (each pytest imports Paddle), so it is done once, in a background job that runs while the other tests do.
"""
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from common.grading import assign, grade
from common.grading.assign import find_regions
from tests.background import Jobs
from tests.gradescope_schema import assert_valid

GRADED = False  # the course tooling's own tests are not part of a student's grade
pytestmark = pytest.mark.points(1)
REPO = Path(__file__).resolve().parents[1]
CHAPTER = "ch01_house_price"
if not any(find_regions(p.read_text(encoding="utf-8"), p.name) for p in (REPO / "chapters" / CHAPTER).glob("*.py")):
    pytest.skip("a student copy: chapter 1 has no solution to export or to fill the TODOs from", allow_module_level=True)


def run(*args: str, cwd: Path, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


jobs = Jobs(lane="paddle")  # its processes import Paddle; it runs while the other tests do (tests/background.py)


@jobs.job("test_the_student_copys_own_pytest_fails_on_the_todos_even_with_the_reference_importable",
          "test_filling_the_todos_from_the_reference_gives_full_marks",
          "test_what_is_not_a_submission_is_refused_with_a_results_json_that_says_why")
def graded_cycle(base: Path) -> dict:
    student = base / "student"
    assign.export(REPO, student, chapters=[CHAPTER])  # its command line prints; a job prints nothing
    # The student copy's own pytest, where an installed/importable reference could shadow the student's code.
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    env.pop("COURSE_DATA_DIR", None)  # a test's, if one runs meanwhile; the copy's conftest sets its own
    own = subprocess.Popen([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--maxfail=2",
                            f"tests/test_{CHAPTER}.py"], cwd=student, env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)  # runs while the grader does (two cores)
    # The student fills in every TODO (here: from the reference) and uploads the repository, zipped in a folder.
    upload = base / "upload" / "my-work"
    shutil.copytree(student, upload)
    for source in (REPO / "chapters" / CHAPTER).glob("*.py"):
        shutil.copyfile(source, upload / "chapters" / CHAPTER / source.name)
    out = base / "results" / "full.json"
    full = grade.main(["--submission", str(upload.parent), "--starter", str(student), "--tests", str(REPO / "tests"),
                       "--chapters", CHAPTER, "--json", str(out), "--quiet"])
    own_output, _ = own.communicate(timeout=300)
    return {"base": base, "student": student, "own": (own.returncode, own_output), "full": full, "full_path": out}


@pytest.fixture
def cycle():
    return jobs.result(graded_cycle)


def test_the_student_copys_own_pytest_fails_on_the_todos_even_with_the_reference_importable(cycle):
    returncode, output = cycle["own"]
    assert returncode == 1, output[-2000:]
    assert "NotImplementedError: TODO" in output
    failed = int(re.search(r"(\d+) failed", output).group(1))
    assert failed == 2  # stopped after two (--maxfail=2): the student's TODOs, not the reference, were imported


def test_filling_the_todos_from_the_reference_gives_full_marks(cycle):
    full = cycle["full"]
    assert full["score"] == full["max_score"] > 0, full["output"]
    assert {t["name"].split("::")[0] for t in full["tests"]} == {f"tests/test_{CHAPTER}.py"}  # only the chapter
    assert json.loads(cycle["full_path"].read_text()) == full
    assert_valid(full)


@pytest.mark.parametrize("layout, expected", [
    ({"README.md": "my answers"}, "no chapters/ folder at the top of the submission or one folder down; expected "
                                  f"chapters/{CHAPTER}/*.py (or .ipynb); found: no Python files at all"),
    ({f"a/b/chapters/{CHAPTER}/train.py": ""}, "found a/b/chapters/: one folder too deep"),
    ({f"chapters/extra/{CHAPTER}/train.py": ""}, f"found chapters/extra/{CHAPTER}/: one folder too deep"),
    ({f"{CHAPTER}/train.py": ""}, f"found {CHAPTER}/ without a chapters/ folder around it"),
    ({"chapters/ch02_mnist/train.py": ""}, "no file of the assignment's chapters in chapters/"),
])
def test_what_is_not_a_submission_is_refused_with_a_results_json_that_says_why(cycle, tmp_path, layout, expected):
    for rel, text in layout.items():
        (tmp_path / "sub" / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "sub" / rel).write_text(text)
    out = tmp_path / "results.json"
    argv = ["--submission", str(tmp_path / "sub"), "--starter", str(cycle["student"]), "--tests", str(REPO / "tests"),
            "--chapters", CHAPTER, "--json", str(out)]
    if layout.get("README.md"):  # once through the command line, for its exit status
        done = run("-m", "common.grading.grade", *argv, cwd=REPO)
        assert done.returncode == 1 and expected in done.stderr
        result = json.loads(out.read_text())
    else:
        result = grade.main(argv)
    assert result["score"] == 0 and result["tests"] == [] and result["extra_data"]["refused"]
    assert expected in result["output"], result["output"]
    assert_valid(result)
