"""common.docs: README outputs are generated, and a block older than its code is noticed.

The first test is the guard itself: every generated block of this repository's READMEs matches today's code
(if it fails after a code change, run the command it names). The others run the tool on a scratch repository.
"""
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from common import docs

GRADED = False  # the course's tooling, not a student's work

REPO = Path(docs.__file__).resolve().parent.parent


def test_every_generated_block_of_the_repository_is_fresh():
    problems = [p for r in docs.readmes(REPO) for p in docs.check_readme(r, REPO)]
    assert not problems, "\n".join(problems)


def test_every_readme_with_run_output_uses_generated_blocks():
    # Hand-typed output used to follow a "$ python -m ..." line in a fence; generated blocks now hold all of it
    # (commands go in ```bash fences, outputs in generated ```text blocks).
    for readme in docs.readmes(REPO):
        text = readme.read_text(encoding="utf-8")
        inside = {i for b in docs.read_blocks(readme, text) for i in range(b.start, b.end)}
        typed = [text.count("\n", 0, m.start()) + 1 for m in re.finditer(r"^(\$ python|```text)", text, flags=re.M)
                 if m.start() not in inside]
        assert not typed, f"{readme}:{typed[0]}: run output (a '$ python' line or a text fence) outside a generated block"


def scratch_repo(tmp_path: Path) -> Path:
    """A tiny repository: a chapter that prints its default, a common module it imports, a README block."""
    root = tmp_path / "repo"
    (root / "common").mkdir(parents=True)
    (root / "chapters" / "chx").mkdir(parents=True)
    (root / "common" / "__init__.py").write_text("")
    (root / "common" / "unrelated.py").write_text("X = 1\n")
    (root / "common" / "settings.py").write_text("DEFAULT = 3\n")
    (root / "chapters" / "__init__.py").write_text("")
    (root / "chapters" / "chx" / "__init__.py").write_text("")
    (root / "chapters" / "chx" / "__main__.py").write_text(textwrap.dedent("""\
        import sys
        from pathlib import Path

        def main():
            from common.settings import DEFAULT  # an import inside a function counts too
            out = Path(sys.argv[sys.argv.index("--out") + 1])
            out.mkdir(parents=True)
            (out / "result.txt").write_text(str(DEFAULT))
            for i in range(DEFAULT * 4):
                print(f"line {i}")
            print(f"wrote {out / 'result.txt'}")
            print("a warning", file=sys.stderr)

        main()
        """))
    (root / "chapters" / "chx" / "script.py").write_text(  # run as a script: imports this repository's common/
        "import common.settings\nprint('imported', common.settings.__file__)\n")
    (root / "chapters" / "chx" / "README.md").write_text(textwrap.dedent("""\
        # Chapter x

        What it prints:

        <!-- docs:run head=2 tail=2 -- python -m chapters.chx --out runs/chx -->
        typed by hand
        <!-- docs:end -->

        It prints "line 0" first. <!-- docs:quote "line 0" -->

        <!-- docs:run status=2 -- python -c "import sys; print('bad input'); sys.exit(2)" -->
        <!-- docs:end -->

        <!-- docs:run python chapters/chx/script.py -->
        <!-- docs:end -->
        """))
    return root


def run_docs(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "common.docs", "--root", str(root), *args], cwd=REPO,
                          capture_output=True, text=True, timeout=60)


def test_update_writes_real_output_and_check_catches_a_changed_default(tmp_path):
    root = scratch_repo(tmp_path)
    readme = root / "chapters" / "chx" / "README.md"
    before = run_docs(root, "check")
    assert before.returncode == 1 and "never generated" in before.stdout
    assert "python -m common.docs update chx" in before.stdout  # names the command that refreshes it

    done = run_docs(root, "update", "chx")
    assert done.returncode == 0, done.stdout + done.stderr
    text = readme.read_text()
    assert "typed by hand" not in text
    block = docs.read_blocks(readme)[0].output_text().splitlines()
    # The command as documented, the first and last lines, a marker for the trimmed ones, the wall clock;
    # the temporary folder is shown as the documented runs/ path; stderr is interleaved.
    assert block[:3] == ["$ python -m chapters.chx --out runs/chx", "line 0", "line 1"]
    assert block[3] == docs.TRIM_LINE.format(14 - 2 - 2)  # 12 "line" lines, "wrote", "a warning"
    assert block[-3:-1] == ["wrote runs/chx/result.txt", "a warning"]
    assert block[-1].endswith(" s wall clock]")
    assert not (root / "runs").exists()  # the run wrote into a temporary folder, not the repository
    assert "bad input" in docs.read_blocks(readme)[1].output_text()  # the documented error case, status 2
    assert "imported common/settings.py" in docs.read_blocks(readme)[2].output_text()  # the scratch repo's module
    assert run_docs(root, "check").returncode == 0

    # A changed default in a common module the chapter imports: stale, and the refresh command is named.
    settings = root / "common" / "settings.py"
    settings.write_text("DEFAULT = 4\n")
    stale = run_docs(root, "check")
    assert stale.returncode == 1
    assert "stale" in stale.stdout and "python -m common.docs update chx" in stale.stdout
    assert stale.stdout.count("is stale") == 2  # the chapter's block and the script's, not the python -c one
    settings.write_text("DEFAULT = 3\n")  # reverted: fresh again
    assert run_docs(root, "check").returncode == 0
    # A module the chapter does not import does not make it stale.
    (root / "common" / "unrelated.py").write_text("X = 2\n")
    assert run_docs(root, "check").returncode == 0

    # A hand edit inside the generated text is noticed.
    readme.write_text(readme.read_text().replace("line 1", "line one"))
    edited = run_docs(root, "check")
    assert edited.returncode == 1 and "edited by hand" in edited.stdout


def test_a_quote_that_no_block_shows_fails_the_check(tmp_path):
    root = scratch_repo(tmp_path)
    assert run_docs(root, "update").returncode == 0
    readme = root / "chapters" / "chx" / "README.md"
    readme.write_text(readme.read_text().replace('"line 0" first. <!-- docs:quote "line 0"',
                                                 '"line 99" first. <!-- docs:quote "line 99"'))
    result = run_docs(root, "check")
    assert result.returncode == 1 and "'line 99', which no generated block" in result.stdout


def test_a_command_that_fails_keeps_the_old_text_and_fails_the_update(tmp_path):
    root = scratch_repo(tmp_path)
    readme = root / "chapters" / "chx" / "README.md"
    readme.write_text(readme.read_text().replace("status=2 -- ", ""))  # now exit status 2 is a failure
    result = run_docs(root, "update")
    assert result.returncode == 1 and "exited with status 2, not 0" in result.stdout
    assert "bad input" not in docs.read_blocks(readme)[1].body


def test_dependencies_follow_imports_and_files_named_on_the_command_line():
    deps = {p.relative_to(REPO).as_posix() for p in docs.dependencies(
        "python -m chapters.ch05_cnn_shapes_flops --model common/models.py:LeNet", REPO)}
    assert {"chapters/ch05_cnn_shapes_flops/__main__.py", "chapters/ch05_cnn_shapes_flops/shapes_flops.py",
            "common/inspector.py", "common/models.py", "common/__init__.py"} <= deps
    assert "common/grading/grade.py" not in deps and "chapters/ch02_mnist/train.py" not in deps


@pytest.mark.parametrize("spec, message", [
    ("lines=3 -- python -V", "unknown option"),
    ("head=x -- python -V", "whole number"),
])
def test_malformed_options_are_named(spec, message, tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"<!-- docs:run {spec} -->\n<!-- docs:end -->\n")
    with pytest.raises(docs.DocsError, match=message):
        docs.read_blocks(readme)


def test_help_describes_the_tool():
    result = subprocess.run([sys.executable, "-m", "common.docs", "--help"], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0 and "update" in result.stdout and "check" in result.stdout
