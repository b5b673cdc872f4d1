"""Every stored field is classified in `core.privacy` (docs/privacy.md)."""

from __future__ import annotations

from django.apps import apps

from core import privacy


def _stored_fields(model) -> set[str]:
    return {f.name for f in model._meta.concrete_fields} | {
        f.name for f in model._meta.many_to_many
    }


def test_every_field_of_every_model_is_classified_and_no_entry_is_stale():
    unclassified, stale = [], []
    seen = set()
    for model in apps.get_models():
        if model._meta.app_label not in privacy.CLASSIFIED_APPS:
            continue
        label = model._meta.label_lower
        seen.add(label)
        known = privacy.CLASSIFICATION.get(label, {})
        fields = _stored_fields(model)
        unclassified += [f"{label}.{name}" for name in sorted(fields - set(known))]
        stale += [f"{label}.{name}" for name in sorted(set(known) - fields)]
    stale += [label for label in privacy.CLASSIFICATION if label not in seen]
    assert not unclassified, f"classify these fields in core/privacy.py: {unclassified}"
    assert not stale, f"core/privacy.py names fields that do not exist: {stale}"


def test_identity_lives_where_the_docs_say():
    identity = privacy.fields_of_kind(privacy.Kind.IDENTITY)
    assert identity["core.operatoridentity"] == ("full_name", "email")
    assert "username" in identity["auth.user"]
    # The pseudonym is not identity; the link from it to an account is.
    assert privacy.kind_of("core.Operator", "code") == privacy.Kind.PSEUDONYMOUS
    assert privacy.kind_of("core.Operator", "user") == privacy.Kind.IDENTITY


def test_the_privacy_doc_lists_every_identity_field():
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "privacy.md").read_text()
    for label, names in privacy.fields_of_kind(privacy.Kind.IDENTITY).items():
        for name in names:
            assert f"`{label}.{name}`" in doc, f"docs/privacy.md does not list {label}.{name}"
