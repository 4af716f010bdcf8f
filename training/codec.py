"""JSON codec for the few pytorch-forecasting objects an artifact needs (no pickle).

An object becomes ``{"__class__": name, "params": {...}, "state": {...}}``: ``name`` must
be in ALLOWED (the exact class, not a subclass), ``params`` are its constructor
arguments and ``state`` its fitted attributes, restricted per class to STATE_KEYS.
numpy arrays/scalars, tensors and small DataFrames are tagged lists, so dtypes survive.
Decoding rebuilds an object only from ALLOWED and sets only the listed attributes.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch
from pytorch_forecasting.data.encoders import (
    EncoderNormalizer,
    GroupNormalizer,
    MultiNormalizer,
    NaNLabelEncoder,
    TorchNormalizer,
)
from pytorch_forecasting.metrics import MultiLoss, QuantileLoss

from training.normalizers import MetricNormalizer

ALLOWED: dict[str, type] = {
    cls.__name__: cls
    for cls in (
        NaNLabelEncoder,
        TorchNormalizer,
        EncoderNormalizer,
        GroupNormalizer,
        MetricNormalizer,
        MultiNormalizer,
        QuantileLoss,
        MultiLoss,
    )
}
_NORMALIZER_STATE = ("center_", "scale_")
STATE_KEYS: dict[str, tuple[str, ...]] = {
    "NaNLabelEncoder": ("classes_",),
    "TorchNormalizer": _NORMALIZER_STATE,
    "EncoderNormalizer": _NORMALIZER_STATE,
    "MetricNormalizer": _NORMALIZER_STATE,
    "GroupNormalizer": ("norm_", "missing_"),
    "MultiNormalizer": ("fitted_",),
    "QuantileLoss": (),
    "MultiLoss": (),
}
_DTYPES = {"float16", "float32", "float64", "int32", "int64", "bool"}


class CodecError(ValueError):
    """An object or a JSON document that the codec refuses."""


# --- values --------------------------------------------------------------------------


def to_json(value: Any) -> Any:
    """A JSON-able form of a value (objects from ALLOWED, arrays, frames, plain data)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if type(value).__name__ in ALLOWED:
        return encode(value)
    if isinstance(value, torch.Tensor):
        array = value.detach().cpu().numpy()
        return {"__tensor__": str(array.dtype), "shape": list(array.shape), "data": array.tolist()}
    if isinstance(value, np.ndarray | np.generic):
        array = np.asarray(value)
        return {"__ndarray__": str(array.dtype), "shape": list(array.shape), "data": array.tolist()}
    if isinstance(value, pd.DataFrame):
        return _frame_to_json(value)
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {k: to_json(v) for k, v in value.items()}
    raise CodecError(f"cannot serialise {type(value).__name__} to JSON: {value!r:.80}")


def from_json(value: Any) -> Any:
    """Inverse of to_json."""
    if isinstance(value, list):
        return [from_json(v) for v in value]
    if not isinstance(value, dict):
        return value
    if "__class__" in value:
        return decode(value)
    if "__ndarray__" in value or "__tensor__" in value:
        return _array_from_json(value)
    if "__frame__" in value:
        return _frame_from_json(value)
    return {k: from_json(v) for k, v in value.items()}


def _array_from_json(value: dict[str, Any]) -> np.ndarray | np.generic | torch.Tensor:
    dtype = value.get("__tensor__", value.get("__ndarray__"))
    if dtype not in _DTYPES:
        raise CodecError(f"array dtype {dtype!r} not allowed; expected one of {sorted(_DTYPES)}")
    array = np.asarray(value["data"], dtype=dtype).reshape(value["shape"])
    if "__tensor__" in value:
        return torch.from_numpy(array.copy())
    return array[()] if array.ndim == 0 else array


def _frame_to_json(frame: pd.DataFrame) -> dict[str, Any]:
    index = [list(i) if isinstance(i, tuple) else to_json(i) for i in frame.index]
    columns = {str(c): to_json(frame[c].to_numpy()) for c in frame.columns}
    return {"__frame__": list(frame.index.names), "index": index, "columns": columns}


def _frame_from_json(value: dict[str, Any]) -> pd.DataFrame:
    names = value["__frame__"]
    if len(names) > 1:
        index = pd.MultiIndex.from_tuples([tuple(i) for i in value["index"]], names=names)
    else:
        index = pd.Index(from_json(value["index"]), name=names[0])
    columns = {c: from_json(v) for c, v in value["columns"].items()}
    return pd.DataFrame(columns, index=index)


# --- objects -------------------------------------------------------------------------


def encode(obj: Any) -> dict[str, Any]:
    """Encode one allow-listed object as {"__class__", "params", "state"}."""
    name = type(obj).__name__
    if ALLOWED.get(name) is not type(obj):
        raise CodecError(f"class {type(obj).__qualname__} is not in the codec allow-list")
    if isinstance(obj, MultiLoss):
        params = {"metrics": obj.metrics, "weights": [float(w) for w in obj.weights]}
    elif isinstance(obj, QuantileLoss):
        params = {"quantiles": [float(q) for q in obj.quantiles], "reduction": obj.reduction}
    else:
        params = obj.get_params(deep=False)
    if not isinstance(params.get("transformation"), str | None):
        raise CodecError(f"{name}: only named transformations can be serialised")
    state = {k: getattr(obj, k) for k in STATE_KEYS[name] if hasattr(obj, k)}
    if "classes_" in state:
        state["classes_"] = [[to_json(k), int(v)] for k, v in state["classes_"].items()]
    return {"__class__": name, "params": to_json(params), "state": to_json(state)}


def decode(spec: dict[str, Any]) -> Any:
    """Rebuild an object encoded by encode(); CodecError names what is wrong."""
    if not isinstance(spec, dict) or not isinstance(spec.get("__class__"), str):
        raise CodecError(f"not an encoded object: {spec!r:.80}")
    name = spec["__class__"]
    if name not in ALLOWED:
        raise CodecError(f"class {name!r} is not in the allow-list {sorted(ALLOWED)}")
    params, state = spec.get("params", {}), spec.get("state", {})
    if not isinstance(params, dict) or not isinstance(state, dict):
        raise CodecError(f"{name}: params and state must be JSON objects")
    unexpected = set(state) - set(STATE_KEYS[name])
    if unexpected:
        raise CodecError(f"{name}: unexpected state attribute(s) {sorted(unexpected)}")
    try:
        obj = ALLOWED[name](**from_json(params))
    except TypeError as exc:
        raise CodecError(f"{name}: bad parameters: {exc}") from exc
    for key, value in from_json(state).items():
        setattr(obj, key, value)
    if name == "NaNLabelEncoder" and hasattr(obj, "classes_"):
        obj.classes_ = {k: int(v) for k, v in obj.classes_}
        obj.classes_vector_ = np.array(list(obj.classes_))
    return obj
