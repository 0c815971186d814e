"""Stand-in for MiniCPM-o-2.6's ``image_processing_minicpmv.py`` (project-written; see README.md)."""

from __future__ import annotations

from typing import Any

import torch
from transformers.image_processing_utils import BaseImageProcessor, BatchFeature


def _map_nested(fn: Any, value: Any) -> Any:
    return [_map_nested(fn, v) for v in value] if isinstance(value, list) else fn(value)


class MiniCPMOBatchFeature(BatchFeature):
    """BatchFeature whose values may be nested lists of tensors; ``to`` moves every tensor."""

    def __init__(self, data: dict[str, Any] | None = None, tensor_type: Any = None) -> None:
        super().__init__(data)

    def to(self, *args: Any, **kwargs: Any) -> MiniCPMOBatchFeature:
        def move(v: Any) -> Any:
            if not isinstance(v, torch.Tensor):
                return v
            return v.to(*args, **kwargs) if torch.is_floating_point(v) else v.to(device=kwargs.get("device", args[0]))
        self.data = {k: _map_nested(move, v) for k, v in self.items()}
        return self


class MiniCPMVImageProcessor(BaseImageProcessor):
    """Only the attributes the processor reads; images are not supported by the stand-in."""

    model_input_names = ["pixel_values"]  # noqa: RUF012 - mirrors the real class attribute

    def __init__(self, max_slice_nums: int = 9, scale_resolution: int = 448, patch_size: int = 14,
                 **kwargs: Any) -> None:
        self.version = kwargs.pop("version", 2.0)
        self.image_feature_size = kwargs.pop("image_feature_size", 64)
        self.use_image_id = kwargs.pop("use_image_id", False)
        super().__init__(**kwargs)
        self.max_slice_nums = max_slice_nums
        self.scale_resolution = scale_resolution
        self.patch_size = patch_size

    def preprocess(self, images: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("stand-in has no image path")
