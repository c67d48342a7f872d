"""Reading a ``.tflite`` file without an interpreter: its operators.

The flatbuffer is parsed with LiteRT's generated schema: the operators a
model holds (``op_counts``), the kernel sizes of its convolutions (the tile
context the runner needs) and the outputs of its convolutions (the exporter's
calibration check).
"""

import os

_TFLITE_IDENTIFIER = b"TFL3"  # flatbuffer file identifier, bytes 4..8


def _check_file(path):
    """Raises FileNotFoundError / ValueError unless ``path`` is a TFLite file."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No such TFLite model file: {path}")
    with open(path, "rb") as f:
        head = f.read(8)
    if len(head) < 8 or head[4:8] != _TFLITE_IDENTIFIER:
        raise ValueError(f"{path} is not a TFLite model (no 'TFL3' flatbuffer identifier)")


def _operators(path):
    """Yields ``(builtin code, operator, subgraph)`` for every operator of a
    ``.tflite`` file, read with LiteRT's public flatbuffer schema module
    (``ai_edge_litert.schema_py_generated``)."""
    from ai_edge_litert import schema_py_generated as schema

    with open(path, "rb") as f:
        model = schema.Model.GetRootAs(f.read(), 0)
    codes = []
    for i in range(model.OperatorCodesLength()):
        code = model.OperatorCodes(i)
        # Newer files keep the code in BuiltinCode; old ones in the deprecated byte.
        codes.append(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()))
    for g in range(model.SubgraphsLength()):
        graph = model.Subgraphs(g)
        for o in range(graph.OperatorsLength()):
            op = graph.Operators(o)
            yield codes[op.OpcodeIndex()], op, graph


def conv_kernel_sizes(path):
    """Kernel heights of a ``.tflite`` model's convolutions, in file order:
    each CONV_2D or DEPTHWISE_CONV_2D operator's filter tensor, layout
    [out, kh, kw, in].

    Returns:
        A list of ints (empty when the model has no convolution).
    """
    from ai_edge_litert import schema_py_generated as schema

    convs = (schema.BuiltinOperator.CONV_2D, schema.BuiltinOperator.DEPTHWISE_CONV_2D)
    return [
        int(graph.Tensors(op.Inputs(1)).ShapeAsNumpy()[1])
        for code, op, graph in _operators(path)
        if code in convs and op.InputsLength() >= 2
    ]


def conv_outputs(path):
    """Output tensor names of a ``.tflite`` model's CONV_2D operators, in
    execution order (the first is the network's first layer).

    Returns:
        A list of str.
    """
    from ai_edge_litert import schema_py_generated as schema

    return [
        graph.Tensors(op.Outputs(0)).Name().decode()
        for code, op, graph in _operators(path)
        if code == schema.BuiltinOperator.CONV_2D
    ]


def op_counts(path):
    """How many operators of each kind a ``.tflite`` model runs, by name.

    Returns:
        ``{"CONV_2D": 20, "ADD": 1, ...}`` over every subgraph.
    """
    from ai_edge_litert import schema_py_generated as schema

    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    counts = {}
    for code, _, _ in _operators(path):
        counts[names.get(code, "CUSTOM")] = counts.get(names.get(code, "CUSTOM"), 0) + 1
    return counts
