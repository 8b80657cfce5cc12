"""Read the generator card out of an ONNX file's ``metadata_props``."""

from __future__ import annotations

from pathlib import Path

from ..card import METADATA_KEY, CardError, GeneratorCard
from ..errors import SynthaugError

#: The exported graph's interface (Contract 3's ONNX side).
GRAPH_INPUTS = ("noise", "labels")
GRAPH_OUTPUTS = ("images",)


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
    from ..models import get_family

    try:
        get_family(card.family)
    except SynthaugError as err:
        raise SynthaugError(f"{path}: card names a family this synthaug does not know ({err})") from None
    return card
