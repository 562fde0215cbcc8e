"""The grader (common/grading/grade.py) on small fake submissions made here: plain Python, no Paddle, so each child is quick.

One fake course holds every misbehaviour at once (wrong shape, syntax error, import-time crash, infinite loops,
sys.exit, os._exit, a forged results.json and forged report lines) and is graded once; each test then checks
its chapter's score. The course tooling's tests are not part of a student's grade: GRADED = False.
"""
import json
import re
import textwrap
from pathlib import Path

import pytest

from common.grading import grade
from tests.background import Jobs
from tests.gradescope_schema import assert_valid

GRADED = False  # see common/grading/grade.py: modules that set this are left out of `python -m common.grading.grade`
pytestmark = pytest.mark.points(1)
TIMEOUT = 0.5  # seconds per test in the fake runs

CORRECT_CODE = {
    "ch01_good": """
        import random

        def double(xs):
            return [2 * x for x in xs]

        def draw():
            return random.random()
        """,
    "ch02_shape": """
        def output_shape(n):
            return (n, 1)  # the exercise asks for (n, 2)

        def width():
            return 2
        """,
    "ch03_syntax": """
        def f(:
            return 1
        """,
    "ch04_crash": """
        raise RuntimeError("boom at import time")
        """,
    "ch05_vanish": """
        import os
        os._exit(3)  # ends the test process while pytest imports the test module
        """,
    "ch06_loop": """
        def spin():
            while True:
                pass
        """,
    "ch07_stubborn": """
        import signal
        import time

        def spin():
            # Switches off the grader's timer and swallows everything: only the watchdog can stop this. It sleeps
            # rather than spins (ch06_loop spins): the same to the watchdog, without taking a core from the others.
            signal.setitimer(signal.ITIMER_REAL, 0)
            while True:
                try:
                    time.sleep(1)
                except BaseException:
                    pass
        """,
    "ch08_exit": """
        import os
        import sys

        def polite():
            sys.exit(0)

        def rude():
            os._exit(0)
        """,
    "ch10_partial": """
        def square(x):
            return x * x if x < 3 else 0  # right for 1 and 2 only

        def long_message():
            raise ValueError("word " * 300)
        """,
}

TESTS = {
    "ch01_good": """
        import random
        import pytest
        from chapters.ch01_good.model import double, draw

        @pytest.mark.points(2)
        def test_double():
            assert double([1, 2]) == [2, 4]

        @pytest.mark.points(1)
        @pytest.mark.visibility("hidden")
        @pytest.mark.parametrize("n", [1, 2, 3])
        def test_length(n):
            assert len(double([0] * n)) == n

        @pytest.mark.points(1)
        def test_seeded_before_each_test():
            assert draw() == random.Random(2024).random()

        def test_without_points_is_not_graded():
            assert False
        """,
    "ch02_shape": """
        import pytest
        from chapters.ch02_shape.model import output_shape, width

        @pytest.mark.points(2)
        def test_output_shape():
            assert output_shape(4) == (4, 2)

        @pytest.mark.points(1)
        def test_width():
            assert width() == 2
        """,
    "ch03_syntax": """
        import pytest
        from chapters.ch03_syntax.model import f

        @pytest.mark.points(1)
        def test_f():
            assert f() == 1

        @pytest.mark.points(2)
        @pytest.mark.parametrize("k", [1, 2])
        def test_f_again(k):
            assert f() == 1
        """,
    "ch04_crash": """
        import pytest
        from chapters.ch04_crash import model

        @pytest.mark.points(2)
        def test_anything():
            assert model
        """,
    "ch05_vanish": """
        import pytest
        from chapters.ch05_vanish import model

        @pytest.mark.points(2)
        def test_anything():
            assert model
        """,
    "ch06_loop": """
        import pytest
        from chapters.ch06_loop.model import spin

        @pytest.mark.points(1)
        def test_spin():
            spin()

        @pytest.mark.points(1)
        def test_after_the_loop():
            assert True
        """,
    "ch07_stubborn": """
        import pytest
        from chapters.ch07_stubborn.model import spin

        @pytest.mark.points(1)
        def test_spin():
            spin()

        @pytest.mark.points(1)
        def test_after_the_kill():
            assert True
        """,
    "ch08_exit": """
        import pytest
        from chapters.ch08_exit.model import polite, rude

        @pytest.mark.points(1)
        def test_sys_exit():
            polite()

        @pytest.mark.points(1)
        def test_os_exit():
            rude()

        @pytest.mark.points(2)
        def test_after_the_exits():
            assert True
        """,
    "ch10_partial": """
        import pytest
        from chapters.ch10_partial.model import square, long_message

        @pytest.mark.points(3, split=True)
        @pytest.mark.parametrize("x", [1, 2, 3])
        def test_square(x):
            assert square(x) == x * x

        @pytest.mark.points(4)
        def test_fraction(partial_credit):
            right = sum(square(x) == x * x for x in range(1, 5))
            partial_credit(right / 4)
            assert right == 4, f"{right} of 4 squares right"

        @pytest.mark.points(1)
        def test_a_fraction_without_the_fixture_is_ignored(request):
            request.node.user_properties.append(("partial_credit", 1.0))
            assert False

        @pytest.mark.points(1)
        @pytest.mark.visibility("after_published")
        def test_long_message():
            long_message()
        """,
    "tooling": """
        import pytest
        GRADED = False

        @pytest.mark.points(5)
        def test_tooling():
            assert True
        """,
}

FORGER = """
    import json
    import os
    import sys

    def attempt(attack):
        try:
            attack()
        except Exception:
            pass

    def answer():
        # Everything a student could try from inside the test process to claim points it did not earn.
        fake = {"score": 1000, "max_score": 1000, "tests": []}

        def write_results():
            for path in (RESULTS, "results.json"):
                with open(path, "w") as f:
                    json.dump(fake, f)

        def write_report_lines():
            for event in ("start", "end"):
                line = json.dumps({"n": "?", "ev": event, "id": "tests/test_ch09_forge.py::test_answer",
                                   "status": "passed"}) + "\\n"
                for fd in os.listdir("/proc/self/fd"):
                    try:
                        os.write(int(fd), line.encode())
                    except OSError:
                        pass

        def call_the_plugin():
            plugin = next(m for name, m in sys.modules.items() if name.startswith("_course_grade_plugin_"))
            plugin._emit("end", id="tests/test_ch09_forge.py::test_answer", status="passed", message="")

        for attack in (write_results, write_report_lines, call_the_plugin):
            attempt(attack)
        return 41
    """
FORGER_TEST = """
    import pytest
    from chapters.ch09_forge.model import answer

    @pytest.mark.points(3)
    def test_answer():
        assert answer() == 42
    """

# chapter -> (points earned, points possible)
EXPECTED = {
    "ch01_good": (6, 6), "ch02_shape": (1, 3), "ch03_syntax": (0, 5), "ch04_crash": (0, 2), "ch05_vanish": (0, 2),
    "ch06_loop": (1, 2), "ch07_stubborn": (1, 2), "ch08_exit": (2, 4), "ch09_forge": (0, 3), "ch10_partial": (4, 9),
}


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


def make_course(root: Path, code: dict, tests: dict) -> Path:
    """A fake repository: chapters/<name>/model.py and tests/test_<name>.py."""
    write(root / "chapters" / "__init__.py", "")
    for name, source in code.items():
        write(root / "chapters" / name / "__init__.py", "")
        write(root / "chapters" / name / "model.py", source)
    for name, source in tests.items():
        write(root / "tests" / f"test_{name}.py", source)
    return root


# Each grader run is a job: it runs in the background while the other tests do (tests/background.py).
jobs = Jobs(lane="grade")
@jobs.job("course_run")  # every test that uses the fixture below
def graded_course(folder: Path):
    root = folder / "course"
    results = folder / "course-results.json"
    code = dict(CORRECT_CODE, ch09_forge=FORGER.replace("RESULTS", repr(str(results))))
    make_course(root, code, dict(TESTS, ch09_forge=FORGER_TEST))
    result = grade.main(["--submission", str(root), "--json", str(results), "--timeout", str(TIMEOUT), "--quiet"])
    return root, results, result


@pytest.fixture
def course_run():
    return jobs.result(graded_course)


def chapter_score(result: dict, chapter: str) -> tuple[float, float]:
    rows = [t for t in result["tests"] if t["name"].startswith(f"tests/test_{chapter}.py::")]
    return sum(t["score"] for t in rows), sum(t["max_score"] for t in rows)


def test_json_on_disk_is_the_graders_and_follows_the_gradescope_schema(course_run):
    root, results, result = course_run
    on_disk = json.loads(results.read_text())
    assert on_disk == result  # not the forger's {"score": 1000}
    assert set(on_disk) >= {"score", "max_score", "execution_time", "tests"}
    assert_valid(on_disk)
    for t in on_disk["tests"]:
        assert t["status"] in ("passed", "failed") and 0 <= t["score"] <= t["max_score"]
        assert t["score"] in (0, t["max_score"]) or "ch10_partial" in t["name"]
    assert on_disk["score"] == sum(t["score"] for t in on_disk["tests"])
    assert (on_disk["score"], on_disk["max_score"]) == tuple(map(sum, zip(*EXPECTED.values())))


@pytest.mark.parametrize("chapter", sorted(EXPECTED))
def test_each_chapter_scores_what_its_code_deserves(course_run, chapter):
    assert chapter_score(course_run[2], chapter) == EXPECTED[chapter]


def test_tests_are_in_a_stable_order_with_gradescope_numbers(course_run):
    tests = course_run[2]["tests"]
    names = [t["name"] for t in tests]
    assert names == sorted(names, key=lambda n: n.split("::")[0]) and len(set(names)) == len(names)
    good = [t["name"].split("::")[1] for t in tests if "test_ch01_good.py" in t["name"]]
    assert good == ["test_double", "test_length[1]", "test_length[2]", "test_length[3]", "test_seeded_before_each_test"]
    first_file = [t["number"] for t in tests if t["name"].startswith(names[0].split("::")[0])]
    assert first_file == [f"1.{i}" for i in range(1, len(first_file) + 1)]


def test_tests_without_points_and_modules_with_graded_false_are_left_out(course_run):
    names = {t["name"] for t in course_run[2]["tests"]}
    assert not any("tooling" in n or "without_points" in n for n in names)


def test_hidden_visibility_reaches_the_json_and_stays_out_of_the_summary(course_run):
    result = course_run[2]
    vis = {t["name"].split("::")[1]: t["visibility"] for t in result["tests"] if "ch01_good" in t["name"]}
    assert vis["test_length[2]"] == "hidden" and vis["test_double"] == "visible"
    assert re.search(r"\nch01_good +3 / 3 ", result["output"]) and "test_length" not in result["output"]
    assert "(and 3 hidden test(s), not shown)" in result["output"]


def by_name(result: dict, chapter: str) -> dict:
    return {t["name"].split("::", 1)[1]: t for t in result["tests"] if f"test_{chapter}.py::" in t["name"]}


def test_failures_carry_their_reason(course_run):
    result = course_run[2]
    assert "assert (4, 1) == (4, 2)" in by_name(result, "ch02_shape")["test_output_shape"]["output"]
    syntax = by_name(result, "ch03_syntax")
    assert set(syntax) == {"test_f", "test_f_again[*]"}  # read from the source: the module cannot be imported
    assert all("SyntaxError" in t["output"] for t in syntax.values())
    assert all(t["output"].startswith("cannot import the test module: SyntaxError") for t in syntax.values())
    assert "boom at import time" in by_name(result, "ch04_crash")["test_anything"]["output"]
    assert "exit code 3" in by_name(result, "ch05_vanish")["test_anything"]["output"]
    assert f"timed out after {TIMEOUT:g} s" in by_name(result, "ch06_loop")["test_spin"]["output"]
    assert "watchdog" in by_name(result, "ch07_stubborn")["test_spin"]["output"]
    exits = by_name(result, "ch08_exit")
    assert "SystemExit: 0" in exits["test_sys_exit"]["output"]
    assert "process ended during this test" in exits["test_os_exit"]["output"]
    # Neither the results file nor the report channel can be reached: the real failure stands.
    assert "assert 41 == 42" in by_name(result, "ch09_forge")["test_answer"]["output"]


@jobs.job("test_a_test_that_the_submission_edits_gains_nothing_with_instructor_tests")
def graded_edited_test(tmp_path: Path):
    tests = {"ch01_good": TESTS["ch01_good"]}
    reference = make_course(tmp_path / "instructor", {"ch01_good": CORRECT_CODE["ch01_good"]}, tests)
    wrong = CORRECT_CODE["ch01_good"].replace("2 * x", "3 * x")
    cheat = """
        import pytest

        @pytest.mark.points(100)
        def test_double():
            assert True
        """
    submission = make_course(tmp_path / "student", {"ch01_good": wrong}, {"ch01_good": cheat})
    out = tmp_path / "results.json"
    return grade.main(["--submission", str(submission), "--tests", str(reference / "tests"), "--json", str(out),
                       "--quiet"]), out


def test_a_test_that_the_submission_edits_gains_nothing_with_instructor_tests():
    result, out = jobs.result(graded_edited_test)
    # The instructor's test_double (2 points) fails; the edited one worth 100 never runs; hidden tests do run.
    assert (result["score"], result["max_score"]) == (4, 6)
    assert by_name(result, "ch01_good")["test_double"]["status"] == "failed"
    assert {t["visibility"] for t in result["tests"]} == {"visible", "hidden"}
    assert json.loads(out.read_text()) == result
    assert_valid(result)


@jobs.job("test_with_a_starter_only_the_submissions_chapter_files_count")
def graded_over_a_starter(tmp_path: Path):
    todo = "def double(xs):\n    raise NotImplementedError\n\ndef draw():\n    raise NotImplementedError\n"
    starter = make_course(tmp_path / "starter", {"ch01_good": todo}, {"ch01_good": TESTS["ch01_good"]})
    submission = tmp_path / "upload" / "my-course"  # the student's file in a zip's top folder, plus an edited test
    write(submission / "chapters" / "ch01_good" / "model.py", CORRECT_CODE["ch01_good"])
    cheat = "import pytest\n\n@pytest.mark.points(100)\ndef test_double():\n    pass\n"
    write(submission / "tests" / "test_ch01_good.py", cheat)
    return grade.grade(submission.parent, starter=starter, timeout=TIMEOUT)


def test_with_a_starter_only_the_submissions_chapter_files_count():
    graded, notes = jobs.result(graded_over_a_starter)
    assert [(g.score, g.expected.points) for g in graded] == [(2, 2), (1, 1), (1, 1), (1, 1), (1, 1)]
    assert "with 1 file(s) from the submission's chapters/" in notes[0]


@jobs.job("test_a_chapter_missing_from_the_submission_is_not_taken_from_an_installed_copy")
def graded_without_chapter_1(tmp_path: Path):
    # This repository is installed editable, so without the grader's guard `import chapters.ch01_house_price`
    # would find the real chapter 1 even though the fake submission has no such folder.
    probe = """
        import pytest

        @pytest.mark.points(1)
        def test_chapter_1_is_there():
            import chapters.ch01_house_price
        """
    root = make_course(tmp_path, {"ch01_good": CORRECT_CODE["ch01_good"]}, {"ch01_good": probe})
    return grade.grade(root, timeout=TIMEOUT)


def test_a_chapter_missing_from_the_submission_is_not_taken_from_an_installed_copy():
    [graded], _ = jobs.result(graded_without_chapter_1)
    assert graded.score == 0
    assert "No module named 'chapters.ch01_house_price' in the submission" in graded.outcome.message


@jobs.job("test_results_json_is_written_when_pytest_cannot_start")
def graded_with_a_broken_conftest(tmp_path: Path):
    root = make_course(tmp_path / "sub", {"ch01_good": CORRECT_CODE["ch01_good"]}, {"ch01_good": TESTS["ch01_good"]})
    # (A top-level pytest.py would not do: the graded copy takes only the course's files, see assign.source_files.)
    write(root / "tests" / "conftest.py", 'raise ImportError("a conftest that stops pytest")')
    out = tmp_path / "results.json"
    grade.main(["--submission", str(root), "--json", str(out), "--quiet"])
    return json.loads(out.read_text())


def test_results_json_is_written_when_pytest_cannot_start():
    result = jobs.result(graded_with_a_broken_conftest)
    assert (result["score"], result["max_score"]) == (0, 6)
    assert all("pytest did not start" in t["output"] for t in result["tests"] if t["visibility"] != "hidden")
    assert_valid(result)


def test_source_reading_counts_literal_parametrize_cases(tmp_path):
    path = write(tmp_path / "tests" / "test_x.py", """
        import pytest
        pytestmark = pytest.mark.visibility("after_due_date")

        @pytest.mark.points(2)
        @pytest.mark.parametrize("a,b", [(1, 2), (3, 4), (5, 6)])
        def test_p(a, b):
            pass

        class TestGroup:
            @pytest.mark.points(1)
            def test_m(self):
                pass

        def test_unmarked():
            pass
        """)
    found = grade.expected_from_source(path, tmp_path)
    assert [(e.id, e.points, e.visibility) for e in found] == [
        ("tests/test_x.py::test_p[*]", 6, "after_due_date"),
        ("tests/test_x.py::TestGroup::test_m", 1, "after_due_date"),
    ]


def test_chapter_names_select_test_files_and_unknown_names_are_refused(tmp_path):
    tests = tmp_path / "tests"
    for name in ("ch01_house_price", "ch02_mnist", "common_cli"):
        write(tests / f"test_{name}.py", "")
    assert grade.resolve_selection(["ch01_house_price", "ch02", "chapters/ch02_mnist"], tests) == [
        (tests / "test_ch01_house_price.py").resolve(), (tests / "test_ch02_mnist.py").resolve()]
    with pytest.raises(ValueError, match="'common_cli' is not a chapter; choose from: ch01_house_price, ch02_mnist"):
        grade.resolve_selection(["common_cli"], tests)
    with pytest.raises(ValueError, match="'ch09' is not a chapter"):
        grade.resolve_selection(["ch09"], tests)
    with pytest.raises(SystemExit):
        grade.main(["--submission", str(tmp_path), "ch09", "--json", str(tmp_path / "r.json")])



def test_partial_credit_from_shared_cases_and_from_a_recorded_fraction(course_run):
    tests = by_name(course_run[2], "ch10_partial")
    assert [tests[f"test_square[{x}]"]["score"] for x in (1, 2, 3)] == [1, 1, 0]
    fraction = tests["test_fraction"]
    assert (fraction["score"], fraction["max_score"], fraction["status"]) == (2, 4, "failed")
    assert "2 of 4 squares right" in fraction["output"] and "partial credit: 2 of 4 points" in fraction["output"]
    assert tests["test_a_fraction_without_the_fixture_is_ignored"]["score"] == 0


def test_feedback_is_whole_capped_at_a_word_and_says_where(course_run):
    tests = by_name(course_run[2], "ch10_partial")
    long = tests["test_long_message"]
    assert long["visibility"] == "after_published"
    body, _, rest = long["output"].partition("\n... (")
    assert len(long["output"]) <= 700 and body.startswith("ValueError: word word") and body.endswith(" word")
    assert "(at chapters/ch10_partial/model.py:5 in long_message)" in long["output"]
    shape = by_name(course_run[2], "ch02_shape")["test_output_shape"]["output"]
    assert "assert (4, 1) == (4, 2)" in shape and "At index 1 diff: 1 != 2" in shape  # pytest's explanation


def test_capping_cuts_at_a_line_boundary_else_at_a_space():
    from common.grading import _pytest_points as plugin
    lines = "\n".join(f"line {i}: " + "x" * 50 for i in range(40))
    cut = plugin._cap(lines, 600)
    kept = cut.split("\n... (")[0]
    assert len(cut) <= 600 and lines.startswith(kept + "\n") and kept.endswith("x" * 50)
    words = "alpha " * 200
    kept = plugin._cap(words, 300).split("\n... (")[0]
    assert words.startswith(kept) and kept.endswith("alpha") and len(kept) < 300
