"""The tiny stand-in models (tests/tiny_models.py) keep the real exports' contract.

The runtime tier checks them against what pqeval reads (names, shapes, metadata, provenance) and
against their own numpy definition; the parity tier checks that they mirror the real seeded
exports (same inputs, outputs, metadata keys and sidecar layout), so a change to the export
that the tiny models miss fails here rather than passing silently elsewhere.
"""

import json

import numpy as np
import pytest

from tiny_models import OPENL3_KEY, VARIANT, openl3_numpy, vggish_numpy

KEYS = ("vggish", OPENL3_KEY)


def _io(path):
    """{name: (elem_type, shape with symbolic dims as None)} of the graph's inputs and outputs."""
    import onnx

    g = onnx.load(str(path), load_external_data=False).graph

    def dims(v):
        return tuple(d.dim_value if d.HasField("dim_value") else None for d in v.type.tensor_type.shape.dim)

    return (
        {v.name: (v.type.tensor_type.elem_type, dims(v)) for v in g.input},
        {v.name: (v.type.tensor_type.elem_type, dims(v)) for v in g.output},
    )


def test_runtime_reads_them_as_seeded_test_models(models_dir):
    from pqeval.openl3 import INPUT_NAME, OUTPUT_NAME, OpenL3Embedder
    from pqeval.session import OnnxModel
    from pqeval.vggish import OUTPUTS

    v = OnnxModel(models_dir / "vggish.onnx", threads=1)
    o = OnnxModel(models_dir / f"{OPENL3_KEY}.onnx", threads=1)
    for m in (v, o):
        assert m.weights == "seeded:0" and m.provenance.kind == "seeded" and not m.provenance.perceptual
        assert m.metadata["pqeval.variant"] == VARIANT
        m.check_integrity()
    assert v.session.input_names == ["examples"]
    assert sorted(v.session.output_names) == sorted(OUTPUTS)
    assert o.session.input_names == [INPUT_NAME]
    assert o.session.output_names == [OUTPUT_NAME]
    OpenL3Embedder(o)  # accepts the recorded frontend parameters
    assert json.loads(v.sidecar["metadata"]["pqeval.verify"])["cosine_min"] >= 0.99999


def test_onnx_equals_numpy_definition(models_dir):
    from pqeval.session import OnnxModel

    rng = np.random.default_rng(3)
    ex = rng.normal(-3, 2, (5, 1, 96, 64)).astype(np.float32)
    got = OnnxModel(models_dir / "vggish.onnx", threads=1).run(
        {"examples": ex}, ["embedding_raw", "embedding", "postprocessed"]
    )
    want = vggish_numpy(ex)
    np.testing.assert_allclose(got[0], want["embedding_raw"], rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(got[1], np.maximum(got[0], 0))  # embedding = ReLU(raw)
    assert (got[0] < 0).any() and got[2].min() >= 0 and got[2].max() <= 255
    assert np.array_equal(got[2], np.round(got[2]))  # 8-bit values
    spec = rng.uniform(-80, 0, (3, 256, 199, 1)).astype(np.float32)
    e = OnnxModel(models_dir / f"{OPENL3_KEY}.onnx", threads=1).run({"spectrogram": spec})[0]
    assert e.shape == (3, 512)
    np.testing.assert_allclose(e, openl3_numpy(spec), rtol=1e-4, atol=1e-5)


def test_noisier_audio_scores_lower(models_dir):
    """What the CLI/batch/study tests rely on: cosine falls as noise grows (for both models)."""
    from helpers import read
    from pqeval.openl3 import OpenL3Embedder
    from pqeval.session import OnnxModel
    from pqeval.similarity import cosine_per_frame
    from pqeval.vggish import VGGishEmbedder

    x, sr = read("speech_libri_198_f.wav")
    x = x[: 4 * sr]
    rng = np.random.default_rng(0)
    noise = rng.standard_normal(len(x))
    for emb in (
        VGGishEmbedder(OnnxModel(models_dir / "vggish.onnx", threads=1)),
        OpenL3Embedder(OnnxModel(models_dir / f"{OPENL3_KEY}.onnx", threads=1), hop=0.5),
    ):
        ref = emb.embed(x, sr).frames
        cos = [float(np.mean(cosine_per_frame(ref, emb.embed(x + s * noise, sr).frames))) for s in (0.001, 0.01, 0.1)]
        assert 1 >= cos[0] > cos[1] > cos[2], (emb.name, cos)


@pytest.mark.parity
@pytest.mark.parametrize("key", KEYS)
def test_tiny_models_mirror_the_real_exports(models_dir, exported_models_dir, key):
    tiny, real = models_dir / f"{key}.onnx", exported_models_dir / f"{key}.onnx"
    assert _io(tiny) == _io(real)
    t_side = json.loads(tiny.with_name(tiny.name + ".json").read_text())
    r_side = json.loads(real.with_name(real.name + ".json").read_text())
    assert set(t_side) == set(r_side)  # file, sha256, size, metadata (+ external_data for VGGish)
    assert set(t_side["metadata"]) == set(r_side["metadata"])
    for k in ("pqeval.model_id", "pqeval.weights", "pqeval.frontend"):
        assert t_side["metadata"][k] == r_side["metadata"][k], k
    if "pqeval.outputs" in r_side["metadata"]:
        assert set(json.loads(t_side["metadata"]["pqeval.outputs"])) == set(
            json.loads(r_side["metadata"]["pqeval.outputs"])
        )
