"""Every built-in classifier passes the classifier contract kit.

Sizes and steps are the smallest that still test something: the light networks at 16 px, the
heavy ones at the smallest size they take (32 px for densenet121 / convnext_base), few steps.
"""

import pytest

from cxrbench.testing import ClassifierContractTests

BAD = [({"drop_rate": 1.5}, 32), ({}, 8)]


class TestTinyCNN(ClassifierContractTests):
    classifier_name = "tiny-cnn"
    sizes = (16, 32)
    bad_options = BAD


class TestResNet18(ClassifierContractTests):
    classifier_name = "resnet18"
    sizes = (16,)
    bad_options = BAD
    train_steps = 10


@pytest.mark.slow
class TestResNet50(ClassifierContractTests):
    classifier_name = "resnet50"
    sizes = (16,)
    bad_options = BAD
    train_steps = 12


@pytest.mark.slow
class TestDenseNet121(ClassifierContractTests):
    classifier_name = "densenet121"
    sizes = (32,)
    bad_options = [({}, 24)]
    train_steps, train_batch = 6, 8


@pytest.mark.slow
class TestConvNeXtBase(ClassifierContractTests):
    classifier_name = "convnext_base"
    sizes = (32,)
    bad_options = [({}, 24)]
    train_steps, train_batch = 6, 8
