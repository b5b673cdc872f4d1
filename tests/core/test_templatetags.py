"""Template filters shared by the pages."""

import pytest

from core.templatetags.display import who


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


def test_soft_breaks_lets_a_flag_wrap_after_its_colon_and_escapes_it():
    from core.templatetags.display import soft_breaks

    assert soft_breaks("check_failed:grasp-by-10s") == "check_failed:<wbr>grasp-by-10s"
    assert soft_breaks("<b>:x") == "&lt;b&gt;:<wbr>x"
