"""The method framework: the registry, the I/O contract of every method, the model file, import rules."""

from __future__ import annotations

import ast
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

import spinelab
from spinelab.cli import main
from spinelab.errors import SpinelabError
from spinelab.io.datasets import find_cases
from spinelab.io.centroids import Centroids
from spinelab.io.formats import read_centroids
from spinelab.io.images import read_ct, write_nifti
from spinelab.io.volume import CTVolume
from spinelab.methods import METHODS, MethodSpec, load_method
from spinelab.methods.base import Method, Prediction
from spinelab.training import load_model_file, save_model_file

SOURCE = Path(__file__).parents[1] / "src" / "spinelab"
TOY = MethodSpec(name="toy", summary="toy for the framework tests", method="toy_method.method:ToyMethod",
                 config="toy_method.method:ToyConfig", train="toy_method.train:train",
                 train_arguments="toy_method.train:add_train_arguments")
STORAGE_ORDERS = (("L", "P", "S"), ("P", "I", "R"), ("S", "R", "A"))
#: Methods with a packaged model run here as users get them; one without checks its world frame
#: with stand-in networks in its own tests.
SHIPPED = sorted(name for name, spec in METHODS.items() if spec.default_model)


@pytest.fixture
def toy(monkeypatch):
    monkeypatch.setitem(METHODS, "toy", TOY)
    from toy_method.method import ToyMethod

    monkeypatch.setattr(ToyMethod, "seen_axcodes", [])
    return ToyMethod


@pytest.fixture(scope="module")
def sample_ct(tiny_dataset) -> CTVolume:
    return find_cases(tiny_dataset)[0].load()[0]


def predict_in_every_storage_order(ct: CTVolume, method: str, tmp_path: Path, model: str | None = None) -> list:
    """``spinelab predict`` on the same CT written in several axis orders; the world centroids of each."""
    paths = [write_nifti(ct.reoriented(codes), tmp_path / f"scan_{''.join(codes)}.nii.gz") for codes in STORAGE_ORDERS]
    argv = ["predict", *map(str, paths), "--method", method, "--out", str(tmp_path / "out")]
    assert main(argv + (["--model", model] if model else [])) == 0
    return [read_centroids(tmp_path / "out" / f"scan_{''.join(codes)}.mrk.json") for codes in STORAGE_ORDERS]


def assert_same_world_centroids(results: list) -> None:
    first = results[0]
    for other in results[1:]:
        assert other.labels.tolist() == first.labels.tolist()
        np.testing.assert_allclose(other.world, first.world, atol=1e-3)


@pytest.mark.parametrize("name", SHIPPED)
def test_every_registered_method_sees_an_ras_volume(name, sample_ct, monkeypatch):
    method = load_method(name)
    seen = []
    original = type(method).predict_canonical

    def spy(self, ct, timer):
        seen.append(ct.axcodes)
        return original(self, ct, timer)

    monkeypatch.setattr(type(method), "predict_canonical", spy)
    for codes in STORAGE_ORDERS:
        method.predict(sample_ct.reoriented(codes))
    assert seen == [("R", "A", "S")] * len(STORAGE_ORDERS)


@pytest.mark.parametrize("name", SHIPPED)
def test_every_registered_method_gives_the_same_world_centroids_in_any_storage_order(name, sample_ct, tmp_path):
    results = predict_in_every_storage_order(sample_ct, name, tmp_path)
    assert len(results[0]) > 0
    assert_same_world_centroids(results)


def test_a_new_method_is_one_folder_and_one_registry_entry(toy, tiny_dataset, sample_ct, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--method", "toy", "--data", str(tiny_dataset), "--out", str(run),
                 "--iterations", "2", "--batch-size", "2"]) == 0
    model = run / "model.pt"
    assert load_model_file(model, "toy", 1).meta["iterations"] == 2
    assert torch.load(run / "toy.ckpt", weights_only=False)["iteration"] == 2
    # The Python API takes the same arguments; a method without a pretraining step says so.
    assert spinelab.train(tiny_dataset, tmp_path / "api", method="toy", iterations=1, progress=False).is_file()
    capsys.readouterr()
    assert main(["pretrain", "--method", "toy", "--data", str(tiny_dataset), "--out", str(run)]) == 2
    assert capsys.readouterr().err.strip() == "spinelab: error: method 'toy' has no pretrain step"

    results = predict_in_every_storage_order(sample_ct, "toy", tmp_path, str(model))
    assert_same_world_centroids(results)
    assert toy.seen_axcodes == [("R", "A", "S")] * len(STORAGE_ORDERS)
    # Its label map is written on each input's own grid, and lies where the centroid is.
    for codes, centroids in zip(STORAGE_ORDERS, results):
        scan = read_ct(tmp_path / f"scan_{''.join(codes)}.nii.gz")
        mask = nib.load(tmp_path / "out" / f"scan_{''.join(codes)}_seg-vert_msk.nii.gz")
        assert mask.shape == scan.shape and np.allclose(mask.affine, scan.affine, atol=1e-4)
        voxel = np.round(centroids.to_voxel(scan.affine)[0]).astype(int)
        assert np.asarray(mask.dataobj)[tuple(voxel)] == 20


def test_a_model_given_to_another_method_is_a_one_line_error(toy, tiny_dataset, sample_ct, tmp_path, capsys):
    model = torch.nn.Linear(2, 2)
    path = save_model_file(tmp_path / "toy.pt", "toy", 1, {"net": model}, {})
    scan = write_nifti(sample_ct, tmp_path / "scan.nii.gz")
    assert main(["predict", str(scan), "--method", "multiview", "--model", str(path), "--out", str(tmp_path)]) == 2
    error = capsys.readouterr().err.strip()
    assert error == f"spinelab: error: {path}: a 'toy' model, not 'multiview' (use --method toy)"
    with pytest.raises(SpinelabError, match="format 2, but this spinelab reads format 1"):
        load_model_file(save_model_file(tmp_path / "v2.pt", "toy", 2, {"net": model}, {}), "toy", 1)
    (tmp_path / "junk.pt").write_bytes(b"not a model")
    with pytest.raises(SpinelabError, match="not a spinelab model file"):
        load_model_file(tmp_path / "junk.pt", "toy", 1)


def test_model_files_record_who_wrote_them_and_store_half_precision(tmp_path):
    model = torch.nn.Linear(3, 2)
    saved = load_model_file(save_model_file(tmp_path / "m.pt", "toy", 1, {"net": model}, {"k": 1}, {"data": "d"}),
                            "toy", 1)
    assert saved.config == {"k": 1} and saved.meta == {"data": "d"}
    assert set(saved.written_by) == {"spinelab", "torch", "date", "command"}
    assert torch.equal(saved.networks["net"]["weight"], model.weight.detach().half().float())
    packaged = load_model_file(METHODS["multiview"].model_path(None), "multiview", 1)
    assert packaged.written_by["spinelab"] and packaged.meta["training_cases"] > 0


def test_a_config_change_keeps_the_weights_and_the_writer_and_is_recorded(tmp_path):
    from spinelab.training.model_file import update_model_config

    model = torch.nn.Linear(3, 2)
    path = save_model_file(tmp_path / "m.pt", "toy", 1, {"net": model}, {"k": 1, "margin": 0.0}, {"data": "d"})
    before = load_model_file(path, "toy", 1)
    after = load_model_file(update_model_config(path, "toy", 1, {"margin": 0.5}), "toy", 1)
    assert after.config == {"k": 1, "margin": 0.5} and after.written_by == before.written_by
    assert torch.equal(after.networks["net"]["weight"], before.networks["net"]["weight"])
    assert after.meta["data"] == "d" and after.meta["config_changes"][0]["changes"] == {"margin": 0.5}
    with pytest.raises(SpinelabError, match="a 'toy' model, not 'multiview'"):
        update_model_config(path, "multiview", 1, {"margin": 1.0})


FIXED_CT = CTVolume(np.zeros((100, 100, 50), np.float32), np.diag([1.0, 1.0, 2.0, 1.0]))  # z from -1 to 99 mm
#: L3, L4, L5 in ``FIXED_CT``: the bottom and top faces cut L3 and L5, L4 is whole.
FIXED_LUMBAR = Centroids([22, 23, 24], [[50, 50, 5], [50, 50, 50], [50, 50, 97]], [0.3, 0.6, 0.9])


def test_the_face_margin_drops_centroids_whose_body_the_faces_cut():
    from spinelab.methods.base import face_clearance, within_volume

    ct, lumbar = FIXED_CT, FIXED_LUMBAR
    clearance = face_clearance(lumbar, ct)
    # L3 6 mm above the bottom face (half height 13.25), L4 limited by its half width 25.5 at 49.5 mm
    # from the side faces, L5 2 mm below the top face (half height 13).
    np.testing.assert_allclose(clearance, [6 / 13.25, 49.5 / 25.5, 2 / 13.0], rtol=1e-6)
    details = {}
    kept = within_volume(lumbar, ct, details, face_margin=0.5)
    assert kept.labels.tolist() == [23] and details["cut_by_face"] == ["L3", "L5"]
    assert within_volume(lumbar, ct, {}).labels.tolist() == [22, 23, 24]


class FixedMethod(Method):
    """Reports ``FIXED_LUMBAR`` whatever the CT."""

    def __init__(self, **settings):
        from types import SimpleNamespace

        self.config = SimpleNamespace(**settings)

    @classmethod
    def from_model_file(cls, model, device):
        raise NotImplementedError

    def predict_canonical(self, ct, timer):
        return Prediction(FIXED_LUMBAR)


def test_predict_drops_what_the_face_margin_in_the_methods_settings_calls_cut():
    assert FixedMethod(face_margin=0.5).predict(FIXED_CT).centroids.labels.tolist() == [23]
    assert FixedMethod().predict(FIXED_CT).centroids.labels.tolist() == [22, 23, 24]


def test_low_confidence_is_judged_on_the_methods_own_scale():
    assert "low confidence (< 0.5): L3" in FixedMethod().predict(FIXED_CT).review
    assert "low confidence (< 0.7): L3 L4" in FixedMethod(review_confidence=0.7).predict(FIXED_CT).review
    assert not any("low confidence" in reason for reason in FixedMethod(review_confidence=0.2).predict(FIXED_CT).review)


def test_with_suppress_contrast_the_method_sees_the_ct_the_bone_stage_cleaned():
    class SeenMethod(FixedMethod):
        def predict_canonical(self, ct, timer):
            self.seen = ct
            return super().predict_canonical(ct, timer)

    class Stage:
        def without_contrast(self, ct):
            return ct.with_array(ct.array + 1.0)

    method = SeenMethod(suppress_contrast=True)
    method.use_bone_stage(Stage())
    prediction = method.predict(FIXED_CT)
    assert (method.seen.array == 1.0).all() and "bone stage" in prediction.timings
    plain = SeenMethod()
    plain.predict(FIXED_CT)
    assert (plain.seen.array == 0.0).all()


def test_an_unknown_method_or_a_method_without_a_packaged_model_says_what_to_do(monkeypatch):
    with pytest.raises(SpinelabError, match="unknown method 'nope'; available: multiview"):
        load_method("nope")
    monkeypatch.setitem(METHODS, "toy", TOY)
    with pytest.raises(SpinelabError, match="ships no trained model; train one with 'spinelab train --method toy'"):
        load_method("toy")


def test_resampling_a_label_map_onto_another_grid_keeps_world_positions():
    coarse = CTVolume(np.zeros((10, 10, 10), np.int16), np.diag([4.0, 4.0, 4.0, 1.0]))
    coarse.array[4, 5, 6] = 7
    fine = CTVolume(np.zeros((40, 40, 40), np.int16), np.diag([1.0, 1.0, 1.0, 1.0])).reoriented(("L", "P", "I"))
    back = coarse.resampled_onto(fine)
    assert back.shape == fine.shape and np.array_equal(back.affine, fine.affine)
    world = fine.to_world(np.argwhere(back.array == 7))
    assert np.allclose(world.mean(axis=0), [16.0, 20.0, 24.0], atol=1.0)


# Import rules ---------------------------------------------------------------------------------------------------


def _imports(path: Path) -> set[str]:
    """Every spinelab module a source file imports, at module level or inside functions.

    ``from package import submodule`` counts as importing the submodule only (the package's own
    ``__init__`` is then already loaded or loading).
    """
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("spinelab"):
            submodules = {f"{node.module}.{a.name}" for a in node.names if _module_file(f"{node.module}.{a.name}")}
            found.update(submodules if len(submodules) == len(node.names) else {node.module, *submodules})
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("spinelab"))
    return found


def _module_file(module: str) -> Path | None:
    base = SOURCE.parent / Path(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _module_name(path: Path) -> str:
    parts = path.relative_to(SOURCE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(path): _imports(path) for path in SOURCE.rglob("*.py")}


def _method_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[2] if len(parts) > 2 and parts[1] == "methods" and parts[2] != "base" else None


def test_eval_cli_io_and_shared_parts_import_no_method_internals():
    shared = ("eval", "cli", "io", "training", "inference", "nets", "decoders", "targets", "vertebrae", "devices",
              "viz", "synth", "outputs")
    offenders = {module: sorted(i for i in imports if _method_of(i)) for module, imports in MODULES.items()
                 if module.split(".")[1:2] and module.split(".")[1] in shared}
    assert {module: found for module, found in offenders.items() if found} == {}


def test_no_method_imports_another():
    crossings = {module: sorted(i for i in imports if _method_of(i) and _method_of(i) != _method_of(module))
                 for module, imports in MODULES.items() if _method_of(module)}
    assert {module: found for module, found in crossings.items() if found} == {}


def test_there_is_no_import_circle():
    graph = {module: {i for i in imports if i in MODULES and i != module} for module, imports in MODULES.items()}
    state: dict[str, int] = {}

    def visit(module: str, path: list[str]) -> list[str] | None:
        state[module] = 1
        for other in sorted(graph[module]):
            if state.get(other) == 1:
                return path + [other]
            if other not in state and (cycle := visit(other, path + [other])):
                return cycle
        state[module] = 2
        return None

    cycles = [cycle for module in sorted(graph) if module not in state and (cycle := visit(module, [module]))]
    assert cycles == []


def test_training_data_smaller_than_one_batch_is_a_one_line_error_not_a_hang():
    from spinelab.training import batches

    with pytest.raises(SpinelabError, match="gives 3 items, fewer than one batch of 4; lower --batch-size"):
        next(batches([torch.zeros(1)] * 3, 4, 0))
    assert next(batches([torch.zeros(1)] * 4, 4, 0)).shape == (4, 1)


def test_a_diverging_training_run_stops_with_one_line_instead_of_training_on_nan(tmp_path):
    from spinelab.training import Trainer

    class Diverging(Trainer):
        def build_network(self):
            return torch.nn.Linear(1, 1)

        def build_dataset(self):
            return [(torch.zeros(1),)] * 4

        def loss(self, network, batch):
            return network(batch[0]).sum() * float("nan")

    with pytest.raises(SpinelabError, match="network: training diverged at iteration 0 .*lower --lr"):
        Diverging(tmp_path, iterations=3, batch_size=2, progress=False).fit()


def test_a_step_with_non_finite_gradients_is_skipped_and_the_weights_stay_finite(tmp_path):
    from spinelab.training import Trainer

    class OneBadStep(Trainer):
        calls = 0

        def build_network(self):
            return torch.nn.Linear(1, 1)

        def build_dataset(self):
            return [(torch.ones(1),)] * 4

        def loss(self, network, batch):
            OneBadStep.calls += 1
            output = network(batch[0])
            if OneBadStep.calls == 1:  # a finite loss whose gradient is NaN (sqrt at zero times zero)
                return torch.sqrt((output * 0).abs()).sum()
            return (output ** 2).sum()

    network = OneBadStep(tmp_path, iterations=3, batch_size=2, progress=False).fit()
    assert all(torch.isfinite(p).all() for p in network.parameters())


def test_the_benchmark_prints_each_papers_figures_beside_ours():
    from spinelab.eval.benchmark import MethodResult, published_table
    from spinelab.eval.metrics import evaluate_dataset
    from spinelab.vertebrae import LABELS

    truth = Centroids([LABELS["L1"], LABELS["L2"]], [[0, 0, 30], [0, 0, 0]])
    shifted = Centroids([LABELS["L1"], LABELS["L2"]], [[0, 0, 33], [0, 0, 0]])
    result = MethodResult(evaluate_dataset({"a": (shifted, truth)}), 1.0,
                          {"pooled": evaluate_dataset({"b": (Centroids.empty(), truth)})}, {}, {})
    row = published_table({"dense": result}, {"dense": METHODS["dense"].published}).splitlines()[-1]
    cells = [cell.strip() for cell in row.split("|")[1:-1]]
    assert cells[:1] + cells[2:6] == ["dense", "85.8 %", "5.60", "100.0 %, 1.50 mm", "0.0 %"]


def test_benchmark_variants_are_named_by_their_method():
    from spinelab.cli.benchmark import _variants

    assert _variants(["integral:fc_head=a.pt", "multiview:baseline=b.pt"]) == {
        "integral": {"fc_head": "a.pt"}, "multiview": {"baseline": "b.pt"}}
    with pytest.raises(SpinelabError, match="expected METHOD:NAME=PATH"):
        _variants(["baseline=b.pt"])
