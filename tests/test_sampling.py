import numpy as np
import pytest

from reskd.data.sampling import dense_indices, segment_indices


def test_test_sampling_takes_segment_centres():
    # 16 frames, 4 segments of 4 frames: centres at 2, 6, 10, 14
    assert segment_indices(16, 4, train=False).tolist() == [2, 6, 10, 14]


def test_multi_clip_test_sampling_spreads_inside_segments():
    a = segment_indices(16, 4, train=False, clip=0, num_clips=2).tolist()
    b = segment_indices(16, 4, train=False, clip=1, num_clips=2).tolist()
    assert a == [1, 5, 9, 13] and b == [3, 7, 11, 15]


def test_train_sampling_stays_inside_each_segment():
    rng = np.random.default_rng(0)
    for _ in range(200):
        idx = segment_indices(30, 3, train=True, rng=rng)
        assert 0 <= idx[0] < 10 <= idx[1] < 20 <= idx[2] < 30


def test_short_videos_repeat_frames_in_order():
    idx = segment_indices(3, 8, train=False)
    assert len(idx) == 8 and idx.min() >= 0 and idx.max() <= 2
    assert (np.diff(idx) >= 0).all() and set(idx.tolist()) == {0, 1, 2}
    assert segment_indices(1, 4, train=False).tolist() == [0, 0, 0, 0]


def test_bad_arguments():
    with pytest.raises(ValueError):
        segment_indices(0, 4, train=False)
    with pytest.raises(ValueError):
        segment_indices(10, 4, train=True)  # no rng


def test_dense_sampling():
    # 8x8: 8 frames 8 apart from a 100-frame video, one centred window
    idx = dense_indices(100, 8, 8, train=False)
    assert np.diff(idx).tolist() == [8] * 7
    start = int(0.5 * (100 - 64 + 1))
    assert idx[0] == start
    # window longer than the video loops
    assert dense_indices(10, 4, 4, train=False).tolist() == [0, 4, 8, 2]
