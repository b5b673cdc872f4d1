"""System checks of the deployment (`manage.py check`, run by `make check` with warnings as
failures, and shown by `migrate` and `runserver`): what a page needs that the set-up builds.
A warning, not an error: `migrate` must still run before the assets are built."""

from pathlib import Path

from django.conf import settings
from django.core.checks import Tags, Warning, register

# Every page loads these; without them collectstatic's manifest has no entry and pages are 500s.
VENDORED_FILES = ("vendor/htmx.min.js", "vendor/chart.umd.min.js")


@register(Tags.staticfiles, deploy=False)
def vendored_assets_present(app_configs=None, **kwargs) -> list[Warning]:
    vendor = Path(settings.VENDOR_DIR)
    missing = [name for name in VENDORED_FILES if not (vendor / name).exists()]
    if not missing:
        return []
    return [
        Warning(
            f"Vendored front-end files are missing from {vendor}: {', '.join(missing)}; "
            "pages will fail to render once static files are collected.",
            hint="Run `make assets` in the checkout (npm packages and Rerun's web viewer).",
            id="core.W001",
        )
    ]
