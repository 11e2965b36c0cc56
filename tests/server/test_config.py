"""Settings: environment variables users set work, defaults are safe, weak admin tokens are refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.config import InsecureSettingsError, Settings


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    """No ARENA_* variables and no .env file from the developer's shell leak into a test."""
    import os

    for name in [n for n in os.environ if n.startswith("ARENA_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return monkeypatch


def test_environment_variables(clean_env, tmp_path):
    clean_env.setenv("ARENA_DATA_DIR", str(tmp_path / "data"))
    clean_env.setenv("ARENA_DATABASE_URL", "postgresql+psycopg://arena@db:5432/arena")
    clean_env.setenv("ARENA_ADMIN_TOKEN", "a-long-and-random-admin-token")
    clean_env.setenv("ARENA_DEVICE", "cuda")
    clean_env.setenv("ARENA_PORT", "9000")
    settings = Settings()
    assert settings.data_dir == tmp_path / "data"
    assert settings.resolved_database_url == "postgresql+psycopg://arena@db:5432/arena"
    assert settings.admin_token == "a-long-and-random-admin-token"
    assert (settings.device, settings.port) == ("cuda", 9000)


def test_dotenv_file(clean_env, tmp_path):
    (tmp_path / ".env").write_text("ARENA_DATA_DIR=/srv/arena\n")
    assert Settings().data_dir == Path("/srv/arena")


def test_invalid_value_is_refused(clean_env):
    clean_env.setenv("ARENA_DEVICE", "tpu")
    with pytest.raises(ValueError, match="device"):
        Settings()


def test_default_database_is_sqlite_in_the_data_dir(clean_env, tmp_path):
    clean_env.setenv("ARENA_DATA_DIR", str(tmp_path / "data"))
    settings = Settings()
    assert settings.resolved_database_url == f"sqlite:///{(tmp_path / 'data' / 'arena.db').resolve()}"
    assert Settings(data_dir=Path("relative")).resolved_database_url.endswith(str(Path.cwd() / "relative/arena.db"))


def test_defaults(clean_env):
    settings = Settings()
    assert settings.data_dir == Path("arena-data")
    assert settings.device == "auto" and settings.precision == "exact"
    assert settings.secret_key and Settings().secret_key != settings.secret_key  # generated per process


@pytest.mark.parametrize("token", ["", "changeme", "admin", "   secret  ", "PASSWORD", "fifteen-chars-x"])
def test_weak_admin_tokens_are_refused(clean_env, token):
    with pytest.raises(InsecureSettingsError, match="ARENA_ADMIN_TOKEN"):
        Settings(admin_token=token).require_secure()


def test_strong_admin_token_is_accepted(clean_env):
    Settings(admin_token="kq3V9x-2mZ8pLr4TwY7nB1").require_secure()


def test_demo_keeps_its_secrets_in_the_data_dir_unless_they_are_set(clean_env, tmp_path):
    from server.storage import kept_secret

    def kept(name: str) -> str:
        return kept_secret(tmp_path, name)

    generated = Settings().with_demo_secrets(kept)
    generated.require_secure()
    again = Settings().with_demo_secrets(kept)  # a restart
    assert (again.admin_token, again.secret_key) == (generated.admin_token, generated.secret_key)
    assert generated.admin_token != generated.secret_key
    configured = Settings(admin_token="kq3V9x-2mZ8pLr4TwY7nB1", secret_key="configured-key").with_demo_secrets(kept)
    assert (configured.admin_token, configured.secret_key) == ("kq3V9x-2mZ8pLr4TwY7nB1", "configured-key")


def test_every_setting_is_documented():
    undocumented = [name for name, field in Settings.model_fields.items() if not field.description]
    assert not undocumented, f"add a description to these Settings fields: {undocumented}"


@pytest.mark.parametrize(("variable", "value"), [
    ("ARENA_WORKER_POLL_SECONDS", "nan"), ("ARENA_WORKER_TIMEOUT_SECONDS", "inf"), ("ARENA_MAX_ATTEMPTS", "0"),
    ("ARENA_MAX_UPLOAD_BYTES", "-1"), ("ARENA_RETRY_BACKOFF_SECONDS", "-0.5"), ("ARENA_PORT", "70000"),
    ("ARENA_MODEL_SAMPLING_SECONDS", "0"), ("ARENA_TEAM_CREATION_RATE_LIMIT", "lots"),
    ("ARENA_JOIN_CODE_FAILURE_RATE_LIMIT", "10 per fortnight please"),
])
def test_numbers_out_of_range_and_unparsable_rate_limits_are_refused_naming_the_setting(clean_env, variable, value):
    """Issue 22, item 1: a NaN or a 0 here would make a worker spin or a cap refuse everything, far from the cause."""
    clean_env.setenv(variable, value)
    with pytest.raises(ValueError, match=variable.removeprefix("ARENA_").lower()):
        Settings()


@pytest.mark.parametrize(("variable", "value"), [("ARENA_RETRY_BACKOFF_SECONDS", "0"),
                                                 ("ARENA_LEADERBOARD_MAX_AGE_SECONDS", "0"),
                                                 ("ARENA_TEAM_CREATION_RATE_LIMIT", ""),
                                                 ("ARENA_JOIN_CODE_FAILURE_RATE_LIMIT", "3/minute")])
def test_documented_zero_and_empty_values_stay_allowed(clean_env, variable, value):
    clean_env.setenv(variable, value)
    Settings()
