"""The generic registry: decorator, lazy targets, duplicates, did-you-mean, plugin shadowing."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from culbench.catalog import METHODS
from culbench.errors import RegistryError
from culbench.registry import Registry


def test_decorator_and_lookup() -> None:
    reg: Registry[type] = Registry("widget")

    @reg.register("alpha")
    class Alpha:
        """Alpha widget."""

    assert reg.get("alpha") is Alpha
    assert reg.entry("alpha").summary == "Alpha widget."
    assert reg.names() == ["alpha"]


def test_duplicate_names_raise() -> None:
    reg: Registry[object] = Registry("widget")
    reg.register("a", object())
    with pytest.raises(RegistryError, match="duplicate widget name 'a'"):
        reg.register("a", object())
    reg.register_lazy("b", "json:dumps")
    with pytest.raises(RegistryError, match="duplicate widget name 'b'"):
        reg.register_lazy("b", "json:loads")


def test_unknown_name_suggests_close_matches() -> None:
    reg: Registry[object] = Registry("method")
    reg.register("original", object())
    with pytest.raises(RegistryError) as info:
        reg.get("orignal")
    assert "did you mean: original" in str(info.value)
    assert "\n" not in str(info.value)


def test_lazy_entries_import_on_first_get(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "lazy_mod_xyz.py").write_text("VALUE = 42\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    reg: Registry[int] = Registry("number")
    reg.register_lazy("answer", "lazy_mod_xyz:VALUE")
    assert "lazy_mod_xyz" not in sys.modules
    assert reg.get("answer") == 42


def test_a_check_named_by_string_is_imported_on_first_get(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "check_mod_xyz.py").write_text(
        "from culbench.errors import RegistryError\n"
        "def check(name, obj):\n"
        "    if obj < 0:\n"
        "        raise RegistryError(f'{name} is negative', 'register a positive number')\n")
    (tmp_path / "values_xyz.py").write_text("GOOD = 1\nBAD = -1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    reg: Registry[int] = Registry("number", check="check_mod_xyz:check")
    reg.register_lazy("good", "values_xyz:GOOD")
    reg.register_lazy("bad", "values_xyz:BAD")
    assert "check_mod_xyz" not in sys.modules  # building the registry imports nothing
    assert reg.get("good") == 1
    with pytest.raises(RegistryError, match="bad is negative"):
        reg.get("bad")


def test_broken_lazy_target_is_a_clear_error() -> None:
    reg: Registry[object] = Registry("method")
    reg.register_lazy("ghost", "no_such_module_abc:Thing")
    with pytest.raises(RegistryError, match="could not be loaded"):
        reg.get("ghost")


def test_plugin_may_not_shadow_builtin() -> None:
    reg: Registry[object] = Registry("method")
    reg.register_lazy("esd", "json:dumps")
    with pytest.raises(RegistryError, match="built-in name"):
        reg.register_lazy("esd", "json:loads", source="plugin evil==1.0")


def test_builtin_methods_are_found_without_importing_them() -> None:
    entry = METHODS.entry("original")
    assert entry.target == "culbench.methods.original:Original"
    assert entry.source == "builtin"
    cls = METHODS.get("original")
    assert cls.__name__ == "Original"


def test_method_without_frozen_config_is_rejected() -> None:
    from culbench.api import register_method

    with pytest.raises(RegistryError, match="frozen Config"):

        @register_method("tmp_bad_method")
        class Bad:
            def unlearn(self, model, request, ctx):
                return model

        METHODS._entries["tmp_bad_method"].obj = None
        METHODS._entries["tmp_bad_method"].target = f"{__name__}:Bad"
        globals()["Bad"] = Bad
        try:
            METHODS.get("tmp_bad_method")
        finally:
            METHODS.unregister("tmp_bad_method")


def test_importing_a_builtin_method_before_discovery_is_fine() -> None:
    import subprocess
    import sys

    code = ("import culbench.methods.dfr; from culbench.catalog import METHODS; "
            "print(sorted(METHODS.names()))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "'dfr'" in done.stdout, done.stderr[-2000:]


_METHOD_SOURCE = ("from dataclasses import dataclass\nfrom culbench.api import Method\n"
                  "class Declared({base}):\n    @dataclass(frozen=True)\n    class Config:\n        pass\n"
                  "    {body}\n    def unlearn(self, model, request, ctx):\n        return model\n")


@pytest.mark.parametrize(("module", "base", "body", "message"), [
    ("decl_backends_xyz", "Method", "backends = 'toyworld'", "backends = 'toyworld', not a tuple of names"),
    ("decl_trains_xyz", "Method", "trains = 'full'", "trains = 'full', not a tuple of names"),
    ("decl_bare_xyz", "object", "pass", "does not declare trains, backends, from_scratch.*subclass culbench.api.Method"),
])
def test_method_declarations_are_checked(module: str, base: str, body: str, message: str, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / f"{module}.py").write_text(_METHOD_SOURCE.format(base=base, body=body))
    monkeypatch.syspath_prepend(str(tmp_path))
    METHODS.register_lazy("tmp_declared_method", f"{module}:Declared")
    try:
        with pytest.raises(RegistryError, match=message):
            METHODS.get("tmp_declared_method")
    finally:
        METHODS.unregister("tmp_declared_method")
