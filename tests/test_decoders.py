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


@pytest.mark.parametrize("content,reason", [(b"", "empty"), (b"\x00garbage" * 100, "cannot decode")])
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
