"""Every command the README shows runs as written, so a README that rots fails CI (issue 20).

Each ``python -m ...`` / ``stintsim ...`` line of the README's ``bash`` blocks, and each such
command quoted in its prose, is parsed by its own command's argument parser with exactly the
README's options. The quick ones (the test race, a few races each; the synthetic LMU session
and its lap store) then run for real, in README order, in a scratch folder; the long ones
(24-hour races, training, thousands of races, the whole shared data) run as the tests of their
modules run them, with small settings.
"""

from __future__ import annotations

import importlib
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from engine.cli import COMMAND_MODULES

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
PROJECT_PACKAGES = ("data", "world_model", "events", "engine", "policies", "bench")


def _block_commands() -> list[str]:
    """The command lines of the README's bash blocks (continuations joined, ``&&`` split)."""
    out = []
    for block in re.findall(r"```bash\n(.*?)```", README, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            for part in line.split("&&"):
                words = shlex.split(part, comments=True)
                for i, word in enumerate(words):  # the shell's, not the command's
                    if word in (">", ">>", "2>", "|", "<"):
                        words = words[:i]
                        break
                if words[:2] == ["python", "-m"] or words[:1] == ["stintsim"]:
                    out.append(shlex.join(words))
    return out


def _prose_commands() -> list[str]:
    """Commands quoted in the prose with their arguments (``python -m engine.x DB --y Z``),
    without syntax summaries (``[--car N]``, ``A|B``, ``...``), a placeholder subcommand or
    mentions of one option (``stintsim whatif --set X=Y``)."""
    prose = re.sub(r"```.*?```", "", README, flags=re.S)
    out = []
    for span in re.findall(r"`((?:python -m|stintsim) [^`]+)`", prose):
        if any(mark in span for mark in ("[", "|", "...", "SUBCOMMAND")):
            continue
        words = span.split()
        first_arg = 3 if words[0] == "python" else 2
        # a bare name, or a name with one of its options, is a mention, not a command
        if len(words) > first_arg and not words[first_arg].startswith("--"):
            out.append(span)
    return out


def _module_and_args(command: str) -> tuple[str, list[str]]:
    words = shlex.split(command)
    if words[0] == "stintsim":
        return COMMAND_MODULES[words[1]][0], words[2:]
    return words[2], words[3:]


def _command(module_name: str):
    """The module whose ``main`` / ``_parser`` a ``python -m`` name runs: itself, or the
    :mod:`engine.commands` module its ``__main__`` block hands over to."""
    module = importlib.import_module(module_name)
    if hasattr(module, "main"):
        return module
    return importlib.import_module(f"engine.commands.{module_name.rsplit('.', 1)[-1]}")


COMMANDS = _block_commands()
PROSE = _prose_commands()


def test_the_readme_has_commands() -> None:
    assert len(COMMANDS) >= 30 and len(PROSE) >= 5


@pytest.mark.parametrize("command", COMMANDS + PROSE)
def test_every_readme_command_parses_with_its_options(command: str) -> None:
    module_name, args = _module_and_args(command)
    if module_name.split(".")[0] not in PROJECT_PACKAGES:
        pytest.skip(f"{module_name} is not this project's (pip, pytest, tensorboard)")
    module = _command(module_name)
    parser = getattr(module, "_parser", None)
    if parser is None:  # a bench script with its parser inside main: --help must work
        with pytest.raises(SystemExit) as ended:
            module.main(["--help"])
        assert ended.value.code == 0
        return
    try:
        parser().parse_args(args)
    except SystemExit as exc:
        pytest.fail(f"README command does not parse (exit {exc.code}): {command}")


QUICK = (
    "python -m bench.lmu_fixture sample.duckdb",
    "python -m bench.sharedmem_fixture recording.json",
    "stintsim ingest sample.duckdb",
    "stintsim simulate test_race",
    "python -m engine.simulate test_race",
    "stintsim evaluate test_race",
    "stintsim tune test_race",
    "stintsim whatif test_race",
    "stintsim advise test_race",
)
"""README commands that run in seconds, run for real."""


def test_the_quick_readme_commands_run_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from engine.cli import main

    monkeypatch.chdir(tmp_path)
    quick = [c for c in COMMANDS if c.startswith(QUICK)]
    assert len(quick) >= 12, quick
    for command in quick:
        words = shlex.split(command)
        argv = words[1:] if words[0] == "stintsim" else None
        if argv is None:
            code = _command(words[2]).main(words[3:])
        else:
            code = main([*argv, "--no-progress"] if _takes_no_progress(argv[0]) else argv)
        err = capsys.readouterr().err
        assert code == 0, f"{command} exited {code}: {err[-2000:]}"
    assert (tmp_path / "runs" / "sim.sqlite").is_file() and (tmp_path / "state.json").is_file()


def _takes_no_progress(subcommand: str) -> bool:
    module = importlib.import_module(COMMAND_MODULES[subcommand][0])
    return "--no-progress" in module._parser().format_help()


def test_the_gymnasium_id_in_the_docs_makes_the_env() -> None:
    assert '"engine.env:stintsim/Endurance-v0"' in README
    code = (
        "import gymnasium\n"
        "env = gymnasium.make('engine.env:stintsim/Endurance-v0', scenario='test_race')\n"
        "obs, info = env.reset(seed=0)\n"
        "print(type(env.unwrapped).__name__)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "RaceEnv"


def test_the_learned_lap_model_commands_run_with_small_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The README's fit then evaluate, on a small store (two synthetic sessions) with a tiny
    network: the same options, so the pair fails here if it fails as written."""
    from bench import lmu_fixture
    from data import ingest
    from world_model import evaluate, fit

    fit_line = next(c for c in COMMANDS if c.startswith("python -m world_model.fit"))
    eval_line = next(c for c in COMMANDS if c.startswith("python -m world_model.evaluate"))
    monkeypatch.chdir(tmp_path)
    for name, seed in (("first.duckdb", "1"), ("second.duckdb", "2")):
        assert lmu_fixture.main([name, "--hours", "2", "--seed", seed]) == 0
    assert ingest.main(["first.duckdb", "second.duckdb", "--db", "lapstore.sqlite", "--json"]) == 0
    capsys.readouterr()
    args = shlex.split(fit_line)[3:]
    races = _races(tmp_path / "lapstore.sqlite")
    args = [races[-1] if a == "wec_2024_bahrain_8h_race" else a for a in args]
    small = ["--epochs", "1", "--members", "1", "--hidden", "8", "--no-progress"]
    assert fit.main([*args, *small]) == 0
    assert evaluate.main(shlex.split(eval_line)[3:]) == 0
    assert (tmp_path / "pit.png").is_file()


def _races(db: Path) -> list[str]:
    import sqlite3

    conn = sqlite3.connect(db)
    try:
        return sorted(r[0] for r in conn.execute("SELECT name FROM sessions"))
    finally:
        conn.close()
