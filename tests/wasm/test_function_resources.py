"""WasmFunction resources (wasm/resources.py): parsed into the settings file's FunctionSettings,
paths relative to the document, scopes, and one-line errors naming file and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from components.resources import ResourceError, load_resources
from wasm.resources import FunctionResource, function_resources

ROOT = Path(__file__).resolve().parents[2]


def _write(folder: Path, text: str, name: str = "functions.yaml") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text)
    return path


def _document(name: str = "id_1", spec: str = "{url: file://f.wasm}", extra: str = "") -> str:
    return (
        f"apiVersion: l8.dev/v1alpha1\nkind: WasmFunction\nmetadata: {{name: {name}}}\nspec: {spec}\n{extra}"
    )


def _functions(folder: Path, app_id: str = "app-a", declared: tuple[str, ...] = ()) -> list[FunctionResource]:
    return function_resources(load_resources([folder], app_id).others, app_id, declared)


def test_a_document_becomes_the_settings_files_function(tmp_path: Path) -> None:
    spec = (
        "{url: file://functions/function_1.wasm, instanceNum: 2, timeout: 500ms, memoryPages: 64,"
        " poolWait: 2s, config: {greeting: hi, count: 3}}"
    )
    source = _write(tmp_path / "res", _document(spec=spec))
    [function] = _functions(tmp_path / "res")
    settings = function.settings
    assert settings.name == "id_1"
    assert settings.path == tmp_path / "res" / "functions" / "function_1.wasm"
    assert (settings.instance_num, settings.timeout, settings.memory_pages, settings.pool_wait) == (
        2,
        0.5,
        64,
        2.0,
    )
    assert settings.config == {"greeting": "hi", "count": "3"}
    assert function.source == str(source)


def test_defaults_plain_and_absolute_paths(tmp_path: Path) -> None:
    text = _document("a", "{url: sub/a.wasm}") + "---\n" + _document("b", "{url: file:///opt/b.wasm}")
    _write(tmp_path, text)
    a, b = _functions(tmp_path)
    assert a.settings.path == tmp_path / "sub" / "a.wasm"
    assert (a.settings.instance_num, a.settings.timeout, a.settings.memory_pages) == (1, 5.0, 256)
    assert b.settings.path == Path("/opt/b.wasm")


def test_scopes_keep_a_function_for_the_apps_named(tmp_path: Path) -> None:
    _write(tmp_path, _document(extra="scopes: [app-a, app-b]\n"))
    assert [f.settings.name for f in _functions(tmp_path, "app-a")] == ["id_1"]
    assert _functions(tmp_path, "app-c") == []


def test_other_kinds_are_left_to_their_readers(tmp_path: Path) -> None:
    _write(tmp_path, "apiVersion: dapr.io/v1alpha1\nkind: Resiliency\nmetadata: {name: r}\nspec: {}\n")
    assert _functions(tmp_path) == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (_document(spec="{}"), "function 'id_1': field 'spec.url': the module's url is required"),
        (
            _document(spec="{url: 'https://x/f.wasm'}"),
            "field 'spec.url': url 'https://x/f.wasm': this sidecar",
        ),
        (_document(spec="{url: f.wasm, instanceNum: 0}"), "field 'spec.instanceNum': must be at least 1"),
        (_document(spec="{url: f.wasm, timeout: soon}"), "field 'spec.timeout': "),
        (
            _document(spec="{url: f.wasm, memoryPages: x}"),
            "field 'spec.memoryPages': 'x' is not a whole number",
        ),
        (_document(spec="{url: f.wasm, path: g.wasm}"), "field 'spec.path': unknown field (known: config,"),
        (_document(spec="[]"), "field 'spec': a function needs a spec"),
        (_document().replace("l8.dev", "dapr.io"), "field 'apiVersion': apiVersion must be l8.dev/v1alpha1"),
        ("apiVersion: l8.dev/v1alpha1\nkind: WasmFunction\nspec: {url: f.wasm}\n", "field 'metadata.name'"),
        (_document(extra="scopes: app-a\n"), "field 'scopes': scopes must be a list"),
    ],
)
def test_a_bad_document_names_its_file_and_field(tmp_path: Path, text: str, message: str) -> None:
    source = _write(tmp_path, text)
    with pytest.raises(ResourceError) as caught:
        _functions(tmp_path)
    assert str(caught.value).startswith(f"{source}: ")
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_name_declared_twice_is_refused(tmp_path: Path) -> None:
    _write(tmp_path, _document(), "a.yaml")
    second = _write(tmp_path, _document(), "b.yaml")
    with pytest.raises(ResourceError, match="duplicate function name") as caught:
        _functions(tmp_path)
    assert str(caught.value).startswith(f"{second}: function 'id_1': field 'metadata.name'")
    assert str(tmp_path / "a.yaml") in str(caught.value)


def test_a_name_of_the_settings_file_is_refused(tmp_path: Path) -> None:
    _write(tmp_path, _document())
    with pytest.raises(ResourceError, match=r"also declared in the settings file \(wasm.functions\)"):
        _functions(tmp_path, declared=("id_1",))


def test_the_deploy_functions_load() -> None:
    """deploy/wasm/functions: Layotto's demo pair as WasmFunction documents."""
    folder = ROOT / "deploy" / "wasm" / "functions"
    functions = _functions(folder, "myapp")
    assert [(f.settings.name, f.settings.path) for f in functions] == [
        ("id_1", folder / "function_1.wasm"),
        ("id_2", folder / "function_2.wasm"),
    ]
    assert functions[1].settings.memory_pages == 64
