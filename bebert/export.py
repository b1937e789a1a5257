"""A trained binary BERT <-> the artifact (the contract the simulator and the accelerator read).

What is stored, per member (tensor names prefixed ``m<i>.``):
  * every quantized linear ``L``: ``L.weight_signs`` (binary, bit-packed, (out, in)), ``L.weight_scale``
    (float32: (1,) per matrix or (out,) per row), with ``weight_split_*`` twins after ternary weight
    splitting, and ``L.bias``;
  * the binary word embeddings: ``embeddings.word_embeddings.weight_signs`` and one scale per row;
  * every activation quantizer ``Q``: ``Q.step`` (the LSQ step, or the elastic alpha) and, for signed
    elastic binarizers, ``Q.shift`` per channel; its kind and bit width are in the manifest;
  * everything else (position and token-type tables, LayerNorms, any float layer) as float32.
The latent float weights are not stored: they only matter for training.

Loading rebuilds each layer in ``deployed`` mode, holding exactly sign * scale as the training
forward pass computed it, so export -> load reproduces the model's outputs bit for bit.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .artifact import ArtifactError, read_artifact, write_artifact
from .errors import BebertError
from .model import BertDims, QuantBert
from .qconfig import QuantConfig
from .qlayers import QuantEmbedding, QuantLinear
from .quantizers import ElasticBinarizer, LsqQuantizer, binary_weight_parts

ARTIFACT_KIND = "bebert-ensemble"


def _member_prefix(index: int) -> str:
    return f"m{index}."


def _quantizer_spec(q) -> dict:
    if isinstance(q, LsqQuantizer):
        return {"type": "lsq", "bits": q.bits, "signed": q.signed}
    return {"type": "elastic", "bits": 1, "signed": q.signed}


def _binary_parts(layer, weight: torch.Tensor, per_row: bool) -> tuple[np.ndarray, np.ndarray]:
    signs, scale = binary_weight_parts(weight, per_row=per_row, center=layer.center)
    return signs.to(torch.int8).cpu().numpy(), scale.float().reshape(-1).cpu().numpy()


def model_tensors(model: QuantBert) -> tuple[dict[str, np.ndarray], set[str], dict[str, dict]]:
    """(tensors, names of the binary ones, quantizer specs) describing one trained member."""
    tensors, binary, quantizers = {}, set(), {}
    covered = set()
    for name, module in model.named_modules():
        if isinstance(module, (LsqQuantizer, ElasticBinarizer)):
            quantizers[name] = _quantizer_spec(module)
            tensors[f"{name}.step"] = module.step.detach().abs().clamp_min(1e-5).float().cpu().numpy()
            covered.update({f"{name}.step", f"{name}.initialized"})
            if getattr(module, "shift", None) is not None:
                tensors[f"{name}.shift"] = module.shift.detach().float().cpu().numpy()
                covered.add(f"{name}.shift")
        elif isinstance(module, (QuantLinear, QuantEmbedding)) and module.weight_bits == 1 and not module.deployed:
            per_row = isinstance(module, QuantEmbedding) or module.per_row
            halves = [("weight", module.weight)]
            if getattr(module, "weight_split", None) is not None:
                halves.append(("weight_split", module.weight_split))
            for half, weight in halves:
                signs, scale = _binary_parts(module, weight.detach(), per_row)
                tensors[f"{name}.{half}_signs"], tensors[f"{name}.{half}_scale"] = signs, scale
                binary.add(f"{name}.{half}_signs")
                covered.add(f"{name}.{half}")
        elif isinstance(module, (QuantLinear, QuantEmbedding)) and module.weight_bits == 1:
            # A loaded layer holds sign * scale already multiplied out (and split halves folded into
            # one): its artifact exists, and re-deriving signs and scales from it would not be exact.
            raise ValueError("a model loaded from an artifact is exported already; copy its artifact instead")
        elif isinstance(module, (QuantLinear, QuantEmbedding)) and module.weight_bits == 2:
            raise ValueError("a ternary model is an intermediate of weight splitting; split it before exporting")
    for name, value in model.state_dict().items():
        if name not in covered:
            tensors[name] = value.detach().float().cpu().numpy()
    return tensors, binary, quantizers


def export_ensemble(members: list[tuple[QuantBert, float]], directory: str | Path, info: dict | None = None) -> Path:
    """Write an artifact holding ``members`` (model, vote weight); ``info`` goes into the manifest."""
    if not members:
        raise ValueError("an artifact needs at least one member")
    first = members[0][0]
    tensors, binary, member_entries, quantizers = {}, set(), [], None
    for i, (model, weight) in enumerate(members):
        if model.dims != first.dims or model.qc != first.qc:
            raise ValueError("every member of an ensemble must have the same dimensions and quantization")
        t, b, quantizers = model_tensors(model)
        prefix = _member_prefix(i)
        tensors.update({prefix + k: v for k, v in t.items()})
        binary.update(prefix + k for k in b)
        member_entries.append({"prefix": prefix, "weight": float(weight)})
    qc = first.qc
    manifest = {
        "kind": ARTIFACT_KIND,
        "model": first.dims.to_dict(),
        "quant": qc.to_dict(),
        "bits": {"weights": qc.weight_bits, "embeddings": qc.embedding_bits, "activations": qc.activation_bits,
                 "label": qc.bits_label},
        "quantizers": quantizers,
        "members": member_entries,
        **(info or {}),
    }
    return write_artifact(directory, manifest, tensors, binary=binary)


def export_model(model: QuantBert, directory: str | Path, info: dict | None = None) -> Path:
    return export_ensemble([(model, 1.0)], directory, info)


def _rebuild_member(artifact, prefix: str, dims: BertDims, qc: QuantConfig) -> QuantBert:
    model = QuantBert(dims, qc)
    expected, _, _ = model_tensors(model)  # the names and shapes a member of these dimensions has
    where = artifact.path / "manifest.yaml"
    present = {n[len(prefix):] for n in artifact.names() if n.startswith(prefix)}
    if present != set(expected):
        missing, extra = sorted(set(expected) - present), sorted(present - set(expected))
        raise ArtifactError(f"{where} does not match its model description: member {prefix[:-1]} "
                            f"lacks {missing[:3]} and has unexpected {extra[:3]}.")
    arrays = {}
    for name, ref in expected.items():
        arr = artifact.tensor(prefix + name)
        if arr.shape != ref.shape:
            raise ArtifactError(f"{where}: tensor {prefix + name} has shape {arr.shape}, "
                                f"but the model description needs {ref.shape}.")
        arrays[name] = torch.from_numpy(np.array(arr, dtype=np.float32))

    state = model.state_dict()
    with torch.no_grad():
        for name, module in model.named_modules():
            if isinstance(module, (QuantLinear, QuantEmbedding)) and module.weight_bits == 1:
                per_row = isinstance(module, QuantEmbedding) or module.per_row
                weight = None
                for half in ("weight", "weight_split"):
                    if f"{name}.{half}_signs" not in arrays:
                        continue
                    signs = arrays[f"{name}.{half}_signs"]
                    scale = arrays[f"{name}.{half}_scale"]
                    scale = scale.reshape(-1, 1) if per_row else scale.reshape(())
                    part = signs * scale  # the same product the training forward pass computed
                    weight = part if weight is None else weight + part
                module.weight.copy_(weight)
                module.deployed = True
                if getattr(module, "weight_split", None) is not None:
                    module.weight_split = None  # folded into the deployed weight above
            elif isinstance(module, (LsqQuantizer, ElasticBinarizer)):
                module.step.copy_(arrays[f"{name}.step"])
                module.initialized.fill_(True)
                if getattr(module, "shift", None) is not None:
                    module.shift.copy_(arrays[f"{name}.shift"])
        for name, value in arrays.items():
            if name in state and not name.endswith(("_signs", "_scale", ".step", ".shift")):
                state[name].copy_(value)
    return model.eval()


def load_ensemble(directory: str | Path) -> tuple[list[tuple[QuantBert, float]], dict]:
    """Members (model in eval mode, vote weight) and the manifest of an exported artifact."""
    artifact = read_artifact(directory)
    manifest = artifact.manifest
    where = artifact.path / "manifest.yaml"
    if manifest.get("kind") != ARTIFACT_KIND:
        raise ArtifactError(f"{where} describes a {manifest.get('kind')!r}, not a {ARTIFACT_KIND!r}.")
    try:
        dims = BertDims(**manifest["model"])
        qc = QuantConfig.from_dict(manifest["quant"], str(where))
        prefixes = [(str(m["prefix"]), float(m["weight"])) for m in manifest["members"]]
    except (KeyError, TypeError, ValueError, BebertError) as exc:
        raise ArtifactError(f"{where} lacks a valid model description ({exc}).") from None
    if not prefixes:
        raise ArtifactError(f"{where} lists no ensemble members.")
    return [(_rebuild_member(artifact, p, dims, qc), w) for p, w in prefixes], manifest


def load_model(directory: str | Path) -> tuple[QuantBert, dict]:
    """The single model of a one-member artifact, and the manifest."""
    members, manifest = load_ensemble(directory)
    if len(members) != 1:
        raise ArtifactError(f"{Path(directory) / 'manifest.yaml'} holds {len(members)} members; "
                            "load it with load_ensemble.")
    return members[0][0], manifest

