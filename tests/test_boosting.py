"""bebert/boosting.py against scikit-learn's AdaBoostClassifier (SAMME) and AdaBoostRegressor
(AdaBoost.R2, weighted median) on toy problems."""

import numpy as np
import pytest
from sklearn.datasets import make_classification, make_regression
from sklearn.ensemble import AdaBoostClassifier, AdaBoostRegressor
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from bebert.boosting import (combine_members, r2_round, resample, samme_round, uniform_weights, weighted_median,
                             weighted_vote)
from bebert.errors import BebertError


@pytest.mark.parametrize("num_classes", [2, 3])
def test_samme_rounds_match_scikit_learn(num_classes):
    x, y = make_classification(n_samples=300, n_features=6, n_informative=4, n_redundant=0,
                               n_classes=num_classes, n_clusters_per_class=1, random_state=0)
    ada = AdaBoostClassifier(DecisionTreeClassifier(max_depth=1), n_estimators=6, random_state=0).fit(x, y)
    weights = uniform_weights(len(y))
    alphas = []
    for member, error, alpha in zip(ada.estimators_, ada.estimator_errors_, ada.estimator_weights_):
        step = samme_round(weights, member.predict(x) == y, num_classes)
        assert step.error == pytest.approx(error, rel=1e-12)
        assert step.alpha == pytest.approx(alpha, rel=1e-12)
        assert not step.stop
        # scikit-learn fits each stump on these weights: refitting on ours gives the same stump.
        refit = DecisionTreeClassifier(max_depth=1, random_state=member.random_state).fit(x, y, sample_weight=weights)
        assert np.array_equal(refit.predict(x), member.predict(x))
        weights = step.weights
        alphas.append(step.alpha)
    votes = np.stack([m.predict(x) for m in ada.estimators_])
    assert np.array_equal(weighted_vote(votes, np.array(alphas), num_classes), ada.predict(x))


def test_r2_rounds_and_weighted_median_match_scikit_learn():
    x, y = make_regression(n_samples=200, n_features=5, noise=10.0, random_state=0)
    ada = AdaBoostRegressor(DecisionTreeRegressor(max_depth=3), n_estimators=5, random_state=0).fit(x, y)
    # scikit-learn fits each tree on a resample drawn from the weights; the trees' predictions on
    # the whole set then drive the update, which must give its errors and alphas round after round.
    weights = uniform_weights(len(y))
    alphas = []
    for member, error, alpha in zip(ada.estimators_, ada.estimator_errors_, ada.estimator_weights_):
        step = r2_round(weights, member.predict(x) - y)
        assert step.error == pytest.approx(error, rel=1e-12)
        assert step.alpha == pytest.approx(alpha, rel=1e-12)
        weights = step.weights
        alphas.append(step.alpha)
    outputs = np.stack([m.predict(x) for m in ada.estimators_])
    assert np.allclose(weighted_median(outputs, np.array(alphas)), ada.predict(x), rtol=0, atol=1e-12)
    joined = combine_members(outputs[..., None], alphas, "vote", regression=True)
    assert np.allclose(joined, ada.predict(x), rtol=0, atol=1e-12)


def test_r2_stops_on_perfect_and_on_weak_members():
    w = uniform_weights(4)
    assert r2_round(w, np.zeros(4)).stop
    weak = r2_round(w, np.array([1.0, 1.0, 1.0, 0.0]))  # average loss 0.75 >= 0.5
    assert weak.stop and weak.alpha == 0.0


def test_combine_rules_on_hand_made_logits():
    # Two members, three rows, two classes; member 0 weighs 1, member 1 weighs 2.
    logits = np.array([[[2.0, 0.0], [0.0, 1.0], [0.0, 5.0]],
                       [[0.0, 0.5], [1.0, 0.0], [1.0, 0.0]]])
    assert list(combine_members(logits, [1.0, 2.0], "vote", regression=False)) == [1, 0, 0]  # member 1 wins
    # logits: row 0 sums to [2, 1] -> 0; row 1 [2, 1] -> 0; row 2 [2, 5] -> 1 (a confident member 0)
    assert list(combine_members(logits, [1.0, 2.0], "logits", regression=False)) == [0, 0, 1]
    scores = np.array([[[1.0]], [[4.0]]])
    assert combine_members(scores, [1.0, 2.0], "logits", regression=True)[0] == pytest.approx(3.0)
    assert combine_members(scores, [1.0, 2.0], "vote", regression=True)[0] == 4.0


def test_hand_computed_round():
    step = samme_round(np.full(4, 0.25), np.array([True, True, True, False]), 2)
    assert step.error == pytest.approx(0.25)
    assert step.alpha == pytest.approx(np.log(3.0))
    assert np.allclose(step.weights, [1 / 6, 1 / 6, 1 / 6, 1 / 2])  # the wrong row now weighs 3x


def test_perfect_and_chance_members_stop_boosting():
    w = uniform_weights(4)
    assert samme_round(w, np.ones(4, bool), 2).stop
    worse = samme_round(w, np.array([True, False, False, False]), 2)
    assert worse.stop and worse.alpha == 0.0


def test_resample_follows_weights():
    rng = np.random.default_rng(0)
    picks = resample(np.array([0.0, 0.0, 1.0, 3.0]), rng, size=4000)
    assert set(np.unique(picks)) == {2, 3}
    assert abs((picks == 3).mean() - 0.75) < 0.03


def test_weighted_vote_lets_a_heavy_member_win():
    votes = np.array([[0, 1], [1, 1], [1, 0]])
    assert list(weighted_vote(votes, np.array([5.0, 1.0, 1.0]), 2)) == [0, 1]


def test_bad_inputs():
    with pytest.raises(BebertError, match="at least one"):
        uniform_weights(0)
    with pytest.raises(BebertError, match="two classes"):
        samme_round(np.ones(2), np.ones(2, bool), 1)
    with pytest.raises(BebertError, match="shape"):
        samme_round(np.ones(3), np.ones(2, bool), 2)
    with pytest.raises(BebertError, match="one alpha per member"):
        weighted_vote(np.zeros((2, 3), int), np.ones(3), 2)

    with pytest.raises(BebertError, match="shape"):
        r2_round(np.ones(3), np.ones(2))
    with pytest.raises(BebertError, match="one alpha per member"):
        combine_members(np.zeros((0, 3, 2)), np.ones(0), "vote", regression=False)
    with pytest.raises(BebertError, match="'vote' or 'logits'"):
        combine_members(np.zeros((1, 3, 2)), np.ones(1), "mean", regression=False)
