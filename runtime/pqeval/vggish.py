"""VGGish in numpy + ONNX Runtime: log-mel examples and embeddings.

Reproduces torchvggish 0.2 ``vggish_input.waveform_to_examples`` (itself Google's
``vggish_input.py`` / ``mel_features.py`` from tensorflow/models research/audioset):
resample to 16 kHz (resampy kaiser_best, see ``pqeval.resample``: the 0.2.x filter by default,
what an environment with openl3 0.4.2 and torchvggish runs; ``resampler="kaiser_best_0.3"`` for
torchvggish beside resampy >= 0.3), 25 ms periodic-Hann frames
every 10 ms, |rfft| with 512 points, 64 HTK-mel bands from 125 to 7500 Hz (bin 0 zeroed),
``log(mel + 0.01)``, then non-overlapping 96-frame (0.96 s) examples. The same numpy operations
in the same order make the float64 features bit-identical at 16 kHz.

The ONNX model (``pqeval export vggish``) takes examples [B, 1, 96, 64] float32 and returns
three outputs: ``embedding_raw`` (before the final ReLU: Google's TF VGGish embedding),
``embedding`` (after it: torchvggish's, see torchvggish issue #24) and ``postprocessed``
(torchvggish's PCA + clip to [-2, 2] + 8-bit quantisation of ``embedding``, values 0..255).
"""

from __future__ import annotations

import numpy as np

from .audio import as_signal
from .embedding import Embedding
from .errors import AudioError
from .registry import VGGISH, VGGISH_OUTPUTS
from .resample import DEFAULT_FILTER, RangeResampler, output_length, resample
from .session import OnnxModel
from .threads import blas_single_thread

SAMPLE_RATE = VGGISH.sample_rate  # 16 kHz
STFT_WINDOW_SECONDS = 0.025
STFT_HOP_SECONDS = 0.010
NUM_MEL_BINS = 64
MEL_MIN_HZ = 125.0
MEL_MAX_HZ = 7500.0
LOG_OFFSET = 0.01
EXAMPLE_SECONDS = 0.96  # window and hop of one example
_FFT_ROWS = 64  # frames per FFT call in log_mel (its buffers stay in the CPU's cache)
_RFFT_OUT = np.lib.NumpyVersion(np.__version__) >= "2.0.0"  # np.fft.rfft(..., out=)
_MEL_BREAK_HZ = 700.0
_MEL_HIGH_Q = 1127.0

OUTPUTS = VGGISH_OUTPUTS
FRONTEND_PARAMS = {
    "sample_rate": SAMPLE_RATE,
    "stft_window_seconds": STFT_WINDOW_SECONDS,
    "stft_hop_seconds": STFT_HOP_SECONDS,
    "fft_length": 512,
    "window": "periodic hann",
    "mel_bins": NUM_MEL_BINS,
    "mel_scale": "htk",
    "mel_min_hz": MEL_MIN_HZ,
    "mel_max_hz": MEL_MAX_HZ,
    "log_offset": LOG_OFFSET,
    "example_seconds": EXAMPLE_SECONDS,
    "resampler": "resampy kaiser_best (0.2.x filter by default, see pqeval.resample)",
}


def hertz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    """HTK mel scale: 1127 ln(1 + f/700)."""
    return _MEL_HIGH_Q * np.log(1.0 + (hz / _MEL_BREAK_HZ))


def _frame(data: np.ndarray, length: int, hop: int) -> np.ndarray:
    """Complete frames of ``data`` along axis 0 (no padding): [num_frames, length, ...] view."""
    n = 1 + (data.shape[0] - length) // hop
    shape = (n, length) + data.shape[1:]
    strides = (data.strides[0] * hop,) + data.strides
    return np.lib.stride_tricks.as_strided(data, shape=shape, strides=strides, writeable=False)


class VGGishFrontend:
    """Waveform -> VGGish log-mel examples [N, 96, 64] float64; filterbank built once."""

    def __init__(self, resampler: str = DEFAULT_FILTER) -> None:
        self.resampler = resampler
        self.window_length = int(round(SAMPLE_RATE * STFT_WINDOW_SECONDS))  # 400
        self.hop_length = int(round(SAMPLE_RATE * STFT_HOP_SECONDS))  # 160
        self.fft_length = 2 ** int(np.ceil(np.log(self.window_length) / np.log(2.0)))  # 512
        self.window = 0.5 - (0.5 * np.cos(2 * np.pi / self.window_length * np.arange(self.window_length)))
        self.mel_matrix = self._mel_matrix(self.fft_length // 2 + 1)
        self.example_frames = int(round(EXAMPLE_SECONDS / STFT_HOP_SECONDS))  # 96
        # Fewest 16 kHz samples that give one example: 0.975 s.
        self.min_samples = self.window_length + (self.example_frames - 1) * self.hop_length

    @staticmethod
    def _mel_matrix(num_bins: int) -> np.ndarray:
        """[num_bins, 64] HTK triangular weights, as mel_features.spectrogram_to_mel_matrix."""
        bins_mel = hertz_to_mel(np.linspace(0.0, SAMPLE_RATE / 2.0, num_bins))
        edges = np.linspace(hertz_to_mel(MEL_MIN_HZ), hertz_to_mel(MEL_MAX_HZ), NUM_MEL_BINS + 2)
        m = np.empty((num_bins, NUM_MEL_BINS))
        for i in range(NUM_MEL_BINS):
            lo, mid, hi = edges[i : i + 3]
            m[:, i] = np.maximum(0.0, np.minimum((bins_mel - lo) / (mid - lo), (hi - bins_mel) / (hi - mid)))
        m[0, :] = 0.0
        return m

    def log_mel(self, x16k: np.ndarray) -> np.ndarray:
        """16 kHz mono signal (n,) -> log-mel spectrogram [frames, 64] float64.

        The frames are windowed, zero-padded to 512 points and transformed _FFT_ROWS at a time in
        reused buffers (the same values as one ``rfft(frames * window, 512)`` of all of them);
        the mel product and the log run on the whole spectrogram, as Google's code does.
        """
        frames = _frame(x16k, self.window_length, self.hop_length)
        n = len(frames)
        spec = np.empty((n, self.fft_length // 2 + 1))
        rows = max(1, min(n, _FFT_ROWS))
        padded = np.zeros((rows, self.fft_length))  # columns past the window stay 0
        spectrum = np.empty((rows, self.fft_length // 2 + 1), dtype=np.complex128)
        for r in range(0, n, rows):
            m = min(rows, n - r)
            np.multiply(frames[r : r + m], self.window, out=padded[:m, : self.window_length])
            z = np.fft.rfft(padded[:m], out=spectrum[:m]) if _RFFT_OUT else np.fft.rfft(padded[:m])
            np.abs(z, out=spec[r : r + m])
        mel = np.dot(spec, self.mel_matrix)
        mel += LOG_OFFSET
        return np.log(mel, out=mel)

    def examples(self, audio: np.ndarray, sr: int) -> np.ndarray:
        """Mono float signal at ``sr`` Hz -> examples [N, 96, 64] float64 (N = 0 under 0.975 s)."""
        x = np.asarray(audio, dtype=np.float64)
        if sr != SAMPLE_RATE:
            x = resample(x, sr, SAMPLE_RATE, filter=self.resampler)
        if len(x) < self.min_samples:
            return np.zeros((0, self.example_frames, NUM_MEL_BINS))
        log_mel = self.log_mel(x)
        return _frame(log_mel, self.example_frames, self.example_frames)


class VGGishEmbedder:
    """VGGish embeddings of a clip, ``batch_size`` examples (0.96 s each) per ORT call.

    output: "postprocessed" (default; torchvggish's ``vggish()`` output, what the study used),
    "embedding" (torchvggish before PCA) or "embedding_raw" (before the final ReLU, as TF VGGish).

    batch_size: examples per ORT call; 16 keeps memory flat on long clips (docs/measurements.md).
    resampler: the resampy filter generation torchvggish runs beside (registry.VGGISH_RESAMPLERS).
    """

    name = VGGISH.name

    def __init__(
        self, model: OnnxModel, output: str = "postprocessed", batch_size: int = 16, resampler: str = DEFAULT_FILTER
    ) -> None:
        if output not in OUTPUTS:
            raise ValueError(f"output must be one of {OUTPUTS}, got {output!r}")
        self.model = model
        self.output = output
        self.batch_size = batch_size
        self.frontend = VGGishFrontend(resampler)

    def run_examples(self, examples: np.ndarray) -> np.ndarray:
        """[N, 96, 64] -> [N, 128] float32 (the selected output)."""
        x = examples[:, None, :, :].astype(np.float32)
        parts = [
            self.model.run({"examples": x[i : i + self.batch_size]}, [self.output])[0]
            for i in range(0, len(x), self.batch_size)
        ]
        return np.concatenate(parts) if parts else np.zeros((0, 128), np.float32)

    def embed(self, audio: np.ndarray, sr: int) -> Embedding:
        """Mono float64 signal -> Embedding with frames [N, 128] and times N × 0.96 s.

        Streams: the 16 kHz signal and its log-mel features are made for ``batch_size`` examples
        at a time (ranges of :class:`~pqeval.resample.RangeResampler`, i.e. ``resample_range``)
        and go straight through the model, so memory beyond the signal itself is
        bounded by the batch however long the clip (and the signal itself too, when ``audio`` is
        :class:`~pqeval.audio.LazySamples` read from disk); the frames are bit-identical to
        ``run_examples(frontend.examples(audio, sr))`` (same operations on the same samples).
        Raises AudioError for clips shorter than 0.975 s (VGGish yields no example).
        """
        fe = self.frontend
        x = as_signal(audio)  # an array, or LazySamples read batch by batch
        n16 = output_length(len(x), sr, SAMPLE_RATE, fe.resampler)
        if n16 < fe.min_samples:
            raise AudioError(f"too short for VGGish: {len(audio) / sr:.3f} s, it needs at least {VGGISH.min_seconds} s")
        n_examples = (1 + (n16 - fe.window_length) // fe.hop_length) // fe.example_frames
        example_samples = fe.example_frames * fe.hop_length  # 15360 samples between examples
        x16 = RangeResampler(x, sr, SAMPLE_RATE, fe.resampler)  # batches share the chunk at their boundary
        parts = []
        with blas_single_thread():  # numpy between ORT runs must not fight ORT's threads (threads.py)
            for first in range(0, n_examples, self.batch_size):
                count = min(self.batch_size, n_examples - first)
                lo = first * example_samples
                hi = lo + (count * fe.example_frames - 1) * fe.hop_length + fe.window_length
                block = x16.view(lo, hi)  # = resample_range(x, sr, 16000, lo, hi); a plain slice at 16 kHz
                log_mel = fe.log_mel(block)  # exactly count × 96 frames
                parts.append(self.run_examples(_frame(log_mel, fe.example_frames, fe.example_frames)))
        frames = np.concatenate(parts)
        times = np.arange(len(frames)) * EXAMPLE_SECONDS
        return Embedding(frames, times, self.name, self.model.weights)
