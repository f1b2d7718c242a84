"""Configuration: good files load; every error names the file, the dotted key and what was
expected; secrets come from private files or systemd credentials."""

from __future__ import annotations

import re
import tomllib
import typing
from pathlib import Path

import pytest

from agent.config import AgentConfig, ami_settings, load_config
from agent.config.schema import Section
from agent.errors import ConfigError
from drivers.registry import available
from drivers.settings import DriverSettings

EXAMPLE = Path(__file__).parents[2] / "config" / "agent.example.toml"

GOOD = """
site_id = "site-1"
[pbx.ami]
username = "agent"
secret_file = "ami-secret"
[state]
dir = "state"
"""


def write(tmp_path: Path, text: str, secret: str = "s3cret-value\n", mode: int = 0o600) -> Path:
    secret_file = tmp_path / "ami-secret"
    secret_file.write_text(secret)
    secret_file.chmod(mode)
    path = tmp_path / "agent.toml"
    path.write_text(text)
    return path


def error_of(path: Path, **kw: object) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path, **kw)  # type: ignore[arg-type]
    return str(info.value)


def test_good_file_loads_with_defaults_and_resolved_paths(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, GOOD))
    assert cfg.site_id == "site-1"
    assert cfg.pbx.ami.port == 5038 and cfg.poll.interval == 300
    assert cfg.state.dir == (tmp_path / "state").resolve()
    assert cfg.secret_values() == ["s3cret-value"]
    assert "s3cret-value" not in repr(cfg)
    settings = ami_settings(cfg)
    assert settings.secret == "s3cret-value" and "s3cret-value" not in repr(settings)
    assert settings.max_answer_bytes == 256 * 1024 * 1024, "the documented default"
    cfg = load_config(write(tmp_path, GOOD.replace("[pbx.ami]", "[pbx.ami]\nmax_answer_mb = 8")))
    assert ami_settings(cfg).max_answer_bytes == 8 * 1024 * 1024


@pytest.mark.parametrize(
    ("edit", "key", "expected"),
    [
        (("[pbx.ami]", '[pbx.ami]\nport = "five"'), "pbx.ami.port", "integer"),
        (("[pbx.ami]", "[pbx.ami]\nport = 70000"), "pbx.ami.port", "65535"),
        (("[pbx.ami]", "[pbx.ami]\nmax_answer_mb = 0"), "pbx.ami.max_answer_mb", "greater"),
        (("[state]", "[poll]\ninterval = 1\n[state]"), "poll.interval", "greater than or equal"),
        (('site_id = "site-1"', 'site_id = "Bad Site"'), "site_id", "pattern"),
        (('username = "agent"', ""), "pbx.ami.username", "missing"),
        (("[state]", '[logging]\nlevel = "loud"\n[state]'), "logging.level", "'debug'"),
    ],
)
def test_bad_values_name_file_key_and_expectation(
    tmp_path: Path, edit: tuple[str, str], key: str, expected: str
) -> None:
    path = write(tmp_path, GOOD.replace(*edit))
    message = error_of(path)
    assert message.startswith(f"{path}: ")
    assert f": {key}: " in message
    assert expected in message


def test_unknown_keys_are_errors_with_a_suggestion(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("[pbx.ami]", "[pbx.ami]\nprot = 1") + "\nbogus = 2\n")
    message = error_of(path)
    assert 'pbx.ami.prot: unknown key "prot"' in message and 'did you mean "port"' in message
    assert 'unknown key "bogus"' in message
    assert len(message.splitlines()) == 2, "every error is reported, one per line"


def test_toml_syntax_error_names_line(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD + "\nbroken = = 1\n[pbx]\n")
    message = error_of(path)
    assert str(path) in message and "line" in message


def test_missing_file(tmp_path: Path) -> None:
    assert "file not found" in error_of(tmp_path / "nope.toml")


def test_inline_secret_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace('username = "agent"', 'username = "a"\nsecret = "x"'))
    assert "pbx.ami.secret" in error_of(path)


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620])
def test_secret_file_open_to_group_or_others_is_refused(tmp_path: Path, mode: int) -> None:
    path = write(tmp_path, GOOD, mode=mode)
    message = error_of(path)
    assert "pbx.ami.secret_file" in message and f"{mode:04o}" in message
    assert "chmod 600" in message


def test_secret_file_missing_or_empty(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD, secret="\n")
    assert "empty" in error_of(path)
    (tmp_path / "ami-secret").unlink()
    assert "does not exist" in error_of(path)


def test_systemd_credential(tmp_path: Path) -> None:
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "ami-secret").write_text("from-credential\n")
    text = GOOD.replace('secret_file = "ami-secret"', 'secret_credential = "ami-secret"')
    path = write(tmp_path, text)
    cfg = load_config(path, environ={"CREDENTIALS_DIRECTORY": str(creds)})
    assert cfg.secret_values() == ["from-credential"]
    assert "CREDENTIALS_DIRECTORY" in error_of(path, environ={})


def test_both_or_neither_secret_source_is_an_error(tmp_path: Path) -> None:
    both = GOOD.replace('secret_file = "ami-secret"', 'secret_file = "a"\nsecret_credential = "b"')
    assert "exactly one of secret_file and secret_credential" in error_of(write(tmp_path, both))


def _keys(model: type[Section] | type[DriverSettings], prefix: str = "") -> set[str]:
    keys: set[str] = set()
    for name, field in model.model_fields.items():
        if field.exclude:
            continue
        annotation = field.annotation
        if annotation is DriverSettings:  # [pbx.<table>]: every driver's own settings model
            for cls in available().values():
                keys |= _keys(cls.settings_model, f"{prefix}{cls.settings_table}.")
            continue
        options = [a for a in typing.get_args(annotation) if isinstance(a, type)] or [annotation]
        annotation = next(
            (a for a in options if isinstance(a, type) and issubclass(a, Section)), annotation
        )
        if isinstance(annotation, type) and issubclass(annotation, Section):
            keys |= _keys(annotation, f"{prefix}{name}.")
        else:
            keys.add(f"{prefix}{name}")
    return keys


def test_example_config_is_valid_and_documents_every_key(tmp_path: Path) -> None:
    text = EXAMPLE.read_text()
    secret = tmp_path / "ami-secret"
    secret.write_text("x\n")
    secret.chmod(0o600)
    path = tmp_path / "agent.toml"
    path.write_text(text.replace("/etc/pbx-agent/ami-secret", str(secret)))
    cfg = load_config(path)
    assert isinstance(cfg, AgentConfig)
    documented = {m[1] for m in re.finditer(r"^#?\s*([a-z_]+) = ", text, re.MULTILINE)}
    tables = tomllib.loads(text)
    assert tables["site_id"]
    missing = {k for k in _keys(AgentConfig) if k.rsplit(".", 1)[-1] not in documented}
    assert not missing, f"keys missing from config/agent.example.toml: {sorted(missing)}"


def test_mqtt_password_comes_from_a_0600_file_and_is_redacted(tmp_path: Path) -> None:
    password = tmp_path / "mqtt-password"
    password.write_text("mq-Pa55-w0rd\n")
    password.chmod(0o600)
    mqtt = '\n[mqtt]\nenabled = true\nusername = "site"\npassword_file = "mqtt-password"\n'
    cfg = load_config(write(tmp_path, GOOD + mqtt))
    assert cfg.mqtt.password is not None
    assert cfg.mqtt.password.get_secret_value() == "mq-Pa55-w0rd"
    assert "mq-Pa55-w0rd" in cfg.secret_values()
    password.chmod(0o644)
    assert "mqtt.password_file" in error_of(write(tmp_path, GOOD + mqtt))
    inline = '\n[mqtt]\nenabled = true\nusername = "site"\npassword = "x"\n'
    assert "mqtt.password: secrets are never written" in error_of(write(tmp_path, GOOD + inline))
    bad_key = '\n[mqtt]\ncommand_keys = { central = "bm90LWEta2V5" }\n'
    assert "command_keys.central: not a base64 Ed25519 public key" in error_of(
        write(tmp_path, GOOD + bad_key)
    )


ESL = """
site_id = "site-1"
[pbx]
driver = "freeswitch"
[pbx.esl]
secret_file = "ami-secret"
domains = ["bayside.example", "coastal.example"]
[state]
dir = "state"
"""


def test_freeswitch_driver_has_its_own_table_and_defaults(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, ESL))
    assert cfg.pbx.driver == "freeswitch" and cfg.pbx.table == "esl"
    settings = cfg.pbx.settings
    assert settings.host == "127.0.0.1" and settings.port == 8021
    assert settings.domains == ("bayside.example", "coastal.example")
    assert cfg.backup.path == "/etc/freeswitch", "backups copy FreeSWITCH's config folder"
    assert cfg.secret_values() == ["s3cret-value"] and "s3cret-value" not in repr(cfg)


@pytest.mark.parametrize(
    ("edit", "key", "expected"),
    [
        (("[pbx.esl]", "[pbx.esl]\nport = 0"), "pbx.esl.port", "greater than or equal"),
        (("[pbx.esl]", "[pbx.esl]\nprot = 1"), "pbx.esl.prot", 'did you mean "port"'),
        (('domains = ["bayside.example", ', 'domains = ["bay side", '), "pbx.esl.domains", "name"),
        (("[pbx.esl]", "[pbx.esl]\naction_timeout = -1"), "pbx.esl.action_timeout", "greater"),
        (("[pbx.esl]", '[pbx.esl]\npassword = "x"'), "pbx.esl.password", "never written"),
        (('driver = "freeswitch"', 'driver = "yate"'), "pbx.driver", "asterisk, freeswitch"),
        (("[state]", '[pbx.ami]\nusername = "a"\n[state]'), "pbx.ami", "driver 'asterisk'"),
    ],
)
def test_freeswitch_table_errors_name_the_key(
    tmp_path: Path, edit: tuple[str, str], key: str, expected: str
) -> None:
    path = write(tmp_path, ESL.replace(*edit))
    message = error_of(path)
    assert f": {key}: " in message and expected in message, message


def test_the_drivers_own_table_is_required(tmp_path: Path) -> None:
    text = ESL.replace("[pbx.esl]\n", "[backup]\n").replace("domains = [", "excludes = [")
    message = error_of(write(tmp_path, text))
    assert "pbx.esl: required table is missing" in message
