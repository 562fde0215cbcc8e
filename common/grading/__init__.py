"""The instructor's toolbox: grading, the student export and the chapter scaffold. Chapters never import it.

    python -m common.grading.grade        run the graded tests, sum their points, write a Gradescope results.json
    python -m common.grading.assign       the student version: solutions replaced by TODOs, hidden tests left out
    python -m common.grading.new_chapter  start a new task as a copy of a chapter, with its template tests

_pytest_points.py is the pytest plugin the grader loads into the child process that runs student code;
partial_credit.py is the `partial_credit` fixture graded tests may use (tests/conftest.py imports it).
"""
