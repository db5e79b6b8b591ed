"""`reskd data extract`: real videos -> JPEG frame folders and a raw-frame list, resumable."""

import numpy as np

from reskd.data.datasets import VideoDataset
from reskd.data.sampling import Sampling
from reskd.data.transforms import ViewSpec
from reskd.data.extract import extract_dataset
from reskd.data.formats import read_list
from conftest import numbered_frames, write_video


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
    assert [(e.path, e.num_frames, e.labels) for e in entries] == [("a/one", 6, (1,)), ("two", 9, (0, 2))]
    from PIL import Image
    with Image.open(out / "frames" / "a" / "one" / "img_00006.jpg") as im:
        assert min(im.size) == 32 and im.size == (48, 32)

    ds = VideoDataset(entries, out / "frames", sampling=Sampling(num_segments=3),
                      views=ViewSpec(sizes=(32,), short_side_ratio=1.0), train=False,
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
