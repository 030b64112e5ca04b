"""Issue 20, cases 7 and 12: bad numeric options are refused by argparse, naming the option."""

from __future__ import annotations

import importlib

import pytest

COMMANDS = {
    "engine.simulate": ["test_race"],
    "engine.commands.evaluate": ["test_race", "--strategy", "double-stint"],
    "engine.commands.whatif": ["test_race", "--strategy", "double-stint"],
    "engine.commands.tune": ["test_race"],
    "engine.train": [],
}


@pytest.mark.parametrize(
    ("module", "option", "value"),
    [
        ("engine.simulate", "--seed", "-1"),
        ("engine.simulate", "--chunk", "0"),
        ("engine.simulate", "--replicas", "0"),
        ("engine.commands.evaluate", "--seed", "-1"),
        ("engine.commands.evaluate", "--chunk-replicas", "0"),
        ("engine.commands.evaluate", "--confidence", "1.5"),
        ("engine.commands.evaluate", "--precision", "nan"),
        ("engine.commands.whatif", "--seed", "-3"),
        ("engine.commands.whatif", "--pit-after", "-1"),
        ("engine.commands.tune", "--seed", "-1"),
        ("engine.commands.tune", "--replicas", "0"),
        ("engine.commands.tune", "--cvar-alpha", "inf"),
        ("engine.train", "--seed", "-1"),
        ("engine.train", "--replicas", "abc"),
        ("engine.train", "--threads", "0"),
    ],
)
def test_case7_bad_numbers_are_refused_naming_the_option(
    module: str, option: str, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    main = importlib.import_module(module).main
    with pytest.raises(SystemExit) as ended:
        main([*COMMANDS[module], f"{option}={value}"])
    assert ended.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {option}" in err and repr(value) in err
    assert "Traceback" not in err
