"""Issue 20, case 6: strategy specs with impossible numbers are refused, naming spec and key."""

from __future__ import annotations

import pytest

from engine.baselines import make_strategy


@pytest.mark.parametrize(
    ("spec", "key"),
    [
        ("fixed:laps=-3", "laps"),
        ("fixed:laps=0", "laps"),
        ("fixed:laps=abc", "laps"),
        ("fixed:laps=nan", "laps"),
        ("fixed:laps=12,tyres=-1", "tyres"),
        ("fuel-reserve:laps=-1", "laps"),
        ("double-stint:laps=inf", "laps"),
    ],
)
def test_case6_bad_numbers_are_refused(spec: str, key: str) -> None:
    with pytest.raises(ValueError) as err:
        make_strategy(spec)
    assert repr(spec) in str(err.value) and f"{key} must be a number" in str(err.value)


@pytest.mark.parametrize("spec", ["fixed:laps=12", "fuel-reserve:laps=0", "fuel-reserve:laps=1.5"])
def test_case6_sensible_specs_still_build(spec: str) -> None:
    assert make_strategy(spec).name == spec


def test_case6_simulate_refuses_with_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    from engine import simulate

    assert simulate.main(["test_race", "--strategy", "fixed:laps=-3", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "fixed:laps=-3" in err and "laps must be" in err and "Traceback" not in err
