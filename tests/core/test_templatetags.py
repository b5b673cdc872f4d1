"""Template filters shared by the pages."""

import pytest

from core.templatetags.people import who


@pytest.mark.parametrize(
    ("label", "shown"),
    [
        ("user:olga", "olga"),
        ("robot:demo-arm-1", "robot demo-arm-1"),
        ("system", "system"),
        ("", ""),
        (None, ""),
    ],
)
def test_who_names_an_actor_label_for_people(label, shown):
    assert who(label) == shown
