"""Released weights into our models: the parameter names of mdistiller's CIFAR models and of
torchvision's ImageNet ResNets, mapped onto ours by a declared table, every shape checked.

    state = released_state(obj, "mdistiller", "resnet32x4")   # obj: what torch.load gave
    model.load_state_dict(map_names(state, "mdistiller", "resnet32x4", model))

A table is a list of (pattern, replacement) rules, each applied in turn (`re.sub`) to a source
name; a name no rule changes keeps its name. Checked by building mdistiller's own definitions
(megvii-research/mdistiller, mdistiller/models/cifar/) with random weights, mapping their state
dicts through these tables and comparing logits with ours; the tests do the same on files they
write in mdistiller's layout. Our CIFAR zoo follows mdistiller's architectures, but not every
name (per family, where they differ):

- resnet8..110, resnet8x4, resnet32x4: `downsample` -> `shortcut`, `fc` -> `classifier`.
- wrn_*: `blockN.layer.i` -> `blockN.i`, `convShortcut` -> `shortcut`, the final `bn1` -> `bn`,
  `fc` -> `classifier`.
- vgg*: `blockN.j` -> `blocks.N.j` (the same index inside a block: conv, BN, ReLU per layer).
- ResNet50 (CIFAR stem): `linear` -> `classifier`; everything else matches.
- MobileNetV2: `conv1` -> `stem`, `blocks` -> `stages`, a block's flat `conv.0..7` -> our nested
  `conv.0.{0,1}`, `conv.1.{0,1}`, `conv.2`, `conv.3`, `conv2` -> `head`, `classifier.0` -> `classifier`.
- ShuffleV1: `layerN` -> `stages.(N-1)`, `linear` -> `classifier`.
- ShuffleV2: `conv1`/`bn1` -> `stem.0`, `layerN` -> `stages.(N-1)`, a down block's
  `conv1..5`/`bn1..5` -> `left.{0,1}` / `right.{0,2,3}`, a basic block's `conv1..3`/`bn1..3` ->
  `branch.{0,2,3}`, `conv2`/`bn2` -> `head.0`, `linear` -> `classifier`.
- torchvision resnet18..152 (format torchvision): our class is torchvision's: no rule.
"""
from __future__ import annotations

import re

import torch

from common import UserError

def _numbered(prefix: str, names: dict) -> list:
    """Rules for modules `<prefix>.<old>.` -> `<prefix>.<new>.`, e.g. a block's conv1 -> branch.0.0."""
    return [(rf"^({prefix})\.{old}\.", rf"\1.{new}.") for old, new in names.items()]


def _stages(first: int = 1) -> list:
    """`layer1` -> `stages.0`, ..."""
    return [(rf"^layer{i}\.", f"stages.{i - first}.") for i in (1, 2, 3)]


RESNET_CIFAR = [(r"\.downsample\.", ".shortcut."), (r"^fc\.", "classifier.")]
WRN = [(r"^(block\d)\.layer\.", r"\1."), (r"\.convShortcut\.", ".shortcut."), (r"^bn1\.", "bn."),
       (r"^fc\.", "classifier.")]
VGG = [(r"^block(\d)\.", r"blocks.\1.")]
RESNET50_CIFAR = [(r"^linear\.", "classifier.")]
# mdistiller's flat block (0 conv, 1 BN, 2 ReLU, 3 dw conv, 4 BN, 5 ReLU, 6 conv, 7 BN) -> our
# nested one; one rule for every index, so that no index is renamed twice
_MV2_BLOCK = {"0": "0.0", "1": "0.1", "3": "1.0", "4": "1.1", "6": "2", "7": "3"}
MOBILENETV2 = [(r"^conv1\.", "stem."), (r"^blocks\.", "stages."),
               (r"\.conv\.([013467])\.", lambda m: f".conv.{_MV2_BLOCK[m.group(1)]}."),
               (r"^conv2\.", "head."), (r"^classifier\.0\.", "classifier.")]
SHUFFLEV1 = [*_stages(), (r"^linear\.", "classifier.")]
_DOWN = {"conv1": "left.0.0", "bn1": "left.0.1", "conv2": "left.1.0", "bn2": "left.1.1",
         "conv3": "right.0.0", "bn3": "right.0.1", "conv4": "right.2.0", "bn4": "right.2.1",
         "conv5": "right.3.0", "bn5": "right.3.1"}
_SPLIT = {"conv1": "branch.0.0", "bn1": "branch.0.1", "conv2": "branch.2.0", "bn2": "branch.2.1",
          "conv3": "branch.3.0", "bn3": "branch.3.1"}
SHUFFLEV2 = [(r"^conv1\.", "stem.0.0."), (r"^bn1\.", "stem.0.1."), (r"^conv2\.", "head.0.0."), (r"^bn2\.", "head.0.1."),
             (r"^linear\.", "classifier."), *_stages(),
             *_numbered(r"stages\.\d\.0", _DOWN), *_numbered(r"stages\.\d\.[1-9]\d*", _SPLIT)]

TABLES = {
    "mdistiller": {
        **{f"resnet{d}": RESNET_CIFAR for d in (8, 14, 20, 32, 44, 56, 110)},
        "resnet8x4": RESNET_CIFAR, "resnet32x4": RESNET_CIFAR,
        **{f"wrn_{d}_{w}": WRN for d, w in ((16, 1), (16, 2), (16, 4), (28, 2), (28, 4), (40, 1), (40, 2))},
        **{f"vgg{d}": VGG for d in (8, 11, 13, 16, 19)},
        "ResNet50": RESNET50_CIFAR, "MobileNetV2": MOBILENETV2, "ShuffleV1": SHUFFLEV1, "ShuffleV2": SHUFFLEV2,
    },
    "torchvision": {name: [] for name in ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")},
}
FORMATS = tuple(TABLES)


def rename(name: str, rules) -> str:
    for pattern, replacement in rules:
        name = re.sub(pattern, replacement, name)
    return name


def released_state(obj, fmt: str, source: str = "the file") -> dict:
    """The state dict inside what torch.load returned: mdistiller's checkpoint dict keeps it
    under "model"; a torchvision weights file is the state dict itself."""
    if fmt not in TABLES:
        raise UserError(f"unknown format '{fmt}'; known: {', '.join(FORMATS)}")
    if fmt == "mdistiller":
        state = obj.get("model") if isinstance(obj, dict) else None
        if not _is_state(state):
            hint = "; it looks like a bare state dict: --format torchvision" if _is_state(obj) else ""
            raise UserError(f"{source} is not an mdistiller checkpoint (a dict whose 'model' entry is a state "
                            f"dict){hint}")
        return state
    if not _is_state(obj):
        hint = "; it holds a 'model' entry: --format mdistiller" if isinstance(obj, dict) and "model" in obj else ""
        raise UserError(f"{source} is not a torchvision weights file (a state dict of tensors){hint}")
    return obj


def _is_state(obj) -> bool:
    return (isinstance(obj, dict) and bool(obj) and all(isinstance(k, str) for k in obj)
            and all(isinstance(v, torch.Tensor) for v in obj.values()))


def map_names(state: dict, fmt: str, model_name: str, model: torch.nn.Module, source: str = "the file") -> dict:
    """`state` renamed into `model`'s names by the table of (fmt, model_name), every tensor's shape
    checked against ours and cast to our dtype; one UserError line for the first mismatch."""
    tables = TABLES[fmt]
    if model_name not in tables:
        raise UserError(f"no {fmt} name table for model '{model_name}'; known: {', '.join(sorted(tables))}")
    ours = model.state_dict()
    out = {}
    for name, tensor in state.items():
        target = rename(name, tables[model_name])
        where = f"'{name}'" + (f" (ours: '{target}')" if target != name else "")
        if target not in ours:
            raise UserError(f"{source}: {fmt} parameter {where} has no place in our {model_name}")
        if target in out:
            raise UserError(f"{source}: two {fmt} parameters map to our '{target}' of {model_name}")
        if tuple(tensor.shape) != tuple(ours[target].shape):
            raise UserError(f"{source}: {fmt} parameter {where} has shape {tuple(tensor.shape)}, our {model_name} "
                            f"needs {tuple(ours[target].shape)}")
        out[target] = tensor.to(ours[target].dtype)
    missing = [k for k in ours if k not in out]
    if missing:
        raise UserError(f"{source}: our {model_name} needs {len(missing)} parameter(s) the file lacks, "
                        f"first '{missing[0]}': not a {fmt} {model_name}?")
    return out
