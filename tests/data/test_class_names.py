"""The session class-name table: LMU, IMSA and WEC names onto the engine's classes."""

from __future__ import annotations

from pathlib import Path

import pytest

from data.class_names import ClassMapError, engine_class, load_class_map


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Hyper", "HYPERCAR"),
        ("HYPERCAR", "HYPERCAR"),
        ("GTP", "HYPERCAR"),
        ("LMP2_ELMS", "LMP2"),
        ("lmp2-elms", "LMP2"),
        ("LMP3", "LMP3"),
        ("GT3", "LMGT3"),
        ("GTD  PRO", "LMGT3"),
        ("F1 2015", None),
        ("", None),
        (None, None),
    ],
)
def test_default_table(name: str | None, expected: str | None) -> None:
    assert engine_class(name) == expected


def test_user_map_extends_and_overrides(tmp_path: Path) -> None:
    path = tmp_path / "classes.toml"
    path.write_text('[classes]\n"SL Lights 2019" = "LMP3"\n"GT3" = "lmp2"\n')
    extra = load_class_map(path)
    assert engine_class("sl_lights 2019", extra) == "LMP3"
    assert engine_class("GT3", extra) == "LMP2"
    assert engine_class("Hyper", extra) == "HYPERCAR"


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ('[classes]\n"X" = "F1"\n', "classes.X"),
        ("classes = 3\n", "[classes] table"),
        ("[classes\n", "not valid TOML"),
    ],
)
def test_bad_map_names_file_and_key(tmp_path: Path, text: str, needle: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ClassMapError, match=r"bad\.toml") as err:
        load_class_map(path)
    assert needle in str(err.value)


def test_missing_map_file(tmp_path: Path) -> None:
    with pytest.raises(ClassMapError, match="cannot read"):
        load_class_map(tmp_path / "absent.toml")
