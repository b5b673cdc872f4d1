"""Names people give things may not carry bidirectional control characters.

U+202E (right-to-left override) makes `invoice<U+202E>gpj.exe` display as `invoiceexe.jpg`;
the embeddings, isolates and marks below can reorder or hide what a name shows in a page,
a log, a terminal or a download's filename. No name here needs them (a name in Arabic or
Hebrew displays correctly without them), so they are refused where names are written.

Two doors, one rule:

- `refuse_bidi_controls` is a Django validator for form and serializer fields.
- `refuse_bidi_names` runs before every save of a model of ours and raises `InvalidInput`
  (a 400 naming the field) when a name field holds one, so every service that writes a name
  is covered, whichever app it lives in, without a migration of each field's validators.
"""

from django.core.exceptions import ValidationError

from core.errors import InvalidInput

# LRE RLE PDF LRO RLO (U+202A-E), LRI RLI FSI PDI (U+2066-9), LRM RLM (U+200E-F) and the
# Arabic letter mark (U+061C), which acts like RLM.
BIDI_CONTROLS = frozenset(
    "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c"
)
MESSAGE = "Bidirectional control characters (such as U+202E) are not allowed in names."

# Fields of our models that hold a name a person chose (slugs refuse these already).
NAME_FIELDS = frozenset({"name", "code", "label", "full_name", "site", "serial", "alias"})
_OUR_APPS = frozenset({"core", "teleop", "evaluation"})


def has_bidi_control(text: str) -> bool:
    return any(c in BIDI_CONTROLS for c in text)


def refuse_bidi_controls(value) -> None:
    """Validator: raise ValidationError when `value` (a string) holds a bidi control."""
    if isinstance(value, str) and has_bidi_control(value):
        raise ValidationError(MESSAGE, code="bidi_control")


def refuse_bidi_names(sender, instance, **kwargs) -> None:
    """pre_save receiver: refuse a name field holding a bidi control, before it is stored."""
    if sender._meta.app_label not in _OUR_APPS:
        return
    bad = {
        field.name: [MESSAGE]
        for field in sender._meta.concrete_fields
        if field.name in NAME_FIELDS
        and isinstance(value := getattr(instance, field.attname, None), str)
        and has_bidi_control(value)
    }
    if bad:
        raise InvalidInput(MESSAGE, fields=bad)
