"""Read the generator card out of an ONNX file's ``metadata_props``, and check that the graph
is the generator the card describes: a model file is untrusted input, and the card's sizes
decide what the sampler allocates."""

from __future__ import annotations

from pathlib import Path

from ..card import METADATA_KEY, CardError, GeneratorCard
from ..errors import SynthaugError
from ..models import get_family
from ..weights import check_card_buildable

__all__ = ["GRAPH_INPUTS", "GRAPH_OUTPUTS", "read_onnx_card"]

#: The exported graph's interface (what a bare onnxruntime client relies on; docs/deploy.md).
GRAPH_INPUTS = ("noise", "labels")
GRAPH_OUTPUTS = ("images",)
#: ONNX element types of the interface (TensorProto.FLOAT, TensorProto.INT64).
_FLOAT, _INT64 = 1, 7


def read_onnx_card(path: str | Path) -> GeneratorCard:
    import onnx

    path = Path(path)
    if not path.is_file():
        raise SynthaugError(f"{path}: no such file (expected an .onnx generator exported by synthaug)")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as err:  # protobuf's DecodeError and friends share no useful base class
        raise SynthaugError(f"{path}: not a readable ONNX model ({type(err).__name__})") from None
    props = {p.key: p.value for p in model.metadata_props}
    if METADATA_KEY not in props:
        raise CardError(f"{path}: no '{METADATA_KEY}' in the ONNX metadata: not exported by synthaug")
    card = GeneratorCard.from_json(props[METADATA_KEY], source=str(path))
    inputs = [i.name for i in model.graph.input]
    outputs = [o.name for o in model.graph.output]
    if inputs != list(GRAPH_INPUTS) or outputs != list(GRAPH_OUTPUTS):
        raise SynthaugError(f"{path}: expected a graph with inputs {list(GRAPH_INPUTS)} and outputs "
                            f"{list(GRAPH_OUTPUTS)}, got inputs {inputs} and outputs {outputs}")
    try:
        get_family(card.family)
    except SynthaugError as err:
        raise SynthaugError(f"{path}: card names a family this synthaug does not know ({err})") from None
    try:
        check_card_buildable(card)  # on the meta device: family image sizes, config ranges, noise
    except SynthaugError as err:
        raise SynthaugError(f"{path}: {err}") from None
    problem = _interface_problem(model.graph, card)
    if problem:
        raise SynthaugError(f"{path}: the graph does not match its card: {problem}")
    return card


def _interface_problem(graph, card: GeneratorCard) -> str:
    """How the graph's declared inputs and output differ from ``noise [batch, *noise shape]``
    float, ``labels [batch]`` int64 and ``images [batch, C, H, W]`` float, or ``""``. The batch
    dimension must be dynamic; every other one fixed to the card's value."""
    expected = {"noise": (_FLOAT, list(card.noise["shape"])), "labels": (_INT64, []),
                "images": (_FLOAT, list(card.image_shape))}
    for value in [*graph.input, *graph.output]:
        elem_type, dims = expected[value.name]
        tensor = value.type.tensor_type
        if tensor.elem_type != elem_type:
            return (f"{value.name}: expected {_type_name(elem_type)}, "
                    f"got {_type_name(tensor.elem_type) if value.type.HasField('tensor_type') else 'no tensor'}")
        got = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in tensor.shape.dim]
        if not tensor.HasField("shape") or len(got) != 1 + len(dims) or isinstance(got[0], int) or got[1:] != dims:
            want = ", ".join(["batch", *map(str, dims)])
            return f"{value.name}: expected shape [{want}] with a dynamic batch, got {_short_dims(got)}"
    return ""


def _type_name(elem_type: int) -> str:
    import onnx

    try:
        return onnx.TensorProto.DataType.Name(elem_type).lower()
    except ValueError:
        return f"type {elem_type}"


def _short_dims(dims: list) -> str:
    return "[" + ", ".join(str(d)[:20] for d in dims[:8]) + (", ...]" if len(dims) > 8 else "]")
