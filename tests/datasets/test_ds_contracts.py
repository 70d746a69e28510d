"""Every built-in dataset passes the dataset contract kit, on the fixture folders of conftest.py
(shaped exactly like the real downloads) or, for phantom, on its embedded images."""

import pytest

from cxrbench.testing import DatasetContractTests


class TestPhantom(DatasetContractTests):
    dataset_name = "phantom"
    dataset_options = {"n_train": 40, "n_val": 10, "n_test": 20, "render_size": 32}


class TestKermany(DatasetContractTests):
    dataset_name = "kermany"

    @pytest.fixture
    def dataset_root(self, kermany_root):
        return kermany_root


class TestRSNAPneumonia(DatasetContractTests):
    dataset_name = "rsna-pneumonia"

    @pytest.fixture
    def dataset_root(self, rsna_root):
        return rsna_root


class TestCheXpert(DatasetContractTests):
    dataset_name = "chexpert"

    @pytest.fixture
    def dataset_root(self, chexpert_root):
        return chexpert_root


class TestMimicCXR(DatasetContractTests):
    dataset_name = "mimic-cxr"

    @pytest.fixture
    def dataset_root(self, mimic_root):
        return mimic_root


class TestNIHChestXray14(DatasetContractTests):
    dataset_name = "nih-cxr14"

    @pytest.fixture
    def dataset_root(self, nih_root):
        return nih_root


class TestPneumoniaMNIST(DatasetContractTests):
    dataset_name = "pneumoniamnist"

    @pytest.fixture
    def dataset_root(self, medmnist_root):
        return medmnist_root
