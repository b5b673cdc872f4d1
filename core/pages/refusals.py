"""A service's refusal shown on a page's form: each message beside the field it names."""

from __future__ import annotations

from django import forms

from core.errors import DomainError


def show_refusal(form: forms.Form, exc: DomainError, *, aliases: dict[str, str] | None = None):
    """Put `exc`'s messages on `form`: each of `exc.fields` beside its field (a service's
    field name may be mapped to the form's through `aliases`), the rest, or the detail when
    no field of the form is named (an export refused for its episodes names them, not a
    field: their ids alone would not say why), above the form."""
    aliases = aliases or {}
    if not any(aliases.get(name, name) in form.fields for name in exc.fields or {}):
        form.add_error(None, exc.detail)
        return
    for name, field_messages in (exc.fields or {}).items():
        name = aliases.get(name, name)
        messages = field_messages if isinstance(field_messages, list) else [field_messages]
        target = name if name in form.fields else None
        for message in messages:
            form.add_error(target, str(message))
