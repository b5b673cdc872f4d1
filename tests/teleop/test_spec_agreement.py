"""The embodiment spec is parsed twice on purpose: `core.embodiment_spec` on the server (JSON
Schema, strict) and `proving_ground.episode` on the robot (no `core`, no jsonschema, so a robot
needs only that file, h5py, numpy and Pillow). These tests keep the two from drifting: whatever the
server accepts, the robot reads the same; what either refuses for a reason the other checks,
both refuse."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core import embodiment_spec as server
from proving_ground.episode import spec as robot

KEY = st.from_regex(r"\A[a-z][a-z0-9_]{0,12}\Z")
ARRAY = st.fixed_dictionaries(
    {
        "shape": st.lists(st.integers(1, 64), min_size=0, max_size=server.MAX_RANK),
        "dtype": st.sampled_from(server.ALLOWED_DTYPES),
    }
)
CAMERA = st.fixed_dictionaries(
    {
        "width": st.integers(1, 4096),
        "height": st.integers(1, 4096),
        "fps": st.one_of(st.integers(1, 120), st.floats(0.5, 120)),
    }
)


@st.composite
def specs(draw):
    observations = draw(
        st.dictionaries(KEY.filter(lambda k: k != "images"), ARRAY, min_size=1, max_size=4)
    )
    names = draw(st.lists(KEY, max_size=3, unique=True))
    spec = {
        "joint_names": draw(st.lists(st.text(min_size=1, max_size=8), max_size=8, unique=True)),
        "observations": observations,
        "action": draw(ARRAY),
        "cameras": [{"name": name, **draw(CAMERA)} for name in names],
        "control_hz": draw(st.one_of(st.integers(1, 1000), st.floats(0.5, 1000))),
    }
    if draw(st.booleans()):
        spec["name"] = draw(st.text(max_size=20))
    return spec


def test_both_sides_allow_the_same_dtypes_and_reserve_the_same_keys():
    assert robot.ALLOWED_DTYPES == server.ALLOWED_DTYPES
    assert robot.RESERVED_OBSERVATION_KEYS == server.RESERVED_OBSERVATION_KEYS == ("images",)


@settings(max_examples=200, deadline=None)
@given(specs())
def test_what_the_server_accepts_the_robot_reads_the_same(spec):
    parsed = server.parse_embodiment_spec(spec)
    on_robot = robot.EmbodimentSpec.from_dict(spec)
    assert on_robot.to_dict() == parsed.to_dict()
    # And back: the robot writes to_dict() into every episode; the server accepts it.
    assert server.parse_embodiment_spec(on_robot.to_dict()) == parsed


GOOD = {
    "joint_names": ["a", "b"],
    "observations": {"qpos": {"shape": [2], "dtype": "float32"}},
    "action": {"shape": [2], "dtype": "float32"},
    "cameras": [{"name": "cam", "width": 64, "height": 48, "fps": 30}],
    "control_hz": 100,
}
BROKEN = {
    "unknown dtype": {**GOOD, "action": {"shape": [2], "dtype": "object"}},
    "no control rate": {k: v for k, v in GOOD.items() if k != "control_hz"},
    "zero control rate": {**GOOD, "control_hz": 0},
    "no observations": {**GOOD, "observations": {}},
    "bad key": {**GOOD, "observations": {"Q-pos": {"shape": [2], "dtype": "float32"}}},
    "reserved key": {**GOOD, "observations": {"images": {"shape": [1], "dtype": "uint8"}}},
    "rank 5": {**GOOD, "action": {"shape": [1, 1, 1, 1, 1], "dtype": "float32"}},
    "zero dim": {**GOOD, "action": {"shape": [0], "dtype": "float32"}},
    "twin cameras": {**GOOD, "cameras": GOOD["cameras"] * 2},
    "zero-width camera": {**GOOD, "cameras": [{**GOOD["cameras"][0], "width": 0}]},
    "bad camera name": {**GOOD, "cameras": [{**GOOD["cameras"][0], "name": "Cam 1"}]},
    "not an object": ["joint_names"],
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_both_sides_refuse_a_broken_spec(case):
    with pytest.raises(ValueError):
        server.parse_embodiment_spec(BROKEN[case])
    with pytest.raises(ValueError):
        robot.EmbodimentSpec.from_dict(BROKEN[case])
