"""The registry, the provenance type and ScoreOptions: the facts every layer reads, in one place."""

import dataclasses

import numpy as np
import pytest

from pqeval.audio import from_array
from pqeval.errors import UsageError
from pqeval.provenance import Provenance
from pqeval.registry import (
    DEFAULT_HOP,
    EMBEDDING_METRICS,
    FAMILIES,
    MODELS,
    OPENL3,
    available,
    base_spec,
    export_hint,
    gflop_per_unit,
)
from pqeval.scoring import ScoreOptions, Scorer


def test_every_family_has_its_default_model_and_every_model_a_family():
    assert set(EMBEDDING_METRICS) == set(FAMILIES)
    for f in FAMILIES.values():
        assert f.default_key in MODELS and MODELS[f.default_key].family == f.name
    assert len([m for m in MODELS.values() if m.family == "openl3"]) == 12  # 3 reprs x 2 contents x 2 sizes


def test_export_hints_name_the_variant_and_compact_kind():
    assert export_hint("vggish") == "pqeval export vggish --weights DIR"
    assert export_hint("openl3-mel128-env-6144") == (
        "pqeval export openl3 --input-repr mel128 --content-type env --embedding-size 6144 --weights FILE"
    )
    assert export_hint("vggish-int8fc").endswith("--weights DIR --compact int8fc")
    assert base_spec("vggish-int8qdq") is None  # not a compact kind of VGGish
    assert gflop_per_unit("vggish-fp16") == gflop_per_unit("vggish") > 0
    rows = available()
    assert {r["key"] for r in rows} == set(MODELS) and sum(r["default"] for r in rows) == len(FAMILIES)


@pytest.mark.parametrize(
    "weights, kind, perceptual, note",
    [
        ("pretrained:vggish-10086976.pth abc", "pretrained", True, ""),
        ("seeded:0", "seeded", False, "seeded"),
        ("custom:fine-tuned", "custom", False, "custom"),
        ("unknown", "unknown", False, "not recorded"),
        ("", "unknown", False, "not recorded"),
        ("pretrainedish", "unknown", False, "not recorded"),
    ],
)
def test_provenance_is_parsed_once(weights, kind, perceptual, note):
    p = Provenance.parse(weights)
    assert (p.kind, p.perceptual) == (kind, perceptual)
    assert (note in p.note) if note else p.note == ""


def test_score_options_are_frozen_keyword_only_and_validated():
    o = ScoreOptions(metrics=["vggish", "stoi"])
    assert o.metrics == ("vggish", "stoi") and o.openl3_hop == DEFAULT_HOP and o.openl3_model == OPENL3.default_key
    with pytest.raises(dataclasses.FrozenInstanceError):
        o.openl3_hop = 0.1  # type: ignore[misc]
    with pytest.raises(TypeError):
        ScoreOptions(("vggish",))  # type: ignore[misc]
    for bad in ({"metrics": ("nope",)}, {"length": "pad"}, {"vggish_output": "x"}, {"openl3_hop": 0}, {"threads": 0}):
        with pytest.raises(UsageError):
            ScoreOptions(**bad)


def test_resume_key_follows_every_field_that_changes_numbers():
    """The key is derived from the fields, so a new option cannot be forgotten in it."""
    base = ScoreOptions()
    changed = {
        "metrics": ("vggish",),
        "length": "error",
        "align": "delay",
        "vggish_model": "vggish-int8fc",
        "vggish_output": "embedding",
        "vggish_resampler": "kaiser_best_0.3",
        "openl3_model": "openl3-mel256-env-512",
        "openl3_hop": 0.25,
        "engine": "openvino",
        "precision": "int8",
    }
    for name, value in changed.items():
        assert dataclasses.replace(base, **{name: value}).key() != base.key(), name
    assert {f.name for f in dataclasses.fields(ScoreOptions) if f.metadata.get("changes_numbers", True)} == set(changed)
    same = dataclasses.replace(base, threads=1)
    assert same.key() == base.key()  # threads do not change numbers
    assert base.family_key("openl3") != dataclasses.replace(base, openl3_hop=1.0).family_key("openl3")
    assert base.family_key("vggish") == dataclasses.replace(base, openl3_hop=1.0).family_key("vggish")
    for family in ("vggish", "openl3"):  # engine and precision change every family's frames
        assert base.family_key(family) != dataclasses.replace(base, engine="openvino").family_key(family)
        assert base.family_key(family) != dataclasses.replace(base, precision="int8").family_key(family)
    assert base.embedder_args("openl3") == {"hop": DEFAULT_HOP}
    assert base.embedder_args("vggish") == {"output": "postprocessed", "resampler": "kaiser_best_0.2"}


def test_speech_measures_on_music_are_noted():
    """PESQ/STOI are speech measures: a clean file named as music gets a note (as data)."""
    x = np.sin(2 * np.pi * 440 * np.arange(3 * 16000) / 16000) * 0.5
    y = x + 0.01 * np.random.default_rng(0).standard_normal(len(x))
    scorer = Scorer(ScoreOptions(metrics=("stoi",)))
    music = scorer.score(from_array(x, 16000, "music_tone.wav"), from_array(y, 16000, "deg.wav"))
    speech = scorer.score(from_array(x, 16000, "speech_tone.wav"), from_array(y, 16000, "deg.wav"))
    assert any("speech measures" in n and "music" in n for n in music.notes)
    assert not any("speech measures" in n for n in speech.notes)
