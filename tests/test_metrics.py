"""Metrics on small examples whose expected values are worked out by hand in the comments."""

import numpy as np
import pytest
import torch

from reskd.metrics import (
    average_precision,
    labels_to_multihot,
    mean_average_precision,
    mean_class_accuracy,
    topk_accuracy,
)

# ---------------------------------------------------------------- top-k and mean class accuracy


def test_topk_accuracy_hand_example():
    scores = np.array([
        [0.1, 0.7, 0.2],  # label 1: rank 0 -> top-1 hit
        [0.5, 0.3, 0.2],  # label 2: rank 2 -> miss at k=1 and k=2
        [0.3, 0.6, 0.1],  # label 0: rank 1 -> hit at k=2 only
        [0.2, 0.2, 0.6],  # label 2: rank 0 -> top-1 hit
    ])
    labels = np.array([1, 2, 0, 2])
    # k=1: 2 of 4 = 50%; k=2: 3 of 4 = 75%; k=3: 4 of 4 = 100%
    assert topk_accuracy(scores, labels, ks=(1, 2, 3)) == {1: 50.0, 2: 75.0, 3: 100.0}


def test_topk_k_larger_than_num_classes_is_clipped():
    scores = np.array([[0.9, 0.05, 0.05], [0.1, 0.2, 0.7]])
    labels = np.array([1, 0])  # both wrong at k=1; k=5 > K=3 is clipped to 3 -> every label counts
    assert topk_accuracy(scores, labels) == {1: 0.0, 5: 100.0}


def test_topk_ties_go_to_the_lower_class_index():
    scores = np.array([[0.5, 0.5, 0.0]])
    # Label 1 ties with class 0, which has the lower index and ranks first: rank 1.
    assert topk_accuracy(scores, np.array([1]), ks=(1, 2)) == {1: 0.0, 2: 100.0}
    # Label 0 wins the same tie: rank 0.
    assert topk_accuracy(scores, np.array([0]), ks=(1,)) == {1: 100.0}


def test_mean_class_accuracy_differs_from_top1_on_imbalanced_classes():
    scores = np.array([
        [0.8, 0.1, 0.1],  # label 0, predicted 0: hit
        [0.7, 0.2, 0.1],  # label 0, predicted 0: hit
        [0.6, 0.3, 0.1],  # label 0, predicted 0: hit
        [0.6, 0.3, 0.1],  # label 1, predicted 0: miss
    ])
    labels = np.array([0, 0, 0, 1])
    # top-1 = 3/4 = 75%. Per-class recall: class 0 = 3/3, class 1 = 0/1; class 2 never occurs
    # and is left out: mean = (100 + 0) / 2 = 50%.
    assert topk_accuracy(scores, labels, ks=(1,)) == {1: 75.0}
    assert mean_class_accuracy(scores, labels) == 50.0


def test_accuracy_accepts_torch_tensors_including_bf16():
    scores = torch.tensor([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]], dtype=torch.bfloat16)
    labels = torch.tensor([1, 0, 0])
    # hits: yes, yes, no -> 2/3
    assert topk_accuracy(scores, labels, ks=(1,))[1] == pytest.approx(200 / 3)
    # class 0: 1 of 2, class 1: 1 of 1 -> (50 + 100) / 2 = 75
    assert mean_class_accuracy(scores, labels) == 75.0


def test_accuracy_errors_name_the_problem():
    scores = np.zeros((3, 4))
    with pytest.raises(ValueError, match=r"scores has 3 rows .* labels has 2"):
        topk_accuracy(scores, np.array([0, 1]))
    with pytest.raises(ValueError, match=r"labels\[1\] = 4"):
        topk_accuracy(scores, np.array([0, 4, 1]))
    with pytest.raises(TypeError, match="integer class indices"):
        mean_class_accuracy(scores, np.array([0.0, 1.0, 1.0]))
    with pytest.raises(ValueError, match=r"shape \(N, K\)"):
        topk_accuracy(np.zeros(3), np.array([0, 1, 1]))
    with pytest.raises(ValueError, match="k in ks must be an integer >= 1"):
        topk_accuracy(scores, np.array([0, 1, 1]), ks=(0,))
    with pytest.raises(ValueError, match="NaN"):
        topk_accuracy(np.array([[np.nan, 1.0]]), np.array([0]))


# ------------------------------------------------------------------------ average precision


def test_perfect_ranking_gives_100():
    targets = np.array([[1, 0, 0], [0, 1, 1], [1, 0, 0], [0, 0, 1]])
    # every positive scored above every negative of its class
    scores = targets * 0.5 + np.array([[0.1, 0.3, 0.2], [0.2, 0.1, 0.3], [0.3, 0.2, 0.1],
                                       [0.0, 0.4, 0.4]])
    assert mean_average_precision(scores, targets) == 100.0


def test_three_class_example_computed_by_hand():
    scores = np.array([
        [0.9, 0.1, 0.5],
        [0.8, 0.7, 0.4],
        [0.3, 0.2, 0.9],
        [0.1, 0.6, 0.8],
    ])
    targets = np.array([
        [1, 0, 0],
        [0, 0, 1],
        [1, 0, 1],
        [0, 1, 1],
    ])
    # class 0: ranking v0(+) v1(-) v2(+) v3(-): precisions at positives 1/1, 2/3
    #          AP = (1 + 2/3) / 2 = 5/6
    # class 1: ranking v1(-) v3(+) v2(-) v0(-): AP = (1/2) / 1 = 1/2
    # class 2: ranking v2(+) v3(+) v0(-) v1(+): AP = (1/1 + 2/2 + 3/4) / 3 = 11/12
    # mAP = (5/6 + 1/2 + 11/12) / 3 = (10 + 6 + 11) / 36 = 27/36 = 75%
    assert average_precision(scores[:, 0], targets[:, 0]) == pytest.approx(500 / 6)
    assert average_precision(scores[:, 1], targets[:, 1]) == pytest.approx(50.0)
    assert average_precision(scores[:, 2], targets[:, 2]) == pytest.approx(1100 / 12)
    assert mean_average_precision(scores, targets) == pytest.approx(75.0)
    # torch tensors and boolean targets give the same number
    assert mean_average_precision(torch.tensor(scores), torch.tensor(targets).bool()) \
        == pytest.approx(75.0)


def test_single_label_map_is_not_100_when_rankings_are_imperfect():
    # Every video has exactly one label; half of the top-1 predictions are wrong. A peer tool
    # reported mAP 100 in this situation; the correct value is far below it.
    labels = [0, 0, 1, 1, 2, 2]
    scores = np.array([
        [0.9, 0.6, 0.05],   # v0, label 0
        [0.2, 0.5, 0.15],   # v1, label 0
        [0.8, 0.7, 0.25],   # v2, label 1
        [0.1, 0.3, 0.35],   # v3, label 1
        [0.3, 0.2, 0.45],   # v4, label 2
        [0.4, 0.1, 0.55],   # v5, label 2
    ])
    targets = labels_to_multihot([[y] for y in labels], 3)
    # class 0 (positives v0, v1): ranking v0 .9(+) v2 .8 v5 .4 v4 .3 v1 .2(+) v3 .1
    #          AP = (1/1 + 2/5) / 2 = 0.7
    # class 1 (positives v2, v3): ranking v2 .7(+) v0 .6 v1 .5 v3 .3(+) v4 .2 v5 .1
    #          AP = (1/1 + 2/4) / 2 = 0.75
    # class 2 (positives v4, v5): ranking v5 .55(+) v4 .45(+) ... AP = 1
    # mAP = (0.7 + 0.75 + 1) / 3 = 2.45 / 3 = 81.67%
    result = mean_average_precision(scores, targets)
    assert result == pytest.approx(245 / 3)
    assert result < 90.0
    # top-1 on the same scores: v0 and v4, v5 right -> 3/6 = 50%
    assert topk_accuracy(scores, np.array(labels), ks=(1,)) == {1: 50.0}


def test_classes_without_positives_are_left_out():
    scores = np.array([
        [0.9, 0.2, 0.7],
        [0.1, 0.8, 0.6],
        [0.4, 0.3, 0.5],
    ])
    targets = np.array([
        [1, 0, 0],
        [0, 0, 0],
        [0, 0, 1],
    ])
    # class 0: v0(+) first -> AP 1. class 1: no positive -> left out (not counted as 0).
    # class 2: ranking v0 .7(-) v1 .6(-) v2 .5(+) -> AP = 1/3.
    # mAP = (1 + 1/3) / 2 = 2/3 = 66.67%
    assert mean_average_precision(scores, targets) == pytest.approx(200 / 3)


def test_tied_scores_are_one_block_independent_of_order():
    # Positive tied with a negative at the top: the block of 2 holds 1 positive, so the
    # positive gets precision 1/2 whichever comes first in the array. AP = 50%.
    assert average_precision(np.array([0.5, 0.5, 0.1]), np.array([0, 1, 0])) == 50.0
    assert average_precision(np.array([0.5, 0.5, 0.1]), np.array([1, 0, 0])) == 50.0
    # Two positives tied with one negative at ranks 1-3, one more negative after:
    # block precision 2/3 for both positives -> AP = 2/3.
    assert average_precision(np.array([2.0, 2.0, 2.0, 1.0]), np.array([1, 0, 1, 0])) \
        == pytest.approx(200 / 3)
    # Equal infinities form one block too.
    assert average_precision(np.array([np.inf, np.inf, 0.0]), np.array([0, 1, 0])) == 50.0


def test_map_errors_name_the_problem():
    scores = np.zeros((2, 3))
    with pytest.raises(ValueError, match=r"same shape .* scores \(2, 3\) and targets \(2,\)"
                                         r".*labels_to_multihot"):
        mean_average_precision(scores, np.array([0, 1]))
    with pytest.raises(ValueError, match="no class has a positive"):
        mean_average_precision(scores, np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"multi-hot .*targets\[\(0, 1\)\] = 2"):
        mean_average_precision(scores, np.array([[0, 2, 0], [1, 0, 0]]))
    with pytest.raises(ValueError, match="no positive"):
        average_precision(np.array([0.3, 0.2]), np.array([0, 0]))


# ------------------------------------------------------------------------------- multi-hot


def test_labels_to_multihot():
    got = labels_to_multihot([[0, 2], (1,), [], 3, [2, 2]], 4)
    expected = np.array([
        [1, 0, 1, 0],
        [0, 1, 0, 0],
        [0, 0, 0, 0],
        [0, 0, 0, 1],
        [0, 0, 1, 0],
    ], dtype=np.float32)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, expected)


def test_labels_to_multihot_errors():
    with pytest.raises(ValueError, match=r"labels\[1\] = \[0, 5\] holds class 5.*num_classes=4"):
        labels_to_multihot([[1], [0, 5]], 4)
    with pytest.raises(TypeError, match=r"labels\[0\] must hold integer class indices"):
        labels_to_multihot([["a"]], 4)
    with pytest.raises(ValueError, match="num_classes must be an integer >= 1"):
        labels_to_multihot([[0]], 0)


def test_average_precision_matches_scikit_learn_with_and_without_ties():
    # scikit-learn arrives with mlxtend; it is a peer implementation of the same tie rule.
    sk = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    for trial in range(50):
        n = 20
        scores = rng.integers(0, 4, n).astype(float) if trial % 2 else rng.random(n)  # ties / none
        targets = rng.integers(0, 2, n)
        targets[0] = 1
        assert average_precision(scores, targets) == pytest.approx(
            100 * sk.average_precision_score(targets, scores))
