"""Audio is not recorded unless the embodiment declares it: the validator refuses a file that
carries anything named like audio (a group, a dataset, an attribute) that the embodiment
spec does not list as an observation, and accepts the same recording once it does."""

from __future__ import annotations

import numpy as np
import pytest

from proving_ground.episode.spec import EmbodimentSpec, is_audio_name
from proving_ground.episode.validate import validate, validate_isolated
from tests.teleop.hostile_files import SMALL_SPEC, write_episode

#: SMALL_SPEC with a microphone declared: 160 int16 samples a control step (32 kHz at 200 Hz).
AUDIO_SPEC = {
    **SMALL_SPEC,
    "observations": {**SMALL_SPEC["observations"], "audio": {"shape": [160], "dtype": "int16"}},
}


def _add(path, where: str, rows: int | None = None, attribute: str | None = None):
    import h5py

    with h5py.File(path, "r+") as f:
        if attribute is not None:
            f[where].attrs[attribute] = np.zeros(16, dtype=np.int16)
        else:
            f.create_dataset(where, data=np.zeros((rows or 10, 160), dtype=np.int16))
    return path


@pytest.mark.parametrize(
    "name", ["audio", "mic_left", "Microphone0", "voice-pcm", "speech", "sound", "cam_audio"]
)
def test_names_that_say_audio_are_audio(name):
    assert is_audio_name(name)


@pytest.mark.parametrize(
    "name", ["qpos", "qvel", "images", "microwave_door", "waveform", "cam_high", "gripper"]
)
def test_other_names_are_not(name):
    assert not is_audio_name(name)


@pytest.mark.parametrize(
    ("where", "path"),
    [
        ("/audio/pcm", "/audio"),  # a group of the writer's own: refused once, as a whole
        ("/microphone", "/microphone"),
        ("/extras/mic_left", "/extras/mic_left"),
    ],
)
def test_an_undeclared_audio_stream_anywhere_is_refused(tmp_path, where, path):
    file = _add(write_episode(tmp_path / "e.h5"), where)
    report = validate(file, SMALL_SPEC)
    assert not report.ok
    refused = [p for p in report.problems if p.code == "audio_not_declared"]
    assert [(p.path, p.severity) for p in refused] == [(path, "error")]
    assert "does not declare" in refused[0].message


def test_an_undeclared_audio_observation_is_refused_not_merely_unexpected(tmp_path):
    steps = 200  # one second at 200 Hz: as long as the other observations
    file = _add(write_episode(tmp_path / "e.h5"), "/observations/audio", rows=steps)
    report = validate(file, SMALL_SPEC)
    assert not report.ok
    assert [(p.code, p.path) for p in report.problems] == [
        ("audio_not_declared", "/observations/audio")
    ]


def test_audio_in_an_attribute_is_refused_too(tmp_path):
    file = _add(write_episode(tmp_path / "e.h5"), "/observations/qpos", attribute="audio_clip")
    report = validate(file, SMALL_SPEC)
    assert [(p.code, p.path) for p in report.problems] == [
        ("audio_not_declared", "/observations/qpos@audio_clip")
    ]


def test_without_a_spec_nothing_is_declared(tmp_path):
    file = _add(write_episode(tmp_path / "e.h5"), "/audio")
    assert "audio_not_declared" in validate(file).codes
    assert "audio_not_declared" in validate_isolated(file).codes


def test_audio_the_embodiment_declares_is_recorded_and_accepted(tmp_path):
    assert EmbodimentSpec.from_dict(AUDIO_SPEC).audio_observations == ("audio",)
    assert EmbodimentSpec.from_dict(SMALL_SPEC).audio_observations == ()
    file = write_episode(tmp_path / "e.h5", AUDIO_SPEC)
    report = validate(file, AUDIO_SPEC)
    assert report.ok and report.problems == []
    # The same file against an embodiment that does not declare it is refused.
    refused = validate(file, SMALL_SPEC)
    assert [(p.code, p.path) for p in refused.problems] == [
        ("audio_not_declared", "/observations/audio")
    ]
