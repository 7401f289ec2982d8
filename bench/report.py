"""results.json -> results.md (Markdown tables, ratios first) and results.png (the plot)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

TARGET_WARM_SPEEDUP = 3.0  # with the fastest path item 2 of issue 14 accepts (score change within noise)
TARGET_FP32_SPEEDUP = 1.2  # ORT fp32, the parity reference
TARGET_COLD_SPEEDUP = 10.0
TARGET_RSS_RATIO = 1 / 3
TARGET_GEMM_SHARE = 0.90
TARGET_PRE_SHARE = {"16000": 0.05, "44100": 0.08}
TARGET_MEM_GROWTH = 1.2
ORIGINAL = {"vggish": "torchvggish", "openl3": "openl3-tf"}
MODEL_FILE = {"vggish": "vggish", "openl3": "openl3-mel256-music-512"}
SEEDED_NOTE = "seeded weights: agreement with the fp32 model on the same random weights, not the real model's accuracy"


def _f(v, fmt: str = ".3g") -> str:
    return "–" if v is None or (isinstance(v, float) and np.isnan(v)) else format(v, fmt)


def engine_precision(variant: str) -> tuple[str, str]:
    """``@openvino-bf16`` -> ("openvino", "bf16"); a compact variant or none -> ORT (its own precision)."""
    if variant.startswith("@"):
        engine, precision = variant[1:].split("-")
        return engine, precision
    return "ort", "int8" if variant.startswith("int8") else "fp16" if variant == "fp16" else "fp32"


def model_stem(kind: str, variant: str) -> str:
    """The model file a pipeline runs: ``vggish``, ``vggish-int8fc``; ``@…-int8`` runs the int8 variant."""
    from pqeval.registry import FAMILIES

    if variant.startswith("@"):
        variant = FAMILIES[kind].int8_kind if variant.endswith("-int8") else ""
    return MODEL_FILE[kind] + (f"-{variant}" if variant else "")


def path_accuracy(res: dict, kind: str, engine: str, precision: str) -> dict | None:
    """bench/accuracy.py's row for this family × engine × precision, if measured."""
    for r in (res.get("accuracy") or {}).get("paths", []):
        if (r["family"], r["engine"], r["precision"]) == (kind, engine, precision) and not r["refused"]:
            return r
    return None


def derived(res: dict) -> dict:
    """Per-pipeline numbers the tables and plot use (ratios against the original of the same model)."""
    pl = res["pipelines"]
    gemm = res["gemm"][str(res["config"]["threads"])]["gflops"]
    best = {kind: best_original(pl, kind) for kind in ORIGINAL}
    out = {}
    for name, r in pl.items():
        kind = r["kind"]
        orig = best[kind]
        per10 = r["warm_median_s"] * 10.0 / r["seconds"]
        gflop = res["flops"][MODEL_FILE[kind]]["gflop_per_unit"]
        stem = model_stem(kind, r["variant"]) if r["family"] == "ours" else MODEL_FILE[kind]
        engine, precision = engine_precision(r["variant"] or "")
        d = {
            "kind": kind,
            "family": r["family"],
            "engine": engine,
            "precision": precision,
            "path_accuracy": path_accuracy(res, kind, engine, precision) if r["family"] == "ours" else None,
            "per10_s": per10,
            "per10_min": min(r["warm_s"]) * 10 / r["seconds"],
            "per10_max": max(r["warm_s"]) * 10 / r["seconds"],
            "n": len(r["warm_s"]),
            "per_unit_ms": 1e3 * r["warm_median_s"] / max(r["units"], 1),
            "units": r["units"],
            "cold_s": r["cold"]["total_s"],
            "cold_overhead_s": r["cold"]["total_s"] - r["cold"]["first_embed_s"],
            "import_s": r["cold"]["import_s"],
            "load_s": r["cold"]["load_s"],
            "rss_mb": r["peak_rss_mb"],
            "first_embed_s": r["cold"]["first_embed_s"],
            "cold_rss_mb": r["cold"]["peak_rss_mb"],
            "inference_gflops": gflop * r["inference_units"] / r["inference_s"] if r["inference_s"] > 0 else None,
            "size_mb": res["files"].get(stem + ".onnx") if r["family"] == "ours" else None,
            "accuracy": (res["prepare"]["compact"].get(stem + ".onnx") or {}).get("accuracy"),
        }
        noise = (res.get("accuracy") or {}).get("noise", {}).get("openl3", {}).get("score_delta_max")
        pa = d["path_accuracy"]
        d["accepted"] = r["family"] == "ours" and (
            (engine, precision) == ("ort", "fp32") or bool(pa and noise is not None and pa["score_delta_max"] < noise)
        )
        d["gemm_share"] = d["inference_gflops"] / gemm if d["inference_gflops"] else None
        if orig is not None:
            d["warm_ratio"] = r["warm_median_s"] / orig["warm_median_s"]
            d["cold_ratio"] = d["cold_s"] / orig["cold_s"]
            d["cold_overhead_ratio"] = d["cold_overhead_s"] / orig["cold_overhead_s"]
            d["rss_ratio"] = d["rss_mb"] / orig["peak_rss_mb"]
        out[name] = d
    return out


def best_original(pl: dict, kind: str) -> dict | None:
    """The original's best number for each measure over its configurations (as shipped, and with
    numpy's BLAS at one thread): ratios are taken against the best, never a handicapped original."""
    rs = [r for r in pl.values() if r["kind"] == kind and r["family"] == "original"]
    if not rs:
        return None
    return {
        "warm_median_s": min(r["warm_median_s"] for r in rs),
        "cold_s": min(r["cold"]["total_s"] for r in rs),
        "cold_overhead_s": min(r["cold"]["total_s"] - r["cold"]["first_embed_s"] for r in rs),
        "peak_rss_mb": min(r["peak_rss_mb"] for r in rs),
        "pipelines": [r["pipeline"] for r in rs],
    }


def _path_acc(a: dict, kind: str) -> str:
    s = f"cos min {a['cosine_min']:.6f}; score Δ max {a['score_delta_max']:.1e}"
    if kind == "vggish":
        s += f"; 8-bit changed {100 * a['changed_8bit_share']:.1f} %"
    return s + (" (within openl3's fp32 noise)" if a.get("within_noise") else "")


def _acc(a: dict | None, kind: str) -> str:
    if not a:
        return "exact (reference)" if a is None else "–"
    s = f"cos min {a['cosine_min']:.6f} / mean {a['cosine_mean']:.6f}"
    if kind == "vggish":
        s += f"; 8-bit changed {100 * a['postprocessed_changed_share']:.1f} % (max {a['postprocessed_max_step']} steps)"
    return s + f" [{a['frames']} frames, seeded]"


def headline(res: dict, d: dict) -> list[str]:
    cfg = res["config"]
    lines = [
        f"Clip: {cfg['seconds']:g} s of real recordings at 16 kHz (../shared/audio, joined); OpenL3 hop {cfg['hop']} s "
        f"(pqeval's default; per-window cost does not depend on the hop); {cfg['threads']} threads everywhere; "
        f"warm = median of {cfg['reps']} runs after a warm-up [min–max]; cold = median of "
        f"{cfg.get('cold_runs', 1)} fresh processes: interpreter + imports + "
        "model load + first embedding of the clip read from disk (page cache warm); peak RSS = VmHWM of that process "
        "(cold + warm runs). Ratios are ours / the original's best over its configurations for each measure "
        "(`-blas1`: the original with numpy's OpenBLAS held to one thread, which pqeval does internally while "
        "embedding and which speeds the originals up too), all measured in the same run; an original's own row shows "
        "it against its better configuration. Model files are verified by sha256 once, then by stat, as a user's "
        "second and later runs see them (first-run hashing times are listed below the table).",
        "",
        (
            "| model | pipeline | warm s per 10 s audio | ms per example/window | warm ours/orig | cold start s "
            "(overhead without first embedding) | cold ours/orig (overhead) | peak RSS MB | RSS ours/orig | model MB "
            "| accuracy vs fp32 |"
        ),
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, x in d.items():
        if x["family"] == "original":
            acc = "reference"
        elif name in ("pqeval-vggish", "pqeval-openl3"):
            acc = "exact (fp32 reference)"
        elif "@" in name:
            acc = _path_acc(x["path_accuracy"], x["kind"]) if x["path_accuracy"] else "–"
        else:
            acc = _acc(x["accuracy"], x["kind"])
        warm = f"{x['per10_s']:.3f} [{x['per10_min']:.3f}–{x['per10_max']:.3f}]"
        mark = "**" if x["family"] == "ours" else ""
        wr = f"{mark}{x['warm_ratio']:.2f}{mark} ({1 / x['warm_ratio']:.2f}× faster)" if "warm_ratio" in x else "–"
        cr = f"{mark}{x['cold_ratio']:.2f}{mark} ({x['cold_overhead_ratio']:.3f})" if "cold_ratio" in x else "–"
        rr = f"{mark}{x['rss_ratio']:.2f}{mark}" if "rss_ratio" in x else "–"
        lines.append(
            f"| {x['kind']} | {name} | {warm} | {x['per_unit_ms']:.1f} | {wr} | {x['cold_s']:.2f} "
            f"({x['cold_overhead_s']:.2f}) | {cr} | "
            f"{x['rss_mb']:.0f} | {rr} | {_f(x['size_mb'], '.1f')} | {acc} |"
        )
    lines += [
        "",
        f"Accuracy of compact variants: {SEEDED_NOTE}; measured on real recordings from ../shared/audio "
        "(VGGish: cosine of the 128-d embedding per 0.96 s example and share of changed 8-bit postprocessed values; "
        "OpenL3 int8qdq: cosine per 1 s window, hop 0.5 s, on recordings held out of its calibration).",
    ]
    fv = res["prepare"].get("first_verify_s") or {}
    if fv:
        lines += [
            "",
            "First use of a model file (sha256 of the file and its weights, recorded for later runs by stat): "
            + ", ".join(f"{k} {v:.2f} s" for k, v in fv.items())
            + ".",
        ]
    return lines


def targets(res: dict, d: dict) -> list[str]:
    gemm = res["gemm"][str(res["config"]["threads"])]["gflops"]
    lines = ["| target | vggish | openl3 | notes |", "|---|---|---|---|"]

    def mark(ok: bool) -> str:
        return "met" if ok else "**missed**"

    row = {}
    for kind in ("vggish", "openl3"):
        x = d[f"pqeval-{kind}"]
        st = res["pipelines"][f"pqeval-{kind}"]["stages"]
        sc = {s["seconds"]: s for s in res["scale"] if s["pipeline"] == f"pqeval-{kind}"}
        secs = sorted(sc)
        lo, hi = (60.0, 600.0) if 60.0 in sc and 600.0 in sc else (secs[0], secs[-1])
        growth = sc[hi]["peak_rss_mb"] / sc[lo]["peak_rss_mb"]
        pre = {r: (v["resample"] + v["frontend"]) / sum(v.values()) for r, v in st.items()}
        fast = min((n for n, y in d.items() if y["kind"] == kind and y["accepted"]), key=lambda n: d[n]["per10_s"])
        cold = min((n for n, y in d.items() if y["kind"] == kind and y["accepted"]), key=lambda n: d[n]["cold_s"])
        row[kind] = {
            "fp32": (1 / x["warm_ratio"], 1 / x["warm_ratio"] >= TARGET_FP32_SPEEDUP),
            "warm": (1 / d[fast]["warm_ratio"], 1 / d[fast]["warm_ratio"] >= TARGET_WARM_SPEEDUP, fast),
            "cold": (1 / d[cold]["cold_ratio"], 1 / d[cold]["cold_ratio"] >= TARGET_COLD_SPEEDUP, cold),
            "rss": (x["rss_ratio"], x["rss_ratio"] <= TARGET_RSS_RATIO),
            "gemm": (x["gemm_share"], x["gemm_share"] >= TARGET_GEMM_SHARE),
            "pre16": (pre["16000"], pre["16000"] <= TARGET_PRE_SHARE["16000"]),
            "pre44": (pre.get("44100", float("nan")), pre.get("44100", float("nan")) <= TARGET_PRE_SHARE["44100"]),
            "mem": (growth, growth <= TARGET_MEM_GROWTH, lo, hi),
        }
    v, o = row["vggish"], row["openl3"]
    dv, do, d8 = d["pqeval-vggish"], d["pqeval-openl3"], d.get("pqeval-vggish-int8fc")
    best_cold = {k: best_original(res["pipelines"], k)["cold_s"] for k in ORIGINAL}
    vggish_mb = dv["size_mb"]
    cold_note = (
        f"VGGish: interpreter + imports {dv['cold_s'] - dv['load_s'] - dv['first_embed_s']:.2f} s, session on "
        f"{vggish_mb:.0f} MB of fp32 weights "
        f"{dv['load_s']:.2f} s, first embedding {dv['first_embed_s']:.2f} s; 10× means ≤ "
        f"{best_cold['vggish'] / 10:.2f} s, about what "
        f"ORT alone needs to create the session. OpenL3: the first embedding alone is {do['first_embed_s']:.2f} "
        "s of compute "
        f"({do['units']} windows × {res['flops'][MODEL_FILE['openl3']]['gflop_per_unit']:.1f} GFLOP); "
        f"10× means ≤ {best_cold['openl3'] / 10:.2f} s for everything"
    )
    rss_note = (
        f"VGGish: its {vggish_mb:.0f} MB of fp32 weights stay resident; only the int8fc variant "
        + (f"({d8['rss_ratio']:.2f}) " if d8 and "rss_ratio" in d8 else "")
        + "is under 1/3, and it changes 8-bit outputs"
    )
    lines += [
        (
            f"| warm ≥ {TARGET_FP32_SPEEDUP}× faster in fp32 (ORT) | {v['fp32'][0]:.2f}× {mark(v['fp32'][1])} | "
            f"{o['fp32'][0]:.2f}× {mark(o['fp32'][1])} | same clip, same threads |"
        ),
        (
            f"| warm ≥ {TARGET_WARM_SPEEDUP:g}× faster, fastest accepted path | {v['warm'][0]:.2f}× "
            f"{mark(v['warm'][1])} ({v['warm'][2]}) | {o['warm'][0]:.2f}× {mark(o['warm'][1])} ({o['warm'][2]}) | "
            "accepted: ORT fp32, or a fast path whose largest score change is below openl3's own float32 noise "
            "measured in the same run (accuracy.md) |"
        ),
        (
            f"| cold start ≥ {TARGET_COLD_SPEEDUP:g}× faster, accepted path | {v['cold'][0]:.1f}× "
            f"{mark(v['cold'][1])} ({v['cold'][2]}) | {o['cold'][0]:.1f}× {mark(o['cold'][1])} ({o['cold'][2]}) | "
            f"{cold_note} |"
        ),
        (
            f"| peak RSS ≤ 1/3 of original | {v['rss'][0]:.2f} {mark(v['rss'][1])} | {o['rss'][0]:.2f} "
            f"{mark(o['rss'][1])} | {rss_note} |"
        ),
        (
            f"| inference ≥ {TARGET_GEMM_SHARE:.0%} of GEMM peak ({gemm:.0f} GFLOP/s) | {v['gemm'][0]:.0%} "
            f"{mark(v['gemm'][1])} | {o['gemm'][0]:.0%} {mark(o['gemm'][1])} | analytic conv/gemm FLOPs ÷ ORT run "
            f"time vs numpy float32 {res['gemm'][str(res['config']['threads'])]['n']}³ matmul |"
        ),
        (
            f"| resample + frontend ≤ {TARGET_PRE_SHARE['16000']:.0%} (16 kHz input, ORT fp32) | {v['pre16'][0]:.1%} "
            f"{mark(v['pre16'][1])} | {o['pre16'][0]:.1%} {mark(o['pre16'][1])} | VGGish needs no resampling at 16 "
            "kHz; OpenL3 computes a float64 199 × 2048-point STFT and mel spectrogram per 1 s window |"
        ),
        (
            f"| resample + frontend ≤ {TARGET_PRE_SHARE['44100']:.0%} (44.1 kHz input, ORT fp32) | {v['pre44'][0]:.1%} "
            f"{mark(v['pre44'][1])} | {o['pre44'][0]:.1%} {mark(o['pre44'][1])} | resampy-exact kaiser_best: at 44.1 "
            "→ 16 kHz 353 taps per output (56 M multiply-adds per 10 s, float64) plus resampy's float time-register "
            "fix-ups; OpenL3's 44.1 → 48 kHz is cheap |"
        ),
        (
            f"| peak RSS {v['mem'][3]:g} s ≤ {TARGET_MEM_GROWTH}× {v['mem'][2]:g} s | {v['mem'][0]:.2f}× "
            f"{mark(v['mem'][1])} | {o['mem'][0]:.2f}× {mark(o['mem'][1])} | the input is read from disk batch by "
            "batch (`open_audio`, as `pqeval score` does); features and resampling are per batch of windows |"
        ),
    ]
    return lines


def stages_table(res: dict, d: dict) -> list[str]:
    gemm = res["gemm"]
    lines = [
        "| pipeline | input rate | resample | frontend | inference | inference GFLOP/s | share of GEMM peak |",
        "|---|---|---|---|---|---|---|",
    ]
    t = str(res["config"]["threads"])
    for name in [n for n in res["pipelines"] if n in ("pqeval-vggish", "pqeval-openl3") or "@" in n]:
        r = res["pipelines"][name]
        g = res["flops"][MODEL_FILE[r["kind"]]]["gflop_per_unit"] * r["units"]
        for rate, s in r["stages"].items():
            tot = sum(s.values())
            gf = g / s["inference"]
            lines.append(
                f"| {name} | {int(rate) / 1000:g} kHz | {s['resample'] / tot:.1%} | {s['frontend'] / tot:.1%} | "
                f"{s['inference'] / tot:.1%} | {gf:.1f} | {gf / gemm[t]['gflops']:.0%} |"
            )
    for name, x in d.items():
        if x["family"] != "original":
            continue
        lines.append(
            f"| {name} (inference only) | 16 kHz | – | – | – | {x['inference_gflops']:.1f} | {x['gemm_share']:.0%} |"
        )
    lines += [
        "",
        "FLOPs per unit, counted from the ONNX graphs (2 × conv/gemm MACs, batch 1; `python bench/flops.py "
        "MODEL.onnx`): "
        + ", ".join(f"{k} {v['gflop_per_unit']:.3f} GFLOP" for k, v in res["flops"].items())
        + ". numpy float32 GEMM peak: "
        + ", ".join(f"{v['gflops']:.1f} GFLOP/s at {k} thread(s)" for k, v in gemm.items())
        + ".",
    ]
    return lines


def scale_table(res: dict) -> list[str]:
    lines = [
        (
            "| pipeline | audio s | examples/windows | time s | ms per unit | peak RSS MB | input as float64 MB (not "
            "held: read from disk per batch) |"
        ),
        "|---|---|---|---|---|---|---|",
    ]
    for s in res["scale"]:
        hop = f" (hop {s['hop']:g} s)" if s["hop"] else ""
        lines.append(
            f"| {s['pipeline']}{hop} | {s['seconds']:g} | {s['units']} | {s['median_s']:.2f} | "
            f"{1e3 * s['median_s'] / max(s['units'], 1):.1f} | {s['peak_rss_mb']:.0f} | {s['whole_input_mb']:.1f} |"
        )
    return lines


def threads_table(res: dict) -> list[str]:
    if not res["threads"]:
        return ["(not measured in --quick mode)"]
    lines = ["| pipeline | threads | warm s per 10 s audio | speed-up vs 1 thread |", "|---|---|---|---|"]
    base = {}
    for _key, r in sorted(res["threads"].items(), key=lambda kv: (kv[1]["pipeline"], kv[1]["threads"])):
        per10 = r["warm_median_s"] * 10 / r["seconds"]
        base.setdefault(r["pipeline"], per10)
        lines.append(f"| {r['pipeline']} | {r['threads']} | {per10:.3f} | {base[r['pipeline']] / per10:.2f}× |")
    return lines


def compact_table(res: dict, d: dict) -> list[str]:
    lines = [
        (
            "| variant | file MB | session load s (verify sha256 + create) | warm ours/orig | peak RSS MB | accuracy "
            "vs fp32 (seeded weights) | export method |"
        ),
        "|---|---|---|---|---|---|---|",
    ]
    for name, x in d.items():
        if x["family"] != "ours" or "@" in name:
            continue
        r = res["pipelines"][name]
        ld = r["cold"]["load_detail"]
        stem = MODEL_FILE[x["kind"]] + (f"-{r['variant']}" if r["variant"] else "")
        info = res["prepare"]["compact"].get(stem + ".onnx", {})
        lines.append(
            f"| {name} | {x['size_mb']:.1f} | {r['cold']['load_s']:.2f} ({ld.get('verify_sha256_s', 0):.2f} + "
            f"{ld.get('session_s', 0):.2f}) | "
            f"{x['warm_ratio']:.2f} | {x['rss_mb']:.0f} | "
            f"{_acc(x['accuracy'], x['kind']) if info else 'fp32 reference'} | "
            f"{info.get('method', 'fp32 export')} |"
        )
    return lines


def engines_section(res: dict) -> list[str]:
    """openl3's float32 noise, the engine rows not run here and why (accuracy.md has the rest)."""
    acc = res.get("accuracy") or {}
    n = acc.get("noise", {}).get("openl3")
    lines = []
    if n:
        lines.append(
            f"openl3's own float32 noise in this run (openl3/TensorFlow vs ORT fp32, {len(acc['pairs'])} pairs): "
            f"score change max {n['score_delta_max']:.1e}; a fast path is accepted when its largest score change "
            "is below it. Per-path accuracy on all pairs: accuracy.md beside this file."
        )
    for name, why in (res.get("refused") or {}).items():
        lines.append(f"- not run here: `{name}`: {why}")
    return lines or ["(no engine rows)"]


def cli_table(res: dict) -> list[str]:
    lines = ["| command | wall s | peak RSS MB |", "|---|---|---|"]
    for c in res["score_cli"]:
        lines.append(f"| `{c['command']}` | {c['wall_s']:.2f} | {c['peak_rss_mb']:.0f} |")
    return lines


def write_report(res: dict, out: Path) -> None:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    d = derived(res)
    res["derived"] = d
    (out / "results.json").write_text(json.dumps(res, indent=1, default=float) + "\n")
    m = res["machine"]
    md = [
        "# pqeval benchmark: original frameworks vs pqeval runtime",
        "",
        f"Command: `{res['command']}` ({res['elapsed_s'] / 60:.1f} min). Machine: {m['cpu']}, {m['cores']} cores, "
        f"{m['memory_gib']} GiB, instruction sets: {' '.join(m.get('instruction_sets', [])) or 'none of note'}; "
        "load average at start "
        f"{', '.join(f'{v:.2f}' for v in m['load_avg_at_start'])}, at end "
        f"{', '.join(f'{v:.2f}' for v in m.get('load_avg_at_end', []))} (another job shared the 2 cores when "
        "above ~0.2). Versions: " + ", ".join(f"{k} {v}" for k, v in m["versions"].items()) + ".",
        "",
        "All models use **seeded weights** (`seeded:0`, the same weights in the original and in ours): latency "
        "and memory "
        "do not depend on weight values; no number here is a perceptual result.",
        "",
        "## Headline: ours vs original, side by side",
        "",
        *headline(res, d),
        "",
        "## Targets",
        "",
        *targets(res, d),
        "",
        "## Engines and precisions",
        "",
        *engines_section(res),
        "",
        "## Compact variants",
        "",
        *compact_table(res, d),
        "",
        "## Where the time goes (ours) and achieved GFLOP/s",
        "",
        *stages_table(res, d),
        "",
        "## `pqeval score` from the command line (fresh process, 2 clips)",
        "",
        *cli_table(res),
        "",
        "## Scaling with audio length (ours, 16 kHz input)",
        "",
        *scale_table(res),
        "",
        "## Threads",
        "",
        *threads_table(res),
        "",
        "![plot](results.png)",
        "",
    ]
    (out / "results.md").write_text("\n".join(md))
    plot(res, d, out / "results.png")


def plot(res: dict, d: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, ax = plt.subplots(2, 2, figsize=(13, 9))
    names = list(d)
    colors = ["tab:red" if d[n]["family"] == "original" else "tab:blue" for n in names]
    y = np.arange(len(names))
    a = ax[0, 0]
    a.barh(
        y,
        [d[n]["per10_s"] for n in names],
        color=colors,
        xerr=np.array(
            [[d[n]["per10_s"] - d[n]["per10_min"] for n in names], [d[n]["per10_max"] - d[n]["per10_s"] for n in names]]
        ),
    )
    a.set_yticks(y, names)
    a.set_xscale("log")
    a.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
    a.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    a.set_xlabel(f"warm latency per 10 s of audio (s, log; OpenL3 hop {res['config']['hop']} s)")
    a.invert_yaxis()
    a.set_title("warm latency (red: original, blue: pqeval)")
    a = ax[0, 1]
    a.barh(y - 0.2, [d[n]["cold_s"] for n in names], height=0.4, color=colors, label="cold start s")
    a2 = a.twiny()
    a2.barh(y + 0.2, [d[n]["rss_mb"] for n in names], height=0.4, color="tab:gray", alpha=0.6, label="peak RSS MB")
    a.set_yticks(y, names)
    a.invert_yaxis()
    a.set_xlabel("cold start (s): import + load + first embedding")
    a2.set_xlabel("peak RSS (MB, grey)")
    a = ax[1, 0]
    for p, mk in (("pqeval-vggish", "o-"), ("pqeval-openl3", "s-")):
        s = [x for x in res["scale"] if x["pipeline"] == p]
        secs = np.array([x["seconds"] for x in s])
        t = np.array([x["median_s"] for x in s])
        lab = p + (f" (hop {s[0]['hop']:g} s)" if s and s[0]["hop"] else "")
        a.loglog(secs, t, mk, label=lab)
        if len(secs):
            a.loglog(secs, t[-1] * secs / secs[-1], ":", color="gray")
    a.set_xlabel("audio length (s)")
    a.set_ylabel("time (s); dotted: linear through the longest")
    a.legend()
    a.set_title("cost vs audio length")
    a = ax[1, 1]
    for p, mk in (("pqeval-vggish", "o-"), ("pqeval-openl3", "s-")):
        s = [x for x in res["scale"] if x["pipeline"] == p]
        a.semilogx([x["seconds"] for x in s], [x["peak_rss_mb"] for x in s], mk, label=p + " peak RSS")
        a.semilogx(
            [x["seconds"] for x in s],
            [x["peak_after_input_mb"] for x in s],
            mk.replace("-", ":"),
            alpha=0.5,
            label=p + " after load + opening the input",
        )
    a.set_xlabel("audio length (s)")
    a.set_yscale("log")
    a.set_ylabel("MB (log)")
    a.legend(fontsize=8)
    a.set_title("memory vs audio length")
    fig.suptitle(f"pqeval bench ({res['machine']['cpu']}, {res['config']['threads']} threads; seeded weights)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


if __name__ == "__main__":  # regenerate results.md / results.png from a results.json
    import sys

    from run import cpu_dir  # this CPU's results folder unless a results.json is named

    src = Path(sys.argv[1]) if len(sys.argv) > 1 else cpu_dir() / "results.json"
    write_report(json.loads(src.read_text()), src.parent)
