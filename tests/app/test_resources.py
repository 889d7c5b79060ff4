"""Reading Dapr resource files: components, scopes, substitutions and one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from components.resources import ResourceError, load_resources


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


COMPONENT = """
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: {name}
spec:
  type: state.redis
  version: v1
  metadata:
  - name: redisHost
    value: {value}
  - name: enableTLS
    value: true
  - name: redisDB
    value: 3
"""


def test_components_are_read_with_scalars_as_strings(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", COMPONENT.format(name="cache", value="localhost:6379"))
    resources = load_resources([tmp_path], app_id="app1")
    [component] = resources.components
    assert (component.name, component.type, component.version) == ("cache", "state.redis", "v1")
    assert component.metadata == {"redisHost": "localhost:6379", "enableTLS": "true", "redisDB": "3"}
    assert component.source.endswith("a.yaml")


def test_multi_document_files_and_other_kinds(tmp_path: Path) -> None:
    text = (
        COMPONENT.format(name="one", value="h:1")
        + "---\n"
        + COMPONENT.format(name="two", value="h:2")
        + "---\napiVersion: dapr.io/v2alpha1\nkind: Subscription\nmetadata: {name: s}\nspec: {}\n"
    )
    write(tmp_path, "all.yml", text)
    write(tmp_path, "ignored.txt", "not yaml: [")
    resources = load_resources([tmp_path], app_id="")
    assert [c.name for c in resources.components] == ["one", "two"]
    assert [kind for kind, _, _ in resources.others] == ["Subscription"]


def test_scopes_exclude_other_apps(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", COMPONENT.format(name="c", value="h:1") + "scopes: [app1]\n")
    assert [c.name for c in load_resources([tmp_path], app_id="app1").components] == ["c"]
    assert load_resources([tmp_path], app_id="app2").components == []


def test_substitutions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("L8_TEST_HOST", "redis.internal")
    monkeypatch.setenv("L8_TEST_PASSWORD", "s3cret")
    write(
        tmp_path,
        "a.yaml",
        """
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {name: c}
spec:
  type: state.redis
  metadata:
  - {name: redisHost, value: "{env:L8_TEST_HOST}:6379"}
  - {name: fallback, value: "{env:L8_TEST_UNSET:dflt}"}
  - {name: redisPassword, envRef: L8_TEST_PASSWORD}
  - {name: keyPrefix, value: "{appID}-x"}
  - {name: consumer, value: "{uuid}"}
""",
    )
    metadata = load_resources([tmp_path], app_id="shop").components[0].metadata
    assert metadata["redisHost"] == "redis.internal:6379"
    assert metadata["fallback"] == "dflt"
    assert metadata["redisPassword"] == "s3cret"
    assert metadata["keyPrefix"] == "shop-x"
    assert len(metadata["consumer"]) == 36


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("kind: Component\nmetadata: {name: [\n", "invalid YAML at line"),
        ("- just\n- a list\n", "each YAML document must be a mapping"),
        (
            "apiVersion: dapr.io/v1alpha1\nkind: Component\nspec: {type: state.redis}\n",
            "field 'metadata.name'",
        ),
        (
            "apiVersion: v9\nkind: Component\nmetadata: {name: c}\nspec: {type: state.redis}\n",
            "field 'apiVersion'",
        ),
        (
            "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {name: c}\nspec: {type: redis}\n",
            "spec.type",
        ),
        (
            "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {name: c}\n"
            "spec: {type: state.redis, metadata: [{name: p, secretKeyRef: {key: s}}]}\n",
            "component 'c': field 'p': secretKeyRef needs a name",
        ),
        (
            "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {name: c}\n"
            "spec: {type: state.redis, metadata: [{name: redisHost, value: '{env:L8_NEVER_SET}'}]}\n",
            "component 'c': field 'redisHost'",
        ),
        (
            "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {name: c}\n"
            "spec: {type: state.redis, initTimeout: soon}\n",
            "spec.initTimeout",
        ),
    ],
)
def test_bad_files_name_file_component_and_field(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, "bad.yaml", text)
    with pytest.raises(ResourceError) as caught:
        load_resources([tmp_path], app_id="")
    message = str(caught.value)
    assert message.startswith(str(path))
    assert expected in message
    assert "\n" not in message


def test_duplicate_names_are_refused(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", COMPONENT.format(name="same", value="h:1"))
    write(tmp_path, "b.yaml", COMPONENT.format(name="same", value="h:2"))
    with pytest.raises(ResourceError, match="duplicate component name"):
        load_resources([tmp_path], app_id="")


def test_missing_path_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ResourceError, match="does not exist"):
        load_resources([tmp_path / "nope"], app_id="")


def test_the_deploy_components_load_and_name_known_types(monkeypatch: pytest.MonkeyPatch) -> None:
    """deploy/components (what docker-compose.yml mounts) parses, and every type is registered."""
    from components import registry

    root = Path(__file__).resolve().parents[2]
    monkeypatch.setenv("SECRETS_FILE", str(root / "deploy" / "secrets" / "secrets.json"))
    resources = load_resources([root / "deploy" / "components"], app_id="myapp")
    assert resources.components
    for component in resources.components:
        registry.registry_of(component.type).load(component.type)
    refs = [c for c in resources.components if c.secret_refs]
    assert refs and all(c.secret_store == "localsecretstore" for c in refs)
