"""Settings: defaults, then the TOML file, then --set, then named flags."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.settings import Settings, SettingsError, load_settings, parse_override
from tui.cli import build_parser
from tui.flags import settings_from


def test_precedence(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[model]\nspec = "smollm2"\n[sampling]\ntemperature = 0.5\ntop_k = 5\n')
    args = build_parser().parse_args(
        [
            "ask",
            "q",
            "--config",
            str(config),
            "--set",
            "sampling.top_k=9",
            "--set",
            "sampling.temperature=0.9",
            "--temperature",
            "0.2",
        ]
    )
    s = settings_from(args)
    assert s.model.spec == "smollm2"  # from the file
    assert s.sampling.top_k == 9  # --set beats the file
    assert s.sampling.temperature == 0.2  # a named flag beats --set
    assert s.sampling.max_new_tokens == Settings().sampling.max_new_tokens  # default


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"sampling.temperature": -1}, "sampling.temperature"),
        ({"nonsense": 1}, "nonsense"),
        ({"model.dtype": "int3"}, "model.dtype"),
    ],
)
def test_bad_values_name_the_key(overrides: dict, message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        load_settings(None, overrides)


def test_bad_files_and_overrides(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="does not exist"):
        load_settings(tmp_path / "missing.toml")
    (tmp_path / "bad.toml").write_text("[model\n")
    with pytest.raises(SettingsError, match="not valid TOML"):
        load_settings(tmp_path / "bad.toml")
    with pytest.raises(SettingsError, match="key=value"):
        parse_override("sampling.top_k")
    assert parse_override("model.spec=smollm2") == ("model.spec", "smollm2")
    assert parse_override('sampling.stop=["x"]') == ("sampling.stop", ["x"])


def test_settings_round_trip_as_json() -> None:
    s = load_settings(None, {"offline": True, "sampling.seed": 3})
    assert Settings.model_validate_json(s.model_dump_json()) == s
