"""png-folder passes cxrbench's dataset contract kit, on a small folder written in tmp_path.

``pytest`` in this folder (``pythonpath = ["src"]`` in pyproject.toml: no install needed), or
``dataset_name = "png-folder"`` instead of the class once the package is installed.
"""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cxrbench.errors import DatasetError
from cxrbench.testing import DatasetContractTests, make_toy_images
from cxrbench_example_dataset.plugin import PngFolderDataset


def write_png_folder(root: Path, *, patients: int = 4, per_patient: int = 2, size: int = 16,
                     masks: bool = True, table: bool = True) -> Path:
    """``root/png-folder`` in the plugin's layout: toy radiographs (positive = a bright blob),
    ``patients`` patients per split and class, ``per_patient`` images each."""
    folder = root / "png-folder"
    rows = ["patient,sex,age"]
    for s, split in enumerate(("train", "test")):
        for label, cls in enumerate(("negative", "positive")):
            images = make_toy_images([float(label)] * patients * per_patient, size, seed=10 * s + label).numpy()
            for p in range(patients):
                patient = f"{split[:2]}{cls[:3]}{p:03d}"  # e.g. trpos002: never in two splits
                rows.append(f"{patient},{'FM'[p % 2]},{30 + p}")
                for n in range(per_patient):
                    rel = Path(split) / cls / f"{patient}_{n}.png"
                    (folder / rel).parent.mkdir(parents=True, exist_ok=True)
                    Image.fromarray(images[p * per_patient + n, 0]).save(folder / rel)
                    if masks and n == 0:  # masks for some images only: has_mask is per record
                        (folder / "masks" / rel).parent.mkdir(parents=True, exist_ok=True)
                        Image.fromarray(np.full((size, size), 255, np.uint8)).save(folder / "masks" / rel)
    if table:
        (folder / "patients.csv").write_text("\n".join(rows) + "\n")
    return folder


class TestPngFolder(DatasetContractTests):
    dataset_class = PngFolderDataset
    dataset_options = {"val_fraction": 0.25}
    size = 16

    @pytest.fixture
    def dataset_root(self, tmp_path):
        write_png_folder(tmp_path)
        return tmp_path


def test_patients_labels_and_metadata(tmp_path):
    folder = write_png_folder(tmp_path)
    # the root may be the dataset folder itself (folder_candidates = ("png-folder", ""))
    records = {r.key: r for r in PngFolderDataset(folder).records()}
    r = records["test/positive/tepos001_1.png"]
    assert (r.split, r.labels, r.patient_id) == ("test", (1.0,), "tepos001")
    assert r.metadata == {"sex": "M", "age": 31} and not r.has_mask
    assert records["test/positive/tepos001_0.png"].has_mask
    assert {r.split for r in records.values()} == {"train", "val", "test"}


def test_bad_file_name_is_a_one_line_error(tmp_path):
    folder = write_png_folder(tmp_path, table=False)
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(folder / "train" / "negative" / "scan.png")
    with pytest.raises(DatasetError, match=r"scan\.png' is not <patient>_<n>\.png; expected layout"):
        PngFolderDataset(tmp_path).records()
