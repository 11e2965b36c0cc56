"""docker-compose.yml and the Dockerfile agree with the code: no Docker engine runs here, so parse and cross-check.

Every service command must be a real `arena` command with real options (checked against the live Typer command
tree, so a renamed command or option fails here), and every ARENA_* variable must be a Settings field.
"""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml

from server.cli import app
from server.config import Settings

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_TEXT = (ROOT / "docker-compose.yml").read_text()
COMPOSE = yaml.safe_load(COMPOSE_TEXT)
DOCKERFILE = (ROOT / "Dockerfile").read_text()
SERVICES = COMPOSE["services"]
ARENA_SERVICES = [name for name, service in SERVICES.items() if "arena" in str(service.get("command", ""))]


def command_problems(tokens: list[str]) -> list[str]:
    """What in an `arena ...` command line the real CLI would reject (empty when it parses)."""
    if not tokens or tokens[0] != "arena":
        return [f"{tokens!r} does not start with `arena`"]
    command: Any = typer.main.get_command(app)
    path = ["arena"]
    rest = tokens[1:]
    while hasattr(command, "commands") and rest and not rest[0].startswith("-"):
        if rest[0] not in command.commands:
            return [f"`{' '.join(path)}` has no subcommand {rest[0]!r} (has: {sorted(command.commands)})"]
        path.append(rest[0])
        command = command.commands[rest.pop(0)]
    if hasattr(command, "commands"):
        return [f"`{' '.join(path)}` is a group; name one of its commands: {sorted(command.commands)}"]
    return option_problems(command, " ".join(path), rest)


def option_problems(command: Any, name: str, rest: list[str]) -> list[str]:
    options = {opt: param for param in command.params for opt in (*param.opts, *param.secondary_opts)}
    arguments = [param for param in command.params if param.param_type_name == "argument"]
    problems, positionals = [], 0
    while rest:
        token = rest.pop(0)
        if token.startswith("-"):
            option = options.get(token.split("=", 1)[0])
            if option is None or option.param_type_name != "option":
                problems.append(f"`{name}` has no option {token!r}")
            elif not option.is_flag and "=" not in token:
                if not rest:
                    problems.append(f"`{name} {token}` needs a value")
                rest = rest[1:]
        else:
            positionals += 1
    if positionals > len(arguments):
        problems.append(f"`{name}` takes {len(arguments)} argument(s), the command line gives {positionals}")
    return problems


@pytest.mark.parametrize("service", ["web", "worker"])
def test_service_commands_are_real_arena_commands(service):
    command = SERVICES[service]["command"]
    tokens = shlex.split(command) if isinstance(command, str) else list(command)
    assert not command_problems(tokens), f"docker-compose.yml service {service!r}: {command_problems(tokens)}"


def test_dockerfile_default_command_is_real():
    cmd = re.search(r"^CMD (\[.*\])$", DOCKERFILE, re.MULTILINE)
    assert cmd, "the Dockerfile needs a CMD in exec form"
    assert not command_problems(yaml.safe_load(cmd.group(1)))


def test_the_checker_catches_mistakes():
    assert command_problems(["arena", "servee"])
    assert command_problems(["arena", "data", "demo", "--outt", "x"])
    assert command_problems(["arena", "data"])
    assert command_problems(["python", "-m", "server.cli"])
    assert not command_problems(["arena", "data", "prepare", "--source", "s", "--out=o", "--skip-bad"])


def test_every_arena_variable_is_a_setting():
    used = set(re.findall(r"\bARENA_([A-Z0-9_]+)", COMPOSE_TEXT + DOCKERFILE))
    unknown = sorted(f"ARENA_{name}" for name in used if name.lower() not in Settings.model_fields)
    assert used and not unknown, f"not Settings fields (typo, or add them to server/config.py): {unknown}"


def test_admin_token_is_required_and_fails_loudly():
    for service in ARENA_SERVICES:
        value = SERVICES[service]["environment"]["ARENA_ADMIN_TOKEN"]
        assert re.fullmatch(r"\$\{ARENA_ADMIN_TOKEN:\?.+\}", value), f"{service}: {value}"


def test_web_has_a_healthcheck_on_healthz_and_no_embedded_worker():
    web = SERVICES["web"]
    assert "/healthz" in " ".join(web["healthcheck"]["test"])
    assert "--no-worker" in web["command"]
    assert any(str(port).endswith(":8000") for port in web["ports"])


def test_worker_reserves_a_gpu_and_scales():
    worker = SERVICES["worker"]
    devices = worker["deploy"]["resources"]["reservations"]["devices"]
    assert any(d["driver"] == "nvidia" and "gpu" in d["capabilities"] for d in devices)
    assert "container_name" not in worker, "a fixed container_name prevents `--scale worker=N`"
    assert "ports" not in worker


def test_data_and_weights_volumes_are_shared():
    declared = set(COMPOSE["volumes"])
    mounts = {service: dict(v.split(":")[:2] for v in SERVICES[service]["volumes"]) for service in ARENA_SERVICES}
    for service, by_volume in mounts.items():
        environment = SERVICES[service]["environment"]
        assert by_volume.get("arena-data") == environment["ARENA_DATA_DIR"], service
        assert by_volume.get("torch-cache") == environment["TORCH_HOME"], service
        assert set(by_volume) <= declared
    assert {"web", "worker"} <= set(mounts)


def test_postgres_is_an_optional_profile():
    postgres = SERVICES["postgres"]
    assert postgres["profiles"] == ["postgres"]
    assert SERVICES["web"]["depends_on"]["postgres"]["required"] is False
    assert all("profiles" not in SERVICES[name] for name in ("web", "worker"))


def test_dockerfile_installs_every_package_with_the_pinned_constraints():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    for package in pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]:
        assert re.search(rf"^COPY {package} \./{package}$", DOCKERFILE, re.MULTILINE), f"Dockerfile misses {package}/"
    assert "-c constraints.txt" in DOCKERFILE
    assert "offline-weights" in DOCKERFILE  # the demo must work without internet


def commented_remote_worker() -> dict[str, Any]:
    """The commented `remote-worker` service, uncommented and parsed as its own compose file would be."""
    lines = COMPOSE_TEXT.splitlines()
    start = lines.index("  # remote-worker:")
    block = []
    for line in lines[start:]:
        if not line.startswith("  #"):
            break
        block.append(line.replace("  # ", "", 1).replace("  #", "", 1))
    return yaml.safe_load("\n".join(block))["remote-worker"]


def test_the_commented_remote_worker_is_a_real_command_with_nothing_of_the_arena_shared():
    service = commented_remote_worker()
    assert command_problems(list(service["command"])) == []
    assert "--server" in service["command"] and "--token" in service["command"]
    assert not any(str(v).startswith(("arena-data", "torch-cache")) for v in service["volumes"])
    assert "ARENA_DATABASE_URL" not in service.get("environment", {})
