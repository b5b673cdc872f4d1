"""System checks of the deployment (`manage.py check`, run by `make check` and at start-up of
`runserver`): what a page needs that the set-up builds."""

from pathlib import Path

from django.conf import settings
from django.core.checks import Error, Tags, register

# Every page loads these; without them collectstatic's manifest has no entry and pages are 500s.
VENDORED_FILES = ("vendor/htmx.min.js", "vendor/chart.umd.min.js")


@register(Tags.staticfiles, deploy=False)
def vendored_assets_present(app_configs=None, **kwargs) -> list[Error]:
    vendor = Path(settings.VENDOR_DIR)
    missing = [name for name in VENDORED_FILES if not (vendor / name).exists()]
    if not missing:
        return []
    return [
        Error(
            f"Vendored front-end files are missing from {vendor}: {', '.join(missing)}.",
            hint="Run `make assets` in the checkout (npm packages and Rerun's web viewer).",
            id="core.E001",
        )
    ]
