"""The IGDS sampler on a tiny pixel prior: determinism, batch independence, window, guidance direction."""

import math

import pytest
import torch

from inversa.errors import UserError
from inversa.distill.classifier import load_classifier
from inversa.pretrained.conditional import load_conditional_prior
from inversa.solvers.igds import IGDS, ConditionalSampler, beta_for_ipc


@pytest.fixture()
def parts(cond_model_dir, classifier_dir):
    prior = load_conditional_prior(str(cond_model_dir))
    clf = load_classifier(str(classifier_dir))
    Q = torch.tensor([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.05, 0.15, 0.8]])
    return prior, clf, Q


def _gens(seeds):
    return [torch.Generator().manual_seed(s) for s in seeds]


def test_same_seed_same_images_and_batch_independence(parts):
    prior, clf, Q = parts
    solver = IGDS(prior, clf, Q, ipc=10, scale=5.0)
    a = solver.generate([0, 1, 2], generator=_gens([7, 8, 9]), num_steps=8, progress=False).x
    b = solver.generate([0, 1, 2], generator=_gens([7, 8, 9]), num_steps=8, progress=False).x
    assert torch.equal(a, b)
    alone = solver.generate([1], generator=_gens([8]), num_steps=8, progress=False).x
    torch.testing.assert_close(alone[0], a[1], rtol=0, atol=1e-5)
    other = solver.generate([1], generator=_gens([9]), num_steps=8, progress=False).x
    assert (other[0] - a[1]).abs().max() > 1e-3


def test_guidance_only_inside_the_window(parts):
    prior, clf, Q = parts
    solver = IGDS(prior, clf, Q, ipc=10, window=(0.2, 0.8))
    ts = solver.timesteps(20)
    inside = sum(0.2 * 1000 <= t <= 0.8 * 1000 for t in ts)
    out = solver.generate([0, 1], generator=_gens([0, 1]), num_steps=20, progress=False)
    assert 0 < inside < 20 and out.vjp == inside
    assert out.metadata["window"] == [0.2, 0.8] and out.metadata["beta"] == pytest.approx(0.1 * math.log(10))
    zero = IGDS(prior, clf, Q, ipc=10, scale=0.0).generate([0], generator=_gens([0]), num_steps=5, progress=False)
    assert zero.vjp == 0


def test_scale_zero_is_the_unguided_sampler(parts):
    prior, clf, Q = parts
    plain = ConditionalSampler(prior).generate([2, 0], generator=_gens([3, 4]), num_steps=6, progress=False)
    igds0 = IGDS(prior, clf, Q, ipc=1, scale=0.0).generate([2, 0], generator=_gens([3, 4]), num_steps=6, progress=False)
    torch.testing.assert_close(plain.x, igds0.x, rtol=0, atol=1e-6)
    assert plain.metadata["solver"] == "unguided" and igds0.metadata["solver"] == "igds"


def test_guidance_raises_the_classifier_log_likelihood(parts):
    """The prototype term pulls samples towards what the classifier reads as y."""
    prior, clf, Q = parts
    labels = [0, 1, 2] * 3
    gens = lambda: _gens(range(9))  # noqa: E731

    def mean_log_qy(x):
        with torch.no_grad():
            return clf(x).log_softmax(-1).gather(1, torch.tensor(labels)[:, None]).mean().item()

    plain = ConditionalSampler(prior).generate(labels, generator=gens(), num_steps=10, progress=False).x
    guided = IGDS(prior, clf, Q, ipc=1, scale=50.0, window=(0.0, 1.0)).generate(labels, generator=gens(), num_steps=10,
                                                                                    progress=False).x
    assert mean_log_qy(guided) > mean_log_qy(plain) + 0.1


def test_contextual_term_moves_away_from_the_centroid(parts):
    """With beta > 0 the KL to Q_y is larger than with beta = 0 (same seeds)."""
    prior, clf, Q = parts
    labels = torch.tensor([0, 1, 2, 0, 1, 2])

    def kl(beta):
        s = IGDS(prior, clf, Q, ipc=50, scale=50.0, beta=beta, window=(0.0, 1.0))
        x = s.generate(labels, generator=_gens(range(6)), num_steps=10, progress=False).x
        with torch.no_grad():
            return s.objective(x * 2 - 1, labels)[2].mean().item()

    assert kl(5.0) > kl(0.0)


def test_beta_schedule_and_parameter_errors(parts):
    prior, clf, Q = parts
    assert beta_for_ipc(1) == 0.0 and beta_for_ipc(10) < beta_for_ipc(50)
    assert beta_for_ipc(10, 0.2, "constant") == 0.2 and beta_for_ipc(4, 1.0, "sqrt") == 1.0
    with pytest.raises(UserError, match="beta_schedule 'cubic' is not known; accepted: log, sqrt, constant"):
        beta_for_ipc(10, schedule="cubic")
    with pytest.raises(UserError, match="ipc must be a positive integer"):
        IGDS(prior, clf, Q, ipc=0)
    with pytest.raises(UserError, match="window must be two fractions"):
        IGDS(prior, clf, Q, ipc=1, window=(0.8, 0.2))
    with pytest.raises(UserError, match="window must be two fractions like"):
        IGDS(prior, clf, Q, ipc=1, window="a,b")
    assert IGDS(prior, clf, Q, ipc=1, window="0.1,0.9").window == (0.1, 0.9)
    with pytest.raises(UserError, match="scale must be a non-negative"):
        IGDS(prior, clf, Q, ipc=1, scale=-1)
