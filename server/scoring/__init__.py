"""The scoring engine: pytorch-fid's exact FID per class, cached references, the MiFID memorization check.

    from server.scoring import Scorer
    report = Scorer().score(Competition.load(dir), {"with_mask": uint8 (N,64,64), ...})

Call chain: network (pytorch-fid's InceptionV3) -> weights (resolve / convert / verify) -> onnx_engine (the CPU
engine: cached ONNX export, ONNX Runtime) -> features (PNG or arrays -> pool3, float64, torch or onnxruntime) ->
frechet (mu, sigma, sqrt(sigma), eigenvalue trace) and memorization (1 - |cos| nearest neighbours) ->
references (per-competition .npz cache) -> scorer (ScoreReport).
"""

from server.scoring.features import FeatureExtractor
from server.scoring.frechet import ReferenceStats, frechet_distance
from server.scoring.scorer import SCORER_VERSION, Scorer, fid_of_images
from server.scoring.weights import WeightsNotFoundError
from submissions.results import ClassResult, ScoreReport

__all__ = [
    "SCORER_VERSION",
    "ClassResult",
    "FeatureExtractor",
    "ReferenceStats",
    "ScoreReport",
    "Scorer",
    "WeightsNotFoundError",
    "fid_of_images",
    "frechet_distance",
]
