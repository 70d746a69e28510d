"""The harness's classifier training: learns, is reproducible, masks NaN labels, selects on val loss."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from cxrbench.errors import ConfigError
from cxrbench.plugins.classifiers.timm_models import TinyCNN
from cxrbench.training import (
    TrainRecipe,
    _lr_factor,
    augment_batch,
    build_seeded,
    compute_pos_weight,
    evaluate_loss,
    masked_bce,
    predict,
    to_model_input,
    train_classifier,
)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """One intra-op thread: on a shared 2-core machine, 2 OpenMP threads competing with other
    processes make these small models 5-30x slower (measured); one thread is never much slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

QUICK = TrainRecipe(epochs=4, batch_size=16, lr=3e-3)


def squares(n: int, size: int = 32, seed: int = 0):
    """Noise, plus a bright 8x8 square at a random place on the positives."""
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(n, 1, size, size, generator=g) * 60).to(torch.uint8)
    y = torch.rand(n, generator=g) < 0.5
    for i in torch.nonzero(y).flatten().tolist():
        r, c = torch.randint(0, size - 9, (2,), generator=g).tolist()
        x[i, 0, r : r + 8, c : c + 8] = 220
    return x, y.float()[:, None]


@pytest.fixture(scope="module")
def data():
    return squares(256, seed=0), squares(128, seed=1)


@pytest.fixture(scope="module")
def trained(data):
    """One QUICK training shared by the tests that only inspect its result."""
    return _train(data)


def _train(data, recipe=QUICK, seed=0, labels=None):
    (xt, yt), (xv, yv) = data
    if labels is not None:
        yt, yv = labels
    built = build_seeded(TinyCNN(), yt.shape[1], 32, False, seed=seed)
    return train_classifier(built, xt, yt, xv, yv, recipe=recipe, device="cpu", seed=seed, progress=False)


def test_to_model_input_range():
    x = torch.tensor([0, 127, 255], dtype=torch.uint8).view(1, 1, 1, 3)
    y = to_model_input(x)
    assert y.dtype == torch.float32
    torch.testing.assert_close(y.flatten(), torch.tensor([-1.0, 127 / 127.5 - 1, 1.0]))
    with pytest.raises(TypeError):
        to_model_input(x.float())


def test_learns_an_easy_task(data, trained):
    from sklearn.metrics import roc_auc_score

    result = trained
    (_, _), (xv, yv) = data
    p = predict(result.model, xv, device="cpu")
    assert p.shape == (128, 1) and p.dtype == np.float32
    assert ((p >= 0) & (p <= 1)).all()
    assert roc_auc_score(yv[:, 0].numpy(), p[:, 0]) > 0.9
    assert not result.model.training
    assert result.images_seen == 4 * 256 and result.steps == 4 * 16
    for h in result.history:
        assert set(h) >= {"train_loss", "val_loss", "lr", "images_per_s", "seconds"}
        assert h["images_per_s"] > 0


def test_model_selection_keeps_the_best_epoch(data, trained):
    result = trained
    losses = [h["val_loss"] for h in result.history]
    assert len(losses) == QUICK.epochs and all(math.isfinite(v) for v in losses)
    assert result.best_epoch == int(np.argmin(losses))
    assert result.best_val_loss == pytest.approx(min(losses))
    # the returned weights are the selected ones
    (_, _), (xv, yv) = data
    assert evaluate_loss(result.model, xv, yv, device="cpu") == pytest.approx(result.best_val_loss, rel=1e-5)


def test_selection_last_needs_no_tuning_set(data):
    (xt, yt), _ = data
    built = build_seeded(TinyCNN(), 1, 32, False, seed=0)
    recipe = TrainRecipe(epochs=1, batch_size=32, selection="last", max_steps=2)
    result = train_classifier(built, xt, yt, None, None, recipe=recipe, device="cpu", seed=0, progress=False)
    assert result.best_epoch == 0 and result.steps == 2 and math.isnan(result.best_val_loss)
    with pytest.raises(ValueError, match="tuning set"):
        train_classifier(built, xt, yt, None, None, recipe=TrainRecipe(), device="cpu", seed=0, progress=False)


def test_same_seed_same_predictions_other_seed_other_predictions(data):
    recipe = TrainRecipe(epochs=2, batch_size=32, lr=3e-3, max_steps=6)
    (_, _), (xv, _) = data
    a = predict(_train(data, recipe, seed=3).model, xv, device="cpu")
    b = predict(_train(data, recipe, seed=3).model, xv, device="cpu")
    c = predict(_train(data, recipe, seed=4).model, xv, device="cpu")
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_masked_bce_matches_manual_computation():
    logits = torch.tensor([[0.5, -1.0, 2.0], [1.5, 0.0, -0.5]], requires_grad=True)
    targets = torch.tensor([[1.0, float("nan"), 0.0], [0.0, 1.0, float("nan")]])
    loss, n = masked_bce(logits, targets)
    assert n == 4
    obs = [(0.5, 1.0), (2.0, 0.0), (1.5, 0.0), (0.0, 1.0)]
    manual = sum(-(t * math.log(1 / (1 + math.exp(-z))) + (1 - t) * math.log(1 - 1 / (1 + math.exp(-z)))) for z, t in obs) / 4
    assert float(loss.detach()) == pytest.approx(manual, rel=1e-6)
    loss.backward()
    assert logits.grad[0, 1] == 0 and logits.grad[1, 2] == 0
    assert (logits.grad[0, [0, 2]] != 0).all()
    # nothing observed: zero loss, zero gradient, no NaN
    z = torch.zeros(2, 1, requires_grad=True)
    loss, n = masked_bce(z, torch.full((2, 1), float("nan")))
    loss.backward()
    assert n == 0 and float(loss.detach()) == 0.0 and (z.grad == 0).all()


def test_all_nan_label_column_contributes_nothing(data):
    (xt, yt), (xv, yv) = data
    nan_t = torch.full_like(yt, float("nan"))
    nan_v = torch.full_like(yv, float("nan"))
    labels = (torch.cat([yt, nan_t], 1), torch.cat([yv, nan_v], 1))
    recipe = TrainRecipe(epochs=1, batch_size=32, lr=3e-3, ema_decay=None, max_steps=4)
    torch.manual_seed(0)
    init_bias = build_seeded(TinyCNN(), 2, 32, False, seed=0).module.fc.bias.detach().clone()
    result = _train(data, recipe, seed=0, labels=labels)
    assert all(math.isfinite(h["train_loss"]) and math.isfinite(h["val_loss"]) for h in result.history)
    bias = result.model.fc.bias.detach()
    assert bias[1] == init_bias[1]  # the all-NaN logit never got a gradient (no decay on biases)
    assert bias[0] != init_bias[0]


def test_balance_pos_weight():
    y = torch.tensor([[1.0, 0.0], [0.0, float("nan")], [0.0, 1.0], [0.0, 0.0]])
    torch.testing.assert_close(compute_pos_weight(y), torch.tensor([3.0, 2.0]))


def test_augmentation_is_seeded_and_keeps_the_canvas():
    x = to_model_input(squares(8, seed=5)[0])
    flip_only = augment_batch(x, ("hflip",), torch.Generator().manual_seed(0))
    for a, b in zip(flip_only, x):  # each image is itself or its mirror image, never upside down
        assert torch.equal(a, b) or torch.equal(a, b.flip(-1))
    a = augment_batch(x, ("hflip", "affine"), torch.Generator().manual_seed(1))
    b = augment_batch(x, ("hflip", "affine"), torch.Generator().manual_seed(1))
    c = augment_batch(x, ("hflip", "affine"), torch.Generator().manual_seed(2))
    assert a.shape == x.shape and torch.equal(a, b) and not torch.equal(a, c)
    assert a.min() >= -1.0 - 1e-5 and a.max() <= 1.0 + 1e-5
    assert augment_batch(x, (), None) is x


def test_lr_schedule_warmup_then_cosine():
    f = [_lr_factor(s, 100, 10, "cosine") for s in range(100)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(f[10:], f[11:])) and f[-1] < 0.01
    assert _lr_factor(50, 100, 10, "constant") == 1.0


def test_recipe_is_validated_data():
    r = TrainRecipe(augment=["hflip"])
    assert r.augment == ("hflip",) and hash(r)
    assert r.to_dict()["augment"] == ["hflip"]
    with pytest.raises(ConfigError, match="optimizer"):
        TrainRecipe(optimizer="lion")
    with pytest.raises(ConfigError, match="vflip"):
        TrainRecipe(augment=("vflip",))
    with pytest.raises(ConfigError, match="selection"):
        TrainRecipe(selection="test_auc")


def test_rejects_non_uint8_images(data):
    (xt, yt), (xv, yv) = data
    built = build_seeded(TinyCNN(), 1, 32, False, seed=0)
    with pytest.raises(ValueError, match="uint8"):
        train_classifier(built, xt.float(), yt, xv, yv, recipe=QUICK, device="cpu", seed=0, progress=False)
