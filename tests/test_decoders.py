import numpy as np
import pytest

from reskd.data.decoders import DecodeError, decode_video, read_frame_folder


def test_lossless_video_decodes_exactly(tiny_video):
    path, frames = tiny_video
    got, idx = decode_video(path, lambda n: np.arange(n))
    assert got.shape == frames.shape == (12, 32, 48, 3)
    assert got.dtype == np.uint8
    np.testing.assert_array_equal(got, frames)


def test_decodes_only_requested_frames_in_order_with_repeats(tiny_video):
    path, frames = tiny_video
    got, idx = decode_video(path, lambda n: np.array([7, 2, 2, 11]))
    np.testing.assert_array_equal(got, frames[[7, 2, 2, 11]])


def test_indices_past_the_end_read_the_last_frame(tiny_video):
    path, frames = tiny_video
    got, _ = decode_video(path, lambda n: np.array([0, n + 5]))
    np.testing.assert_array_equal(got[1], frames[-1])


@pytest.mark.parametrize("content,reason", [(b"", "empty"),
                                            (b"\x00garbage" * 100, "cannot decode")])
def test_broken_files_raise_decode_error_naming_the_file(tmp_path, content, reason):
    path = tmp_path / "bad.mp4"
    path.write_bytes(content)
    with pytest.raises(DecodeError) as e:
        decode_video(path, lambda n: np.arange(n))
    assert "bad.mp4" in str(e.value) and reason in str(e.value)


def test_missing_file(tmp_path):
    with pytest.raises(DecodeError, match="not found"):
        decode_video(tmp_path / "nope.mp4", lambda n: np.arange(n))


def test_frame_folder(tmp_path):
    from PIL import Image

    frames = np.random.default_rng(0).integers(0, 256, (5, 8, 10, 3), dtype=np.uint8)
    for i, f in enumerate(frames):
        Image.fromarray(f).save(tmp_path / f"img_{i + 1:05d}.png")
    got, _ = read_frame_folder(tmp_path, 5, lambda n: np.array([4, 0]), "img_{:05d}.png")
    np.testing.assert_array_equal(got, frames[[4, 0]])


def test_a_test_sample_decodes_the_union_of_its_clips_once(tiny_video):
    """Every test view of a video (3 clips x 3 crops) comes from one decode of all clips' frames."""
    from reskd.data.datasets import VideoDataset
    from reskd.data.formats import Entry
    from reskd.data.sampling import Sampling
    from reskd.data.transforms import Views

    path, frames = tiny_video

    class Counting(VideoDataset):
        reads: list = []

        def read_frames(self, index, indices_for):
            self.reads.append(indices_for(len(frames)))
            return super().read_frames(index, indices_for)

    ds = Counting([Entry(path.name, (0,))], path.parent, sampling=Sampling(num_segments=4),
                  views=Views(student_size=16, short_side_ratio=1.0), train=False, num_classes=1,
                  test_clips=3, test_crops=3)
    item = ds[0]
    assert item["failed"] == "" and item["views"].shape == (9, 4, 3, 16, 16)
    assert len(Counting.reads) == 1 and len(Counting.reads[0]) == 12  # 3 clips x 4 segments


@pytest.mark.parametrize("size,exact", [(32, True), (16, False)])
def test_views_from_the_dataset_match_the_float_path(tiny_video, size, exact):
    """Frames at or below the views' short side give exactly today's views; larger ones are
    shrunk in uint8 first, within the rounding of one level (normalised: 1 / (255 std))."""
    import torch

    from reskd.data.datasets import VideoDataset
    from reskd.data.formats import Entry
    from reskd.data.sampling import Sampling
    from reskd.data.transforms import Views

    path, _ = tiny_video  # 48x32
    views = Views(student_size=size, short_side_ratio=1.0)
    ds = VideoDataset([Entry(path.name, (0,))], path.parent, sampling=Sampling(num_segments=4),
                      views=views, train=False, num_classes=1, test_clips=2)
    got = ds[0]["views"]  # (2, 4, 3, size, size)
    every, _ = decode_video(path, np.arange)
    idx = Sampling(num_segments=4).test_indices(len(every), 2)
    want = torch.cat([views.test(c, 1) for c in np.split(every[idx], 2)])
    if exact:
        assert torch.equal(got, want)
    else:
        assert (got - want).abs().max().item() <= 1 / (255 * min(views.std)) + 1e-6
        assert not torch.equal(got, want)
