"""Model submissions: one ONNX file holding a conditional generator `(z, label) -> images`, and its validator.

The format (see submissions.report.MODEL_RULES for every rule, in the order they are checked):
- inputs `z` float32 (N, latent_size) and `label` int64 (N,), the label being an index into the class order;
- output `images` float32 (N, 1, S, S) in [-1, 1] (values outside are clamped) or uint8, S the competition's size;
- ONNX metadata `latent_size` (an integer) and `classes` (a JSON list: the class order of the label input);
- one self-contained file (no external data) under the size cap, standard operators only (ONNX's own domain, an
  allowlist without control flow or random generators), an opset in the supported range.
ONNX rather than pickle or TorchScript: the server runs it with onnxruntime without executing the team's Python.
Validation ends with a dry run of one batch in a capped child process (submissions.sampling).
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from submissions.report import Problem, SubmissionInvalid, ValidationReport
from submissions.sampling import INPUT_LABEL, INPUT_Z, OUTPUT_IMAGES, SamplingFailed, SamplingJob, sample_model
from submissions.spec import MAX_OPSET, MIN_OPSET, SubmissionSpec
from submissions.validate import DecodedSubmission, validate_zip

# What generators are built from: arithmetic, convolutions, normalizations, activations, shape plumbing. No control
# flow (Loop, If, Scan: a model that never ends), no random generators (the seed must decide every image).
ALLOWED_OPERATORS = frozenset({
    "Abs", "Add", "And", "ArgMax", "AveragePool", "BatchNormalization", "Cast", "CastLike", "Ceil", "Clip", "Concat",
    "Constant", "ConstantOfShape", "Conv", "ConvTranspose", "Cos", "DepthToSpace", "Div", "Dropout", "Einsum",
    "Elu", "Equal", "Erf", "Exp", "Expand", "Flatten", "Floor", "Gather", "GatherElements", "Gelu", "Gemm",
    "GlobalAveragePool", "Greater", "GroupNormalization", "HardSigmoid", "HardSwish", "Identity",
    "InstanceNormalization", "LayerNormalization", "LeakyRelu", "Less", "Log", "MatMul", "Max", "MaxPool", "Min",
    "Mish", "Mod", "Mul", "Neg", "Not", "OneHot", "Or", "Pad", "Pow", "PRelu", "Range", "Reciprocal", "ReduceMax",
    "ReduceMean", "ReduceMin", "ReduceSum", "Relu", "Reshape", "Resize", "Round", "ScatterND", "Selu", "Shape",
    "Sigmoid", "Sign", "Sin", "Slice", "Softmax", "Softplus", "Split", "Sqrt", "Squeeze", "Sub", "Sum", "Tanh",
    "Tile", "Transpose", "Unsqueeze", "Upsample", "Where",
})
STANDARD_DOMAINS = {"", "ai.onnx"}
DRY_RUN_BATCH = 8

DRY_RUN_RULES = {"timeout": "dry_run_timeout", "memory": "dry_run_memory"}


@dataclass(frozen=True)
class ModelInfo:
    """A valid model: its latent size, class order (label index -> class) and content hash."""

    path: Path
    latent_size: int
    classes: list[str]
    sha256: str
    size_bytes: int
    report: ValidationReport

    def label_of(self, cls: str) -> int:
        return self.classes.index(cls)


def validate_submission(
    path: str | Path, spec: SubmissionSpec, *, name: str | None = None, dry_run: bool = True
) -> DecodedSubmission | ModelInfo:
    """A zip (told by its bytes, not its name) or a model, each against its rules and the competition's kinds.

    `name` is the file as the team named it (the server validates a temporary copy): every problem names it.
    dry_run=False leaves a model's dry run to the caller: `dry_run_model`, e.g. in a bounded queue.
    """
    path = Path(path)
    label = name or path.name
    is_zip = zipfile.is_zipfile(path)
    if is_zip and not spec.accepts_images:
        raise SubmissionInvalid(ValidationReport(valid=False, problems=[Problem(
            rule="kind_not_accepted", file=label, found="a zip of images",
            fix="this competition accepts models only: submit an ONNX generator (see `arena submission spec`)")]))
    if not is_zip and not spec.accepts_model and looks_like_onnx(path, label):
        raise SubmissionInvalid(ValidationReport(valid=False, problems=[Problem(
            rule="kind_not_accepted", file=label, found="an ONNX model",
            fix="this competition takes images only: sample your generator yourself and upload a zip of PNGs, one "
                "folder per class (`arena generate` packs one; `arena submission spec` lists the rules)")]))
    if is_zip or not spec.accepts_model:  # anything else in an images-only competition: not_a_zip
        return validate_zip(path, spec, name=label)
    return validate_model(path, spec, name=label, dry_run=dry_run)


def looks_like_onnx(path: Path, name: str) -> bool:
    """Named .onnx, or starting as an ONNX file does: protobuf field 1 (ir_version, a varint) with a small value."""
    with open(path, "rb") as handle:
        head = handle.read(2)
    return name.lower().endswith(".onnx") or (len(head) == 2 and head[0] == 0x08 and 1 <= head[1] <= 32)


def validate_model(
    path: str | Path, spec: SubmissionSpec, *, dry_run: bool = True, name: str | None = None
) -> ModelInfo:
    """Every rule of MODEL_RULES; SubmissionInvalid with each problem (rule, found, fix) when any is broken."""
    path = Path(path)
    problems: list[Problem] = []

    def add(rule: str, found: str, fix: str) -> None:
        problems.append(Problem(rule=rule, file=name or path.name, found=found, fix=fix))

    size = path.stat().st_size
    sha256 = hashlib.sha256(path.read_bytes()).hexdigest() if size <= spec.max_model_bytes else ""
    latent_size, classes = 0, list[str]()
    if size > spec.max_model_bytes:
        add("model_too_large", f"{size:,} bytes, over the cap of {spec.max_model_bytes:,}",
            "shrink the generator (fewer channels, float16 weights) or ask the organizer for a larger cap")
    else:
        model = _load(path, add)
        if model is not None:
            _check_operators(model, add)
            latent_size, classes = _check_metadata(model, spec, add)
            _check_signature(model, spec, latent_size, add)
    if dry_run and not problems:
        _dry_run(path, spec, latent_size, add)
    report = ValidationReport(valid=not problems, problems=problems, entries=1, sha256=sha256, size_bytes=size,
                              checked=_what_was_checked(latent_size, classes, spec, dry_run))
    if problems:
        raise SubmissionInvalid(report)
    return ModelInfo(path=path, latent_size=latent_size, classes=classes, sha256=sha256, size_bytes=size,
                     report=report)


def _load(path: Path, add):
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:
        add("not_onnx", f"not a readable ONNX model ({type(exc).__name__})",
            "export with torch.onnx.export(..., dynamo=False) to one .onnx file (README: model submissions)")
        return None
    _check_self_contained(model, add)
    opset = next((o.version for o in model.opset_import if o.domain in STANDARD_DOMAINS), None)
    if opset is None or not MIN_OPSET <= opset <= MAX_OPSET:
        add("opset_out_of_range", f"opset {opset}",
            f"export with opset_version between {MIN_OPSET} and {MAX_OPSET} (e.g. opset_version=17)")
    return model


# Where a tensor stored outside the file was found -> (rule, fix). Every place a TensorProto can live is walked, so
# no tensor reaches onnxruntime (which would open the path it names, e.g. /etc/passwd or ../) unchecked.
EXTERNAL_DATA_RULES = {
    "initializer": ("external_data_initializer",
                    "export the weights inside the one file (torch.onnx.export(..., external_data=False))"),
    "attribute": ("external_data_attribute",
                  "store constants inside the file: re-export, or onnx.load the model with its data and "
                  "onnx.save(model, path, save_as_external_data=False)"),
    "subgraph": ("external_data_subgraph",
                 "store the tensors of every branch or loop body inside the file (save_as_external_data=False); "
                 "control flow is not accepted either, so export without If/Loop/Scan"),
}


def _check_self_contained(model, add) -> None:
    """One problem per place (initializers, node attributes, subgraphs) holding a tensor in external data."""
    found: dict[str, list[str]] = {}
    for place, where in _external_tensors(model.graph, subgraph=None):
        found.setdefault(place, []).append(where)
    for place, wheres in found.items():
        rule, fix = EXTERNAL_DATA_RULES[place]
        add(rule, f"{len(wheres)} tensor(s) stored in external data files instead of the model, e.g. {wheres[0]}",
            fix)


def _external_tensors(graph, *, subgraph: str | None):
    """(place, description) for each tensor of `graph` and of its subgraphs (place "subgraph", at any depth) whose
    data lives outside the file."""
    inside = f" in the subgraph {subgraph}" if subgraph else ""
    initializers = [(t, t.name) for t in graph.initializer]
    initializers += [(t, s.values.name) for s in graph.sparse_initializer for t in (s.values, s.indices)]
    for tensor, name in initializers:
        if _is_external(tensor):
            yield "initializer", f"initializer '{name}'{inside}{_location(tensor)}"
    for node in graph.node:
        label = f"{node.op_type} node '{node.name or (node.output[0] if node.output else '?')}'"
        for attribute in node.attribute:
            tensors = [attribute.t, *attribute.tensors]
            sparse = [attribute.sparse_tensor, *attribute.sparse_tensors]
            tensors += [t for s in sparse for t in (s.values, s.indices)]
            external = next((t for t in tensors if _is_external(t)), None)
            if external is not None:
                yield "attribute", f"attribute '{attribute.name}' of {label}{inside}{_location(external)}"
            for body in [attribute.g, *attribute.graphs]:
                if body.ByteSize():
                    nested = _external_tensors(body, subgraph=f"'{attribute.name}' of {label}")
                    yield from (("subgraph", where) for _, where in nested)


def _is_external(tensor) -> bool:
    from onnx import TensorProto

    return tensor.data_location == TensorProto.EXTERNAL or len(tensor.external_data) > 0


def _location(tensor) -> str:
    """Where the tensor says its data is (the 'location' entry), so the team sees what was referenced."""
    location = next((entry.value for entry in tensor.external_data if entry.key == "location"), None)
    return f" (location '{location[:100]}')" if location is not None else ""


def _check_operators(model, add) -> None:
    if model.functions:
        add("operator_not_allowed", f"{len(model.functions)} local function(s), e.g. '{model.functions[0].name}'",
            "export without export_modules_as_functions so every node is a standard operator")
    seen: set[tuple[str, str]] = set()
    for node in model.graph.node:
        key = (node.domain, node.op_type)
        if key in seen:
            continue
        seen.add(key)
        if node.domain not in STANDARD_DOMAINS:
            add("operator_not_allowed", f"custom operator '{node.op_type}' of domain '{node.domain}'",
                "rewrite that layer with standard PyTorch operations (no custom ops or contrib operators)")
        elif node.op_type not in ALLOWED_OPERATORS:
            add("operator_not_allowed", f"operator '{node.op_type}', not in the allowlist",
                "replace it with standard layers; control flow and random operators are not accepted "
                "(the arena draws the noise z itself)")


def _what_was_checked(latent_size: int, classes: list[str], spec: SubmissionSpec, dry_run: bool) -> str:
    """A valid model's summary in words: what the team's file was found to be and what ran."""
    ran = f", one batch of {DRY_RUN_BATCH} sampled" if dry_run else ""
    return (f"ONNX generator: latent size {latent_size}, classes {', '.join(classes)} (label order), "
            f"{spec.image_size}x{spec.image_size} output, standard operators only{ran}")


def _check_metadata(model, spec: SubmissionSpec, add) -> tuple[int, list[str]]:
    metadata = {p.key: p.value for p in model.metadata_props}
    fix = ("set onnx metadata_props 'latent_size' and 'classes' (`arena generate --model` and the README show "
           "how)")
    try:
        latent_size = int(metadata["latent_size"])
        classes = json.loads(metadata["classes"])
    except (KeyError, ValueError) as exc:
        add("metadata", f"missing or unreadable metadata ({type(exc).__name__}: {exc})", fix)
        return 0, []
    if latent_size < 1 or not isinstance(classes, list) or sorted(map(str, classes)) != sorted(spec.classes):
        add("metadata", f"latent_size {latent_size}, classes {classes}",
            f"latent_size >= 1 and classes a JSON list of exactly {spec.classes} in your label order")
        return 0, []
    return latent_size, [str(c) for c in classes]


def _dims(value) -> tuple[int, list[int | str]]:
    tensor = value.type.tensor_type
    return tensor.elem_type, [d.dim_value if d.HasField("dim_value") else d.dim_param for d in tensor.shape.dim]


def _fits(dims: list[int | str], expected: Sequence[int | None]) -> bool:
    """Static dimensions must match; a symbolic one (the batch) matches anything, None expects any size."""
    return len(dims) == len(expected) and all(
        want is None or isinstance(have, str) or have == want for have, want in zip(dims, expected, strict=True))


def _check_signature(model, spec: SubmissionSpec, latent_size: int, add) -> None:
    from onnx import TensorProto

    initializers = {t.name for t in model.graph.initializer}
    inputs = {v.name: _dims(v) for v in model.graph.input if v.name not in initializers}
    want_z, want_label = (TensorProto.FLOAT, [None, latent_size or None]), (TensorProto.INT64, [None])
    z, label = inputs.get(INPUT_Z), inputs.get(INPUT_LABEL)
    if (set(inputs) != {INPUT_Z, INPUT_LABEL} or z is None or label is None or z[0] != want_z[0]
            or label[0] != want_label[0] or not _fits(z[1], want_z[1]) or not _fits(label[1], want_label[1])):
        add("wrong_inputs", f"inputs {_describe(inputs)}",
            f"torch.onnx.export(G, (z, label), ..., input_names=['z', 'label']) with z float32 (N, {latent_size}) "
            "and label int64 (N,), batch axis dynamic")
    outputs = {v.name: _dims(v) for v in model.graph.output}
    images = outputs.get(OUTPUT_IMAGES)
    size = spec.image_size
    if (len(outputs) != 1 or images is None or images[0] not in (TensorProto.FLOAT, TensorProto.UINT8)
            or not _fits(images[1], [None, 1, size, size])):
        add("wrong_output", f"outputs {_describe(outputs)}",
            f"output_names=['images'], one float32 tensor (N, 1, {size}, {size}) in [-1, 1] (tanh) or uint8")


def _describe(values: dict[str, tuple[int, list[int | str]]]) -> str:
    from onnx import helper

    return ", ".join(f"'{name}' {helper.tensor_dtype_to_np_dtype(kind) if kind else '?'} {tuple(dims)}"
                     for name, (kind, dims) in values.items()) or "none"


def dry_run_model(info: ModelInfo, spec: SubmissionSpec) -> None:
    """The dry run of a model that passed the static rules; SubmissionInvalid with its problem when it fails."""
    problems: list[Problem] = []
    _dry_run(info.path, spec, info.latent_size,
             lambda rule, found, fix: problems.append(Problem(rule=rule, file=info.path.name, found=found, fix=fix)))
    if problems:
        raise SubmissionInvalid(info.report.model_copy(update={"valid": False, "problems": problems}))


def _dry_run(path: Path, spec: SubmissionSpec, latent_size: int, add) -> None:
    job = SamplingJob(model=str(path), labels=[0], per_class=DRY_RUN_BATCH, latent_size=latent_size,
                      image_size=spec.image_size, seed=0, batch_size=DRY_RUN_BATCH)
    try:
        sample_model(job, memory_bytes=spec.model_memory_bytes, time_limit_s=spec.model_time_limit_s)
    except SamplingFailed as exc:
        rule = DRY_RUN_RULES.get(exc.kind, "dry_run_failed")
        add(rule, f"sampling one batch of {DRY_RUN_BATCH}: {exc}",
            "run the exported file with onnxruntime on a batch yourself; it must finish quickly, within the "
            "memory cap, and return finite images of the right shape")
