"""Deploy as written: docker-compose.yml, the Dockerfile, the README and .env.example agree with the
code and with each other. No docker needed: the compose file is parsed and each reference checked."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
CODE = [*sorted((REPO / "connector").rglob("*.py")), *sorted((REPO / "workers").rglob("*.py")),
        *sorted((REPO / "webhooks").rglob("*.py")), REPO / "celeryconfig.py"]
ENV_NAME = re.compile(r"[A-Z][A-Z0-9]*_[A-Z0-9_]+|PORT")
INTERPOLATION = re.compile(r"\$\{([A-Z][A-Z0-9_]*)")
# Set by the platform or by Celery/Flower themselves, not by the operator for the connector.
NOT_OURS = {"PATH", "HOME", "HOSTNAME"}


def compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


def variables_read_by_the_code() -> set[str]:
    """Names read from the environment: ``env.get("X")``, ``os.environ["X"]``, ``os.getenv("X")`` and the
    settings' own readers (``get("X")``, ``url("X", ...)``, ``duration("X", ...)``, ``parse_*("X", ...)``)."""
    readers = {"get", "getenv", "url", "duration"}
    found = set()
    for path in CODE:
        if "sandbox" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            name = None
            if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
                func = node.func
                called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                if called in readers or called.startswith("parse_"):
                    name = node.args[0].value
            elif isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
                target = node.value
                if getattr(target, "id", getattr(target, "attr", "")) in ("env", "environ"):
                    name = node.slice.value
            if isinstance(name, str) and ENV_NAME.fullmatch(name):
                found.add(name)
    return found - NOT_OURS


def readme_table_rows() -> list[list[str]]:
    """The variables named in each row of the README's variable table."""
    text = (REPO / "README.md").read_text()
    section = text[text.index("## Running it for real"):]
    section = section[:section.index("\n## ", 5)]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    return [re.findall(r"`([A-Z][A-Z0-9_]+)`", row.split("|")[1]) for row in rows]


def readme_table_variables() -> set[str]:
    return {name for row in readme_table_rows() for name in row}


def test_the_readme_table_explains_each_variable_once():
    names = [name for row in readme_table_rows() for name in row]
    assert sorted({name for name in names if names.count(name) > 1}) == []


def env_example_variables() -> set[str]:
    names = set()
    for line in (REPO / ".env.example").read_text().splitlines():
        match = re.match(r"^#?\s*([A-Z][A-Z0-9_]+)=", line)
        if match:
            names.add(match.group(1))
    return names


def test_every_variable_the_code_reads_is_in_the_readme_table_and_in_env_example():
    read = variables_read_by_the_code()
    assert {"REDIS_URL", "DATABASE_URL", "XERO_LOGIN_URL", "CONNECTOR_PUBLIC_URL", "CONNECTOR_DATA_DIR",
            "FLOWER_BASIC_AUTH", "LOG_FORMAT"} <= read  # the scan itself works
    assert read - readme_table_variables() == set()
    assert read - env_example_variables() == set()


def test_compose_services_files_and_variables_all_exist():
    spec = compose()
    services = spec["services"]
    documented = readme_table_variables() | env_example_variables()
    read = variables_read_by_the_code()
    text = (REPO / "docker-compose.yml").read_text()
    for name in INTERPOLATION.findall(text):
        assert name in documented, f"${{{name}}} in docker-compose.yml is not documented"

    built = [name for name, service in services.items() if "build" in service]
    assert len(built) == 1, f"one image built once, not by {built}"
    image = services[built[0]]["image"]
    context = services[built[0]]["build"]
    context = context if isinstance(context, str) else context.get("context", ".")
    assert (REPO / context / "Dockerfile").is_file()

    for name, service in services.items():
        for dependency, condition in (service.get("depends_on") or {}).items():
            assert dependency in services, f"{name} depends on a missing service {dependency}"
            assert condition["condition"] in ("service_started", "service_healthy", "service_completed_successfully")
            if condition["condition"] == "service_healthy":
                assert "healthcheck" in services[dependency], f"{dependency} has no health check"
        env_files = service.get("env_file") or []
        for env_file in [env_files] if isinstance(env_files, str) else env_files:
            # .env is the operator's copy of the committed template.
            assert (REPO / (".env.example" if env_file == ".env" else env_file)).is_file(), env_file
        for key in (service.get("environment") or {}):
            assert key in read or key.startswith("POSTGRES_"), f"{name}: {key} is not read by the code"
        for volume in service.get("volumes") or []:
            source = volume.split(":")[0]
            if source.startswith((".", "/")):
                assert (REPO / source).exists(), f"{name} mounts missing {source}"
            else:
                assert source in (spec.get("volumes") or {}), f"{name} uses an undeclared volume {source}"
        if "image" in service and service["image"] == image:
            assert "build" in service or service.get("pull_policy") == "never", name

    # The app's services: one image, migrations first, restart policies, health checks, named data volumes.
    app = {"migrate", "web", "worker", "beat", "flower"}
    assert app <= set(services)
    for name in app - {"migrate"}:
        assert services[name]["image"] == image
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert services[name]["restart"] == "unless-stopped"
    assert services["migrate"]["command"] == ["connector", "migrate"]
    for name in ("redis", "postgres"):
        assert "healthcheck" in services[name]
        assert any(not v.startswith((".", "/")) for v in services[name]["volumes"]), f"{name}: no named volume"
    # Flower: behind FLOWER_BASIC_AUTH (connector flower), published on the host's loopback only.
    assert services["flower"]["command"][:2] == ["connector", "flower"]
    assert all(str(port).startswith("127.0.0.1:") for port in services["flower"]["ports"])
    # The mapping file is mountable: the data dir the workers read is a mounted folder.
    data_dir = services["worker"]["environment"]["CONNECTOR_DATA_DIR"]
    assert any(v.split(":")[1] == data_dir for v in services["worker"]["volumes"])


def test_the_dockerfile_runs_as_a_non_root_user_with_a_healthcheck():
    lines = [line.strip() for line in (REPO / "Dockerfile").read_text().splitlines()]
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users and users[-1] not in ("root", "0")
    assert any(line.startswith("HEALTHCHECK ") for line in lines)
    for line in lines:
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (REPO / source).exists(), source


def test_every_path_and_section_the_docs_name_exists():
    readme = (REPO / "README.md").read_text()
    headings = {h.strip() for h in re.findall(r"^#+\s+(.*)$", readme, flags=re.M)}
    for doc in ("README.md", "docs/architecture.md", "docker-compose.yml", ".env.example", "Dockerfile",
                "config/README.md"):
        text = (REPO / doc).read_text()
        for section in re.findall(r'README "([^"]+)"', text):
            assert section in headings, f'{doc} points to a missing README section "{section}"'
        for code in re.findall(r"`([^`\n]+)`", text):
            for word in code.split():
                if "/" not in word or word.startswith(("/", "http", ".venv/", "var/")) or re.search(r"[<>:*$=]", word):
                    continue
                assert (REPO / word.rstrip(".,")).exists() or (REPO / "connector" / word).exists(), \
                    f"{doc} names {word}, which does not exist"
    # Imported here: a module that imports tests.processes at its top counts as starting processes (conftest).
    from tests.processes import procfile

    for command in procfile().values():
        for module in re.findall(r"python:([\w.]+)|([\w.]+):app\b|-A ([\w.]+)", command):
            name = next(m for m in module if m)
            assert (REPO / (name.replace(".", "/") + ".py")).is_file(), name
