"""`reskd data extract`: real videos -> JPEG frame folders and a raw-frame list, resumable."""

import numpy as np

from conftest import numbered_frames, write_video
from reskd.data.datasets import VideoDataset
from reskd.data.extract import extract_dataset, prepare_dataset
from reskd.data.formats import read_list
from reskd.data.sampling import Sampling
from reskd.data.transforms import Views


def test_extract_then_train_on_frames(tmp_path):
    root = tmp_path / "videos"
    write_video(root / "a" / "one.mp4", numbered_frames(6, 40, 60))
    write_video(root / "two.mp4", numbered_frames(9, 48, 64, seed=1))
    (root / "bad.mp4").write_bytes(b"not a video")
    lst = tmp_path / "train.txt"
    lst.write_text("a/one.mp4 1\ntwo.mp4 0 2\nbad.mp4 1\n")
    out = tmp_path / "out"
    report = extract_dataset(lst, root, out, short_side=32, workers=1)
    assert report.written == 2 and len(report.failed) == 1 and "bad.mp4" in report.failed[0]
    entries = read_list(out / "train.txt", format="rawframes")
    assert ([(e.path, e.num_frames, e.labels) for e in entries]
            == [("a/one", 6, (1,)), ("two", 9, (0, 2))])
    from PIL import Image
    with Image.open(out / "frames" / "a" / "one" / "img_00006.jpg") as im:
        assert min(im.size) == 32 and im.size == (48, 32)

    ds = VideoDataset(entries, out / "frames", sampling=Sampling(num_segments=3),
                      views=Views(student_size=32, short_side_ratio=1.0), train=False,
                      num_classes=3, format="rawframes")
    item = ds[1]
    assert item["failed"] == "" and item["views"].shape == (1, 3, 3, 32, 32)

    # resumable: a finished folder is kept, a missing one is redone, partial ones are ignored
    (out / "frames" / "a" / "one" / "img_00001.jpg").write_bytes(b"kept")
    (out / "frames" / "two").rename(out / "frames" / ".two.partial")
    again = extract_dataset(lst, root, out, short_side=32, workers=1)
    assert again.written == 2
    assert (out / "frames" / "a" / "one" / "img_00001.jpg").read_bytes() == b"kept"
    assert len(list((out / "frames" / "two").glob("img_*.jpg"))) == 9
    assert not (out / "frames" / ".two.partial").exists()


def test_prepare_reencodes_to_the_short_side_with_short_keyframe_intervals(tmp_path):
    import av

    from reskd.data.decoders import decode_video, frame_table

    root = tmp_path / "videos"
    write_video(root / "a" / "long.mkv", numbered_frames(50, 72, 100), codec="libx264",
                options={"x264-params": "keyint=250:bframes=3"})
    write_video(root / "small.mp4", numbered_frames(7, 24, 30, seed=1))  # below the short side
    (root / "bad.mp4").write_bytes(b"not a video")
    lst = tmp_path / "train.txt"
    lst.write_text("a/long.mkv 1\nsmall.mp4 0 2\nbad.mp4 1\n")
    (tmp_path / "classes.txt").write_text("x\ny\nz\n")
    out = tmp_path / "prepared"
    report = prepare_dataset(lst, root, out, short_side=32, keyint=8, workers=1)
    assert (out / "classes.txt").read_text() == "x\ny\nz\n"
    assert report.written == 2 and len(report.failed) == 1 and "bad.mp4" in report.failed[0]
    entries = read_list(out / "train.txt", format="video")
    assert [(e.path, e.labels) for e in entries] == [("videos/a/long.mp4", (1,)),
                                                     ("videos/small.mp4", (0, 2))]
    long = out / "videos" / "a" / "long.mp4"
    with av.open(str(long)) as c:
        table = frame_table(c, c.streams.video[0])
    assert len(table.pts) == 50 and list(table.keys) == list(range(0, 50, 8))
    original, _ = decode_video(root / "a" / "long.mkv", np.arange, short_side=32)
    copy, _ = decode_video(long, np.arange)
    assert copy.shape == original.shape == (50, 32, 44, 3)  # 100 * 32 / 72 = 44.4
    # frame i of the copy is frame i of the original (the top-left pixel numbers frames)
    assert np.abs(copy[:, 4:-4, 4:-4].astype(int) - original[:, 4:-4, 4:-4]).mean() < 12
    small, _ = decode_video(out / "videos" / "small.mp4", np.arange)
    assert small.shape == (7, 24, 30, 3)  # not larger than the short side: size kept

    # resumable: a finished copy is kept as it is, a missing one is redone
    (out / "videos" / "small.mp4").unlink()
    before = long.stat().st_mtime_ns
    again = prepare_dataset(lst, root, out, short_side=32, keyint=8, workers=1)
    assert again.written == 2 and long.stat().st_mtime_ns == before
    assert (out / "videos" / "small.mp4").is_file()
    assert not list(out.rglob(".*partial*"))
