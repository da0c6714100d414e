"""Settings: file + environment, strict validation with one clear message naming the key."""
from __future__ import annotations

from pathlib import Path

import pytest

from settings import SettingsError, load_settings


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "config.toml"
    p.write_text(text, encoding="utf-8")
    return p


def test_defaults_and_generated_dev_secrets_persist(tmp_path: Path) -> None:
    cfg = write(tmp_path, f'[server]\ninstance_path = "{tmp_path}"\n')
    s1 = load_settings(cfg, env={})
    s2 = load_settings(cfg, env={})
    assert s1.server.port == 8000 and s1.workflow.application_days == 5
    assert s1.server.secret_key and s1.server.secret_key == s2.server.secret_key
    assert len(s1.wechat.encoding_aes_key) == 43
    # every generated secret is filled in, not only the last one of each section
    assert s1.wechat.token and s1.wechat.appsecret and s1.signing.master_secret
    assert (s1.wechat.token, s1.wechat.appsecret) == (s2.wechat.token, s2.wechat.appsecret)
    assert (tmp_path / "dev-secrets.toml").stat().st_mode & 0o777 == 0o600


def test_example_config_is_valid_and_complete(tmp_path: Path) -> None:
    example = Path(__file__).resolve().parent.parent / "config.example.toml"
    s = load_settings(example, env={"TRIPACT_SERVER_INSTANCE_PATH": str(tmp_path)})
    assert s.server.base_url.startswith("http")
    text = example.read_text("utf-8")
    from dataclasses import fields

    from settings import Settings

    for section in fields(Settings):
        assert f"[{section.name}]" in text
        for key in fields(section.default_factory()):  # type: ignore[misc]
            assert f"{key.name} =" in text, f"config.example.toml does not document [{section.name}] {key.name}"


def test_environment_overrides_file(tmp_path: Path) -> None:
    cfg = write(tmp_path, f'[server]\nport = 8100\ninstance_path = "{tmp_path}"\n')
    s = load_settings(cfg, env={"TRIPACT_SERVER_PORT": "9100", "TRIPACT_WORKFLOW_APPLICATION_DAYS": "7",
                                "TRIPACT_WECHAT_SANDBOX": "false"})
    assert (s.server.port, s.workflow.application_days, s.wechat.sandbox) == (9100, 7, False)


@pytest.mark.parametrize("text, key", [
    ("[server]\nport = \"eighty\"\n", "[server] port"),
    ("[server]\nport = 70000\n", "[server] port"),
    ("[server]\nprot = 80\n", "[server] prot"),
    ("[serverr]\nport = 80\n", "[serverr]"),
    ("[database]\nurl = \"oracle://x\"\n", "[database] url"),
    ("[workflow]\napplication_days = 0\n", "[workflow] application_days"),
    ("[wechat]\nencoding_aes_key = \"short\"\n", "[wechat] encoding_aes_key"),
    ("[wechat]\nsandbox = \"maybe\"\n", "[wechat] sandbox"),
    ("[wechat]\ntemplates = 3\n", "[wechat] templates"),
    ("[storage]\nbackend = \"s3\"\n", "[storage] s3_bucket"),
    ("[signing]\ntsa_url = \"https://tsa.example.com/\"\n", "[signing] tsa_trust_roots"),
    ("[wechat]\nmessage_mode = \"encrypted\"\n", "[wechat] message_mode"),
    ("[wechat]\nmessage_mode = \"safe\"\nencoding_aes_key = \"\"\n", "[wechat] encoding_aes_key"),
    ("server = 3\n", "[server]"),
    ("[server\n", "not valid TOML"),
])
def test_bad_values_name_the_key(tmp_path: Path, text: str, key: str) -> None:
    with pytest.raises(SettingsError) as err:
        load_settings(write(tmp_path, f"{text}"), env={"TRIPACT_SERVER_INSTANCE_PATH": str(tmp_path)})
    assert key in str(err.value)
    assert "\n" not in str(err.value)


def test_bad_environment_value_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="TRIPACT_SERVER_PORT"):
        load_settings(None, env={"TRIPACT_SERVER_PORT": "x", "TRIPACT_SERVER_INSTANCE_PATH": str(tmp_path)})


def test_production_requires_secrets(tmp_path: Path) -> None:
    cfg = write(tmp_path, f'[server]\nmode = "production"\ninstance_path = "{tmp_path}"\n'
                          '[wechat]\nsandbox = false\n')
    with pytest.raises(SettingsError, match=r"\[server\] secret_key.*TRIPACT_SERVER_SECRET_KEY"):
        load_settings(cfg, env={})
    env = {"TRIPACT_SERVER_SECRET_KEY": "k" * 32, "TRIPACT_SIGNING_MASTER_SECRET": "m" * 32,
           "TRIPACT_WECHAT_APPSECRET": "a", "TRIPACT_WECHAT_TOKEN": "t"}
    s = load_settings(cfg, env=env)
    assert s.production and not (tmp_path / "dev-secrets.toml").exists()


def test_production_refuses_sandbox(tmp_path: Path) -> None:
    cfg = write(tmp_path, f'[server]\nmode = "production"\nsecret_key = "{"k" * 32}"\n'
                          f'[signing]\nmaster_secret = "{"m" * 32}"\n[wechat]\nappsecret = "a"\ntoken = "t"\n')
    with pytest.raises(SettingsError, match=r"\[wechat\] sandbox"):
        load_settings(cfg, env={})


def test_missing_file_is_clear(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="not found"):
        load_settings(tmp_path / "nope.toml", env={})


@pytest.mark.parametrize("secret_key,master_secret,problem", [
    ("   ", "m" * 32, r"\[server\] secret_key: required"),
    ("x", "m" * 32, r"\[server\] secret_key: too short"),
    ("k" * 32, "m" * 8, r"\[signing\] master_secret: too short"),
])
def test_production_refuses_blank_or_short_secrets(tmp_path: Path, secret_key: str, master_secret: str,
                                                    problem: str) -> None:
    """Review finding: production accepted "   " and "x" (a blank session key makes cookies forgeable)."""
    cfg = write(tmp_path, f'[server]\nmode = "production"\ninstance_path = "{tmp_path}"\n[wechat]\nsandbox = false\n')
    env = {"TRIPACT_SERVER_SECRET_KEY": secret_key, "TRIPACT_SIGNING_MASTER_SECRET": master_secret,
           "TRIPACT_WECHAT_APPSECRET": "a", "TRIPACT_WECHAT_TOKEN": "t"}
    with pytest.raises(SettingsError, match=problem):
        load_settings(cfg, env=env)


@pytest.mark.parametrize("text", ["outbox_interval_seconds = -5", "outbox_interval_seconds = nan",
                                  "expiry_interval_seconds = inf", "outbox_interval_seconds = 0"])
def test_scheduler_intervals_must_be_positive_and_finite(tmp_path: Path, text: str) -> None:
    """Review finding: -5 made `tripact scheduler` spin at 100 % CPU, nan crashed it."""
    cfg = write(tmp_path, f'[server]\ninstance_path = "{tmp_path}"\n[scheduler]\n{text}\n')
    with pytest.raises(SettingsError, match=r"\[scheduler\] (outbox|expiry)_interval_seconds: must be"):
        load_settings(cfg, env={})
