"""The ``stintsim`` console script: every subcommand is reachable and explains its options."""

from __future__ import annotations

import pytest

from engine import cli


def test_help_lists_every_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    for name, (module, _) in cli.COMMAND_MODULES.items():
        assert name in out
        assert f"python -m {module}" in out


def test_no_subcommand_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([]) == 2
    assert "subcommands" in capsys.readouterr().out


def test_unknown_subcommand_names_the_choices(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["no-such-thing"])
    assert exc.value.code == 2
    assert "no-such-thing" in capsys.readouterr().err


@pytest.mark.parametrize("name", sorted(cli.COMMAND_MODULES))
def test_subcommand_help_documents_options(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Each subcommand forwards to its module's argparse, whose --help describes every option."""
    with pytest.raises(SystemExit) as exc:
        cli.main([name, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "usage:" in out
    # every option line of argparse's help carries a description, not just the flag
    option_lines = [ln for ln in out.splitlines() if ln.strip().startswith("--")]
    assert option_lines, f"{name} --help lists no options"
