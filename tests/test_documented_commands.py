"""Every command the documentation shows works as written.

The fenced shell blocks (```bash, ```sh, ```console) of README.md and docs/*.md are read
command by command (a ``&&`` chain, a pipe or ``;`` is several commands; comments, redirections,
trailing ``&`` and leading ``NAME=value`` assignments are dropped; in ```console blocks only the lines
after a ``$`` prompt count):

- a ``gluon-bn ...`` command (also as ``.venv/bin/gluon-bn``) must parse with the current
  command line, ``gluon_bn.cli.build_parser()``: an unknown subcommand, flag or choice fails
  the test, and so do two bench modes in one ``gluon-bn bench`` (refused before any work);
- ``python -m gluon_bn.X ...`` must name a module that exists; ``python -m gluon_bn.results``
  must name a folder of the checkout;
- ``scripts/...`` must exist, and ``scripts/reproduce_<recipe>.py ARGS`` must parse as
  ``gluon-bn reproduce <recipe> ARGS``, which is what the script runs;
- the commands .ci/run runs besides the README's two appear in the documentation as written.

Nothing is run: parsing imports no MXNet.
"""

import contextlib
import importlib.util
import io
import re
import shlex
import subprocess
from pathlib import Path
from typing import Iterator, List, Tuple

import pytest

from gluon_bn.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md"] + sorted((ROOT / "docs").glob("*.md"))
CI = ROOT / ".ci" / "run"
OPERATORS = {"&&", "||", ";", "|", "&", "(", ")", ";;"}
REDIRECTIONS = {">", ">>", "<", ">&", "&>", "<&", ">|"}
PYTHONS = re.compile(r"python(3(\.\d+)?)?")
ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=.*")


def shell_blocks(text: str) -> Iterator[Tuple[int, str, List[str]]]:
    """Yield (line number of the fence, language, body lines) of each fenced shell block."""
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        opening = re.fullmatch(r"\s*```(bash|sh|console)\s*", lines[i])
        if not opening:
            i += 1
            continue
        start, body = i + 1, []
        i += 1
        while i < len(lines) and not re.fullmatch(r"\s*```\s*", lines[i]):
            body.append(lines[i])
            i += 1
        yield start, opening.group(1), body
        i += 1


def command_lines(language: str, body: List[str]) -> Iterator[str]:
    """The shell lines of a block: continuations joined; in console blocks, prompted lines."""
    joined, pending = [], ""
    for line in body:
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        joined.append(pending + line)
        pending = ""
    if pending:
        joined.append(pending)
    for line in joined:
        stripped = line.strip()
        if language == "console":
            if not stripped.startswith("$ "):
                continue  # the command's output
            stripped = stripped[2:]
        if stripped and not stripped.startswith("#"):
            yield stripped


def without_comment(line: str) -> str:
    """`line` without a trailing ``# comment``."""
    return re.sub(r"\s+#.*$", "", line).strip()


def simple_commands(line: str) -> List[List[str]]:
    """Split a shell line into its simple commands' words (comments and operators dropped)."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    lexer.commenters = "#"
    commands, words, target = [], [], False
    for token in lexer:
        if target:  # the file (or descriptor) of a redirection
            target = False
        elif token in OPERATORS:
            commands.append(words)
            words = []
        elif token in REDIRECTIONS:
            if words and words[-1].isdigit():
                words.pop()  # the descriptor of `2>`
            target = True
        else:
            words.append(token)
    commands.append(words)
    result = []
    for words in commands:
        while words and ASSIGNMENT.fullmatch(words[0]):
            words = words[1:]  # NAME=value before the program
        if words:
            result.append(words)
    return result


def _parse(argv: List[str]) -> str:
    """'' if `gluon-bn ARGV` parses (and names at most one bench mode), else why not."""
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            args = build_parser().parse_args(argv)
    except SystemExit as stop:
        if stop.code == 0:
            return ""  # --help, --version
        message = stderr.getvalue().strip().splitlines()
        return message[-1] if message else f"exit {stop.code}"
    if args.command == "bench":
        from gluon_bn.bench.bench_command import bench_mode

        try:
            bench_mode(args)
        except ValueError as refused:
            return str(refused)
    return ""


def check_command(words: List[str]) -> str:
    """'' if one simple command names only what exists and parses, else the problem."""
    program = words[0]
    if Path(program).name == "gluon-bn":
        return _parse(words[1:])
    if PYTHONS.fullmatch(Path(program).name) and len(words) > 1:
        if words[1] == "-m" and len(words) > 2 and words[2].split(".")[0] == "gluon_bn":
            module = words[2]
            if importlib.util.find_spec(module) is None:
                return f"no module {module}"
            if module == "gluon_bn.results":
                folders = [w for w in words[3:] if not w.startswith("-")]
                options = [w for w in words[3:] if w.startswith("-") and w not in ("-h", "--help")]
                if options:
                    return f"python -m gluon_bn.results takes a folder only, not {options}"
                missing = [f for f in folders if not (ROOT / f).is_dir()]
                if missing:
                    return f"python -m gluon_bn.results: no folder {missing[0]} in the checkout"
            return ""
        script = words[1]
        if script.startswith("scripts/"):
            if not (ROOT / script).is_file():
                return f"no script {script}"
            recipe = re.fullmatch(r"scripts/reproduce_(\w+)\.py", script)
            if recipe and recipe.group(1) != "all":
                name = {
                    "d2l_en": "d2l-en",
                    "d2l_zh": "d2l-zh",
                    "d2l_0_17": "d2l-0.17",
                    "d2l_1_0": "d2l-1.0",
                    "straight_dope": "straight-dope",
                }[recipe.group(1)]
                problem = _parse(["reproduce", name, *words[2:]])
                return (
                    f"{script} passes its arguments to gluon-bn reproduce: {problem}"
                    if problem
                    else ""
                )
        return ""
    scripts = [w for w in words if w.startswith("scripts/")]
    missing = [s for s in scripts if not (ROOT / s).exists()]
    return f"no file {missing[0]}" if missing else ""


def problems(text: str, name: str = "text") -> List[str]:
    """Every documented command in `text` that does not work as written, with where it is."""
    found = []
    for start, language, body in shell_blocks(text):
        for line in command_lines(language, body):
            for words in simple_commands(line):
                problem = check_command(words)
                if problem:
                    found.append(f"{name}, block at line {start}: `{line}`: {problem}")
    return found


def documented_commands() -> List[Tuple[str, str]]:
    """(file name, line) of every shell line in the documentation's fenced blocks."""
    return [
        (doc.name, line)
        for doc in DOCS
        for _, language, body in shell_blocks(doc.read_text())
        for line in command_lines(language, body)
    ]


@pytest.mark.parametrize("doc", DOCS, ids=[d.name for d in DOCS])
def test_every_documented_command_works_as_written(doc):
    assert problems(doc.read_text(), doc.name) == []


def test_the_documentation_shows_gluon_bn_commands():
    """The reader finds the command line in the documents this test reads (not a vacuous pass)."""
    gluon_bn_lines = [
        line
        for _, line in documented_commands()
        if any(Path(w[0]).name == "gluon-bn" for w in simple_commands(line))
    ]
    assert len(gluon_bn_lines) >= 10
    subcommands = {
        words[1]
        for _, line in documented_commands()
        for words in simple_commands(line)
        if Path(words[0]).name == "gluon-bn" and len(words) > 1
    }
    assert {"reproduce", "doctor", "bench", "study", "list"} <= subcommands


WRONG = [
    ("made-up flag", "gluon-bn reproduce d2l-en --made-up-flag", "--made-up-flag"),
    (
        "made-up flag after &&",
        "cd x && .venv/bin/gluon-bn bench --fraction 0.05 --turbo  # fast",
        "--turbo",
    ),
    ("unknown subcommand", "gluon-bn frobnicate d2l-en", "frobnicate"),
    ("bad choice", "gluon-bn reproduce d2l-en --pipeline fastest", "fastest"),
    ("two bench modes", "gluon-bn bench --scaling --profile", "separate benches"),
    ("continued line", "gluon-bn reproduce d2l-en \\\n    --epochs 1 --seeds 0", "--seeds"),
    ("console prompt", "$ gluon-bn study learning-rate --quick --fast\nsome output", "--fast"),
    ("no such module", "python -m gluon_bn.no_such_module", "no module gluon_bn.no_such_module"),
    ("no such script", "python scripts/reproduce_everything.py --dry-run", "no script"),
    ("script's arguments", "python scripts/reproduce_d2l_en.py --epcohs 1", "--epcohs"),
    ("results folder", "python -m gluon_bn.results no-such-folder", "no folder no-such-folder"),
]


@pytest.mark.parametrize(
    "command, expected", [(c, e) for _, c, e in WRONG], ids=[name for name, _, _ in WRONG]
)
def test_a_command_that_does_not_work_fails(command, expected):
    language = "console" if command.startswith("$ ") else "bash"
    block = f"Some text.\n\n```{language}\ngluon-bn list\n{command}\n```\n"
    found = problems(block, "synthetic.md")
    assert len(found) == 1 and expected in found[0], found


def test_commands_that_work_pass():
    block = (
        "```bash\n"
        "sh scripts/install_data.sh && python3 -m venv .venv && .venv/bin/pip install -e "
        "'.[cpu,test,docs]' && .venv/bin/gluon-bn reproduce d2l-en\n"
        "OMP_NUM_THREADS=1 gluon-bn reproduce d2l-en --limit 2000 --epochs 1 &  # a comment\n"
        "gluon-bn bench --peer torch --loops all --rounds 5 --fraction 0.25 \\\n"
        "    --out docs/bench/peer\n"
        "python -m gluon_bn.results results\n"
        "python scripts/reproduce_d2l_en.py --epochs 1 --threads 1\n"
        "```\n"
    )
    assert problems(block) == []


def test_ci_runs_only_documented_extra_commands():
    """Beyond the README's two commands (tests/test_setup.py), .ci/run runs the one-minute try
    and the documentation build; each is written, as CI runs it, in a documented shell block."""
    printed = subprocess.run(
        ["bash", str(CI), "--print-extra"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    extra = [line for line in printed.splitlines() if line.strip()]
    assert extra, ".ci/run --print-extra printed nothing"
    documented = {without_comment(line) for _, line in documented_commands()}
    assert [c for c in extra if without_comment(c) not in documented] == []
    assert any("sphinx" in c for c in extra) and any("--limit" in c for c in extra)
