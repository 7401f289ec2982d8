"""Count the multiply-accumulates of an ONNX graph's Conv / Gemm / MatMul nodes (batch 1).

FLOPs are reported as 2 x MACs (one multiply and one add each); bias adds, activations, pooling
and normalisation are left out (< 1 % for both models). Shapes come from ONNX shape inference
with every dynamic input dimension set to 1.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

COUNTED_OPS = ("Conv", "ConvInteger", "Gemm", "MatMul", "MatMulInteger")


def _shape(vi) -> list[int] | None:
    dims = vi.type.tensor_type.shape.dim
    if not dims or any(not d.HasField("dim_value") for d in dims):
        return None
    return [d.dim_value for d in dims]


def count_macs(path: str | Path) -> dict:
    """{"total_macs", "gflop" (2 x MACs / 1e9), "by_op": {op: macs}, "nodes": [(name, op, macs)]} for batch 1."""
    import onnx
    from onnx import helper

    proto = onnx.load(str(path), load_external_data=False)
    for inp in proto.graph.input:
        for d in inp.type.tensor_type.shape.dim:
            if not d.HasField("dim_value"):
                d.Clear()
                d.dim_value = 1
    proto = onnx.shape_inference.infer_shapes(proto)
    g = proto.graph
    shapes = {}
    for vi in list(g.value_info) + list(g.input) + list(g.output):
        s = _shape(vi)
        if s is not None:
            shapes[vi.name] = s
    for t in g.initializer:
        shapes[t.name] = list(t.dims)
    nodes, by_op = [], {}
    for n in g.node:
        if n.op_type not in COUNTED_OPS:
            continue
        out = shapes.get(n.output[0])
        if out is None:
            raise ValueError(f"{path}: no inferred shape for the output of {n.op_type} {n.name}")
        w = shapes.get(n.input[1])
        if n.op_type in ("Conv", "ConvInteger"):
            macs = int(np.prod(out)) * w[1] * int(np.prod(w[2:]))  # w: [Cout, Cin/group, kh, kw]
        elif n.op_type == "Gemm":
            trans_b = next((helper.get_attribute_value(a) for a in n.attribute if a.name == "transB"), 0)
            k = w[1] if trans_b else w[0]
            macs = int(np.prod(out)) * k
        else:  # MatMul: [..., M, K] x [K, N]
            a = shapes.get(n.input[0])
            macs = int(np.prod(out)) * a[-1]
        nodes.append((n.name, n.op_type, macs))
        by_op[n.op_type] = by_op.get(n.op_type, 0) + macs
    total = sum(m for _, _, m in nodes)
    return {"total_macs": total, "gflop": 2 * total / 1e9, "by_op": by_op, "nodes": nodes}


if __name__ == "__main__":  # python bench/flops.py MODEL.onnx
    import sys

    r = count_macs(sys.argv[1])
    for name, op, m in r["nodes"]:
        print(f"{op:8s} {2 * m / 1e9:8.3f} GFLOP  {name}")
    print(f"total    {r['gflop']:8.3f} GFLOP per example/window (2 x {r['total_macs']:,} MACs)")
