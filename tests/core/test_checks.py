"""System checks: a deployment missing what the set-up builds is told so, not served 500s."""

from core.checks import vendored_assets_present


def test_missing_vendored_files_are_a_warning_naming_make_assets(settings, tmp_path):
    settings.VENDOR_DIR = tmp_path
    (error,) = vendored_assets_present()
    assert error.id == "core.W001" and "htmx.min.js" in error.msg
    assert "make assets" in error.hint


def test_the_checkout_has_its_vendored_files():
    assert vendored_assets_present() == []


def test_vendored_files_do_not_move_with_the_state_directory(monkeypatch, tmp_path):
    import importlib

    from core import settings as settings_module

    monkeypatch.setenv("PG_VAR_DIR", str(tmp_path))
    try:
        moved = importlib.reload(settings_module)
        assert moved.MEDIA_ROOT == tmp_path / "media"
        assert moved.VENDOR_DIR == moved.BASE_DIR / "var" / "vendor"
    finally:
        monkeypatch.delenv("PG_VAR_DIR")
        importlib.reload(settings_module)
