"""Disk sources (npy, frames, video, moving_mnist): what they yield, splits, errors.

Every test builds its own small files in tmp_path. Oracles are independent of
framepred: NumPy block means for area resizing, Pillow's "L" conversion for gray,
the arrays the files were written from.
"""

from __future__ import annotations

import gzip
import logging
import zipfile

import numpy as np
import pytest
from PIL import Image

from framepred.data import SPLITS, build_source, window_batches, window_length
from framepred.errors import FramepredError
from tests.helpers.cli import run_in_one_process
from tests.helpers.files import moving_squares, write_frames
from tests.helpers.run_if import run_if

# debug=fast: 16x16 frames, 3 context + 3 future = windows of 6 frames.
WINDOW = 6


def id_frames(sequence: int, count: int, size=(16, 16)) -> np.ndarray:
    """Frames whose pixels encode (sequence, frame): value 10*sequence + frame."""
    values = 10 * sequence + np.arange(count, dtype=np.uint8)
    return np.broadcast_to(values[:, None, None], (count, *size)).astype(np.uint8)


def all_frames(source) -> np.ndarray:
    """Every window of a source, concatenated: [N*T, H, W, C]."""
    return np.concatenate([source.read(i, s, s + WINDOW)
                           for i, s in source.window_starts(WINDOW, WINDOW)])


# --- data=npy ---------------------------------------------------------------------


def test_npy_moving_mnist_layout_is_memory_mapped_and_scaled(tmp_path, data_cfg):
    rng = np.random.default_rng(0)
    array = rng.integers(0, 256, size=(8, 12, 16, 16), dtype=np.uint8)  # (T, B, H, W)
    np.save(tmp_path / "mnist_test_seq.npy", array)
    data = data_cfg("data=npy", f"data.path={tmp_path / 'mnist_test_seq.npy'}")
    source = build_source(data, "train")
    reader = source.source
    assert reader.layout == "tbhw" and isinstance(reader.array, np.memmap)
    assert len(reader) == 12 and reader.num_frames(0) == 8
    window = source.read(0, 1, 7)
    sequence = source.spans[0].sequence
    assert window.shape == (6, 16, 16, 1) and window.dtype == np.float32
    np.testing.assert_allclose(window[..., 0], array[1:7, sequence] / 255.0, atol=1e-6)


def test_npy_layouts_float_rgb_and_gray(tmp_path, data_cfg):
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, size=(5, 7, 16, 16, 3), dtype=np.uint8)  # (B, T, H, W, C)
    np.save(tmp_path / "rgb.npy", rgb.astype(np.float32) / 255.0)
    as_rgb = build_source(data_cfg("data=npy", f"data.path={tmp_path / 'rgb.npy'}",
                                   "data.channels=3"), "train")
    seq = as_rgb.spans[0].sequence
    np.testing.assert_allclose(as_rgb.read(0, 0, 6), rgb[seq, :6] / 255.0, atol=1e-6)
    as_gray = build_source(data_cfg("data=npy", f"data.path={tmp_path / 'rgb.npy'}"), "train")
    gray = as_gray.read(0, 0, 6)
    pillow_gray = np.stack([np.asarray(Image.fromarray(f).convert("L")) for f in rgb[seq, :6]])
    assert gray.shape == (6, 16, 16, 1)
    np.testing.assert_allclose(gray[..., 0], pillow_gray / 255.0, atol=1.5 / 255)
    # (B, T, H, W) given explicitly: auto cannot tell which axis of random frames is time.
    np.save(tmp_path / "bthw.npy", rng.integers(0, 256, (8, 12, 16, 16), dtype=np.uint8))
    source = build_source(data_cfg("data=npy", f"data.path={tmp_path / 'bthw.npy'}",
                                   "data.layout=bthw"), "train")
    assert len(source.source) == 8 and source.source.num_frames(0) == 12


class CountingReads:
    """An array that counts the frames (cells of its first two axes) read from it."""

    def __init__(self, array):
        self.array, self.frames_read = array, 0
        self.shape, self.ndim, self.dtype = array.shape, array.ndim, array.dtype

    def __getitem__(self, key):
        part = self.array[key]
        self.frames_read += part.shape[0] * part.shape[1]
        return part


def test_npy_auto_layout_finds_time_as_the_smooth_axis(caplog):
    from framepred.data.arrays import resolve_layout

    video = moving_squares(frames=20, sequences=10)  # [T, N, H, W]: frames 0..19 in order
    with caplog.at_level(logging.INFO, logger="framepred.data"):
        assert resolve_layout(video, "auto", "clips.npy") == "tbhw"
        assert resolve_layout(video.transpose(1, 0, 2, 3), "auto", "clips.npy") == "bthw"
    chosen = [r.getMessage() for r in caplog.records]
    assert all("10 sequences of 20 frames (neighbouring frames differ by" in m for m in chosen)
    # Memory-mapped files can be larger than memory: only a few small blocks are read.
    wide = CountingReads(np.tile(video, (1, 40, 1, 1)))  # 20 x 400 frames
    assert resolve_layout(wide, "auto", "wide.npy") == "tbhw" and wide.frames_read <= 9 * 16
    noise = np.random.default_rng(6).integers(0, 256, (20, 10, 16, 16), dtype=np.uint8)
    with pytest.raises(FramepredError, match=(
            r"^noise.npy has shape \(20, 10, 16, 16\): 20 frames of 10 sequences "
            r"\(data.layout=tbhw\) or 20 sequences of 10 frames \(data.layout=bthw\)\? .*"
            r"set data.layout=tbhw or data.layout=bthw$")):
        resolve_layout(noise, "auto", "noise.npy")
    assert resolve_layout(noise, "bthw", "noise.npy") == "bthw"  # a layout given is obeyed
    assert resolve_layout(noise, "auto", "mnist_test_seq.npy") == "tbhw"  # Moving MNIST's name


def test_npz_stored_member_is_memory_mapped_compressed_is_read(tmp_path, data_cfg):
    frames = np.random.default_rng(2).integers(0, 256, (6, 8, 16, 16), dtype=np.uint8)
    np.savez(tmp_path / "stored.npz", clips=frames, labels=np.arange(6))
    np.savez_compressed(tmp_path / "packed.npz", frames)
    with pytest.raises(FramepredError, match=r"holds 2 arrays .*stored.npz:NAME"):
        build_source(data_cfg("data=npy", f"data.path={tmp_path / 'stored.npz'}"), "train")
    stored = build_source(data_cfg("data=npy", f"data.path={tmp_path / 'stored.npz'}:clips",
                                   "data.layout=bthw"), "train")
    assert isinstance(stored.source.array, np.memmap)
    seq = stored.spans[0].sequence
    np.testing.assert_allclose(stored.read(0, 0, 6)[..., 0], frames[seq, :6] / 255.0, atol=1e-6)
    packed = build_source(data_cfg("data=npy", f"data.path={tmp_path / 'packed.npz'}",
                                   "data.layout=bthw"), "train")
    np.testing.assert_array_equal(packed.source.array, frames)


def test_npy_nan_and_range_errors_checked_in_chunks(tmp_path, data_cfg, monkeypatch):
    from framepred.data import arrays

    monkeypatch.setattr(arrays, "CHECK_CHUNK_BYTES", 16 * 16 * 4)  # one frame per chunk
    frames = np.full((4, 10, 16, 16), 0.5, dtype=np.float32)
    frames[2, 7, 3, 3] = np.nan
    np.save(tmp_path / "nan.npy", frames)
    with pytest.raises(FramepredError, match=r"nan.npy holds NaN or inf \(first at sequence 2\)"):
        build_source(data_cfg("data=npy", f"data.path={tmp_path / 'nan.npy'}",
                              "data.layout=bthw"), "train")
    np.save(tmp_path / "bytes.npy", np.full((4, 10, 16, 16), 200.0, dtype=np.float32))
    with pytest.raises(FramepredError, match=r"outside \[0, 1\] \(min 200, max 200"):
        build_source(data_cfg("data=npy", f"data.path={tmp_path / 'bytes.npy'}",
                              "data.layout=bthw"), "train")


# --- data=frames --------------------------------------------------------------------


def test_frames_natural_sort_shapes_and_channels(tmp_path, data_cfg):
    root = tmp_path / "clips"
    for s in (1, 2, 10):  # folder order too: seq2 before seq10
        write_frames(root / f"seq{s}", id_frames(s, 12), name="frame{}.png")
    data = data_cfg("data=frames", f"data.path={root}", "data.val_fraction=0",
                    "data.test_fraction=0")
    source = build_source(data, "train")
    assert [source.describe(i).split(" ")[0][-5:] for i in range(3)] == ["/seq1", "/seq2",
                                                                         "seq10"]
    clip = source.read(2)  # seq10, all 12 frames: frame2 before frame10
    np.testing.assert_allclose(clip[:, 0, 0, 0] * 255, 100 + np.arange(12), atol=1e-4)
    assert clip.shape == (12, 16, 16, 1) and clip.dtype == np.float32
    rgb = build_source(data_cfg("data=frames", f"data.path={root}", "data.channels=3",
                                "data.val_fraction=0", "data.test_fraction=0"), "train")
    frames = rgb.read(0, 0, 6)
    assert frames.shape == (6, 16, 16, 3)
    np.testing.assert_array_equal(frames[..., 0], frames[..., 2])


def test_frames_folder_with_frames_is_one_sequence_and_resizes(tmp_path, data_cfg):
    rng = np.random.default_rng(3)
    frames = rng.integers(0, 256, (7, 32, 32, 3), dtype=np.uint8)
    write_frames(tmp_path / "one", frames, name="{}.bmp")
    data = data_cfg("data=frames", f"data.path={tmp_path / 'one'}", "data.interpolation=area",
                    "data.channels=3", "data.val_fraction=0", "data.test_fraction=0")
    source = build_source(data, "train")
    assert len(source) == 1 and source.num_frames(0) == 7
    # Area resizing by 2 is the mean of each 2x2 block.
    blocks = frames.reshape(7, 16, 2, 16, 2, 3).mean(axis=(2, 4)) / 255.0
    np.testing.assert_allclose(source.read(0), blocks, atol=1 / 255)


def test_frames_jpeg_and_tiff(tmp_path, data_cfg):
    frames = id_frames(5, 6) * 4
    write_frames(tmp_path / "clips" / "a", frames, name="f{}.jpg")
    write_frames(tmp_path / "clips" / "b", frames, name="f{}.tif")
    data = data_cfg("data=frames", f"data.path={tmp_path / 'clips'}", "data.val_fraction=0",
                    "data.test_fraction=0")
    source = build_source(data, "train")
    for i in range(2):
        np.testing.assert_allclose(source.read(i)[:, 8, 8, 0], frames[:, 8, 8] / 255, atol=3 / 255)


# --- windows and splits ---------------------------------------------------------------


def test_windows_stride(tmp_path, data_cfg):
    write_frames(tmp_path / "clip", id_frames(0, 13), name="{}.png")
    data = data_cfg("data=frames", f"data.path={tmp_path / 'clip'}", "data.val_fraction=0",
                    "data.test_fraction=0", "data.stride=2")
    source = build_source(data, "train")
    assert source.window_starts(WINDOW, 2) == [(0, 0), (0, 2), (0, 4), (0, 6)]
    batch = next(iter(window_batches(data, "train", batch_size=4)))
    assert tuple(batch.shape) == (4, WINDOW, 16, 16, 1)
    np.testing.assert_allclose(batch.numpy()[:, 0, 0, 0, 0] * 255, [0, 2, 4, 6], atol=1e-4)


def test_split_by_whole_sequence_is_disjoint_and_deterministic(tmp_path, data_cfg):
    root = tmp_path / "clips"
    for s in range(20):
        write_frames(root / f"s{s}", id_frames(s, 9), name="{}.png")
    overrides = ("data=frames", f"data.path={root}", "data.val_fraction=0.2",
                 "data.test_fraction=0.1", "data.stride=1")

    def sequences(split, seed=0):
        source = build_source(data_cfg(*overrides, f"data.seed={seed}"), split)
        return {int(round(v * 255)) // 10 for v in all_frames(source)[:, 0, 0, 0]}

    split = {name: sequences(name) for name in SPLITS}
    assert [len(split[name]) for name in SPLITS] == [14, 4, 2]
    assert not (split["train"] & split["val"] or split["train"] & split["test"]
                or split["val"] & split["test"])
    assert set.union(*split.values()) == set(range(20))
    assert sequences("val") == split["val"]  # same seed, same split
    assert any(sequences(name, seed=1) != split[name] for name in SPLITS)


def test_one_long_sequence_splits_in_time_without_shared_frames(tmp_path, data_cfg):
    write_frames(tmp_path / "long", id_frames(0, 60), name="{}.png")
    data = data_cfg("data=frames", f"data.path={tmp_path / 'long'}", "data.stride=1",
                    "data.val_fraction=0.2", "data.test_fraction=0.2")
    seen = {}
    for split in SPLITS:
        source = build_source(data, split)
        seen[split] = {int(round(v * 255)) for v in all_frames(source)[:, 0, 0, 0]}
    assert max(seen["train"]) < min(seen["val"]) and max(seen["val"]) < min(seen["test"])
    assert seen["train"] == set(range(36)) and seen["test"] == set(range(48, 60))


def test_val_path_is_the_validation_set(tmp_path, data_cfg):
    for s in range(5):
        write_frames(tmp_path / "train" / f"s{s}", id_frames(s, 6), name="{}.png")
    write_frames(tmp_path / "val" / "v", id_frames(9, 6), name="{}.png")
    data = data_cfg("data=frames", f"data.path={tmp_path / 'train'}",
                    f"data.val_path={tmp_path / 'val'}", "data.test_fraction=0.2")
    val = build_source(data, "val")
    assert len(val) == 1 and val.read(0)[0, 0, 0, 0] * 255 == pytest.approx(90)
    assert len(build_source(data, "train")) == 4 and len(build_source(data, "test")) == 1


# --- data=video ---------------------------------------------------------------------------


@pytest.mark.parametrize("name, options", [
    ("clip.gif", {}), ("clip.png", {}), ("clip.webp", {"lossless": True}), ("clip.tiff", {}),
])
def test_video_animated_images(tmp_path, data_cfg, name, options):
    frames = id_frames(3, 8, size=(24, 24)) * 6  # distinct gray levels
    images = [Image.fromarray(f).convert("RGB") for f in frames]
    images[0].save(tmp_path / name, save_all=True, append_images=images[1:], duration=100,
                   **options)
    data = data_cfg("data=video", f"data.path={tmp_path / name}", "data.val_fraction=0",
                    "data.test_fraction=0", "data.interpolation=nearest")
    source = build_source(data, "train")
    assert len(source) == 1 and source.num_frames(0) == 8
    clip = source.read(0)
    assert clip.shape == (8, 16, 16, 1)
    np.testing.assert_allclose(clip[:, 5, 5, 0] * 255, frames[:, 0, 0], atol=2)


def test_video_file_without_extra_names_it(tmp_path, data_cfg, monkeypatch):
    import importlib.util

    (tmp_path / "clip.mp4").write_bytes(b"\x00" * 64)
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "imageio_ffmpeg"
                        else real_find_spec(name, *a))
    data = data_cfg("data=video", f"data.path={tmp_path / 'clip.mp4'}")
    with pytest.raises(FramepredError, match=r'clip.mp4: .*pip install "framepred\[video\]"'):
        build_source(data, "train")


@run_if(extra="video")
def test_video_mp4_through_the_extra(tmp_path, data_cfg):
    import imageio_ffmpeg

    frames = id_frames(0, 12, size=(32, 32)) * 20
    writer = imageio_ffmpeg.write_frames(str(tmp_path / "clip.mp4"), (32, 32), pix_fmt_in="gray",
                                         quality=10, macro_block_size=16)
    writer.send(None)
    for frame in frames:
        writer.send(np.ascontiguousarray(frame))
    writer.close()
    data = data_cfg("data=video", f"data.path={tmp_path / 'clip.mp4'}", "data.val_fraction=0",
                    "data.test_fraction=0")
    source = build_source(data, "train")
    assert source.num_frames(0) == 12
    np.testing.assert_allclose(source.read(0)[:, 8, 8, 0] * 255, frames[:, 0, 0], atol=8)


# --- data=moving_mnist --------------------------------------------------------------------


def fake_digits(count: int, level: int) -> np.ndarray:
    digits = np.zeros((count, 28, 28), dtype=np.uint8)
    digits[:, 6:22, 10:18] = level
    return digits


def test_moving_mnist_from_npz_uses_split_digits(tmp_path, data_cfg):
    np.savez(tmp_path / "mnist.npz", x_train=fake_digits(10, 255), x_test=fake_digits(10, 100),
             y_train=np.zeros(10), y_test=np.zeros(10))
    data = data_cfg("data=moving_mnist", f"data.path={tmp_path / 'mnist.npz'}",
                    "data.digit_size=[8,8]", "data.num_digits=1", "data.frame_size=[16,16]")
    train, val = build_source(data, "train"), build_source(data, "val")
    assert len(train) == data.train_sequences and len(val) == data.val_sequences
    clip = train.read(0)
    assert clip.shape == (WINDOW, 16, 16, 1) and clip.max() > 0.8  # training digits: 255
    assert 0 < val.read(0).max() <= 100 / 255 + 1e-6  # test digits only: 100


def test_moving_mnist_from_idx_gz(tmp_path, data_cfg):
    digits = fake_digits(6, 255)
    header = b"".join(int(v).to_bytes(4, "big") for v in (0x803, 6, 28, 28))
    with gzip.open(tmp_path / "train-images-idx3-ubyte.gz", "wb") as stream:
        stream.write(header + digits.tobytes())
    data = data_cfg("data=moving_mnist", f"data.path={tmp_path}", "data.num_digits=1",
                    "data.channels=3")
    clip = build_source(data, "train").read(0)
    assert clip.shape == (WINDOW, 16, 16, 3) and 0 < clip.mean() < 1
    (tmp_path / "bad-idx3-ubyte").write_bytes(b"\x00\x00\x08\x03" + b"\x00" * 20)
    with pytest.raises(FramepredError, match="bad-idx3-ubyte is truncated"):
        build_source(data_cfg("data=moving_mnist", f"data.path={tmp_path / 'bad-idx3-ubyte'}"),
                     "train")


# --- errors -----------------------------------------------------------------------------


def test_error_missing_path(tmp_path, data_cfg):
    with pytest.raises(FramepredError, match=r"data.path=.*nowhere does not exist"):
        build_source(data_cfg("data=frames", f"data.path={tmp_path / 'nowhere'}"), "train")


def test_error_folder_without_sequences(tmp_path, data_cfg):
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    with pytest.raises(FramepredError, match=r"empty holds no sequences"):
        build_source(data_cfg("data=frames", f"data.path={tmp_path / 'empty'}"), "train")


def test_error_every_sequence_shorter_than_a_window(tmp_path, data_cfg):
    for s, count in enumerate((3, 4, 2)):
        write_frames(tmp_path / "short" / f"s{s}", id_frames(s, count), name="{}.png")
    with pytest.raises(FramepredError,
                       match=r"every sequence is shorter .* needs 6 frames .* has 4"):
        build_source(data_cfg("data=frames", f"data.path={tmp_path / 'short'}"), "train")


def test_error_corrupt_file_or_skip_it(tmp_path, data_cfg, caplog):
    clip = write_frames(tmp_path / "clips" / "a", id_frames(1, 14), name="{}.png")
    good = (clip / "7.png").read_bytes()
    (clip / "7.png").write_bytes(good[: len(good) // 2])  # truncated
    data = data_cfg("data=frames", f"data.path={tmp_path / 'clips'}", "data.val_fraction=0",
                    "data.test_fraction=0")
    with pytest.raises(FramepredError, match=r"cannot read .*a/7.png: .*data.on_bad_file=skip"):
        build_source(data, "train")
    skip = data_cfg("data=frames", f"data.path={tmp_path / 'clips'}", "data.on_bad_file=skip",
                    "data.val_fraction=0", "data.test_fraction=0")
    with caplog.at_level(logging.WARNING, logger="framepred.data"):
        source = build_source(skip, "train")
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "7.png" in warnings[0].getMessage()
    # The sequence is cut at the missing frame: 0..6 and 8..13, no window spans the gap.
    assert [source.num_frames(i) for i in range(len(source))] == [7, 6]


def test_error_frame_size_when_resize_off(tmp_path, data_cfg):
    write_frames(tmp_path / "clips" / "a", id_frames(1, 6), name="{}.png")
    write_frames(tmp_path / "clips" / "b", id_frames(2, 6, size=(16, 20)), name="{}.png")
    data = data_cfg("data=frames", f"data.path={tmp_path / 'clips'}", "data.resize=false")
    with pytest.raises(FramepredError, match=r"b/0.png: frames are 16x20 .*data.resize=false"):
        build_source(data, "train")


def test_error_not_an_array(tmp_path, data_cfg):
    (tmp_path / "junk.npy").write_bytes(b"not numpy")
    with pytest.raises(FramepredError, match=r"cannot read .*junk.npy as a NumPy array"):
        build_source(data_cfg("data=npy", f"data.path={tmp_path / 'junk.npy'}"), "train")
    with zipfile.ZipFile(tmp_path / "empty.npz", "w"):
        pass
    with pytest.raises(FramepredError, match=r"empty.npz holds 0 arrays"):
        build_source(data_cfg("data=npy", f"data.path={tmp_path / 'empty.npz'}"), "train")


def test_window_length_is_context_plus_future(data_cfg):
    assert window_length(data_cfg()) == WINDOW


# --- end to end ---------------------------------------------------------------------------


def test_train_on_moving_mnist_layout_array(tmp_path, compose_train, caplog):
    """Moving MNIST's file layout, [T=10, N=16, H, W], trains as 16 sequences of 10
    frames (read as bthw it would be 10 sequences of 16)."""
    import re

    from framepred.train import train

    array = np.random.default_rng(4).integers(0, 256, (10, 16, 16, 16), dtype=np.uint8)
    np.save(tmp_path / "mnist_test_seq.npy", array)
    cfg = compose_train(["debug=fast", "data=npy", f"data.path={tmp_path / 'mnist_test_seq.npy'}",
                         "trainer.steps_per_epoch=2", "trainer.validation_steps=1"])
    with caplog.at_level(logging.INFO, logger="framepred"):
        payload = train(cfg, run_dir=tmp_path / "run")
    assert (tmp_path / "run" / "metrics.json").is_file() and payload["split"] == "val"
    assert "as tbhw: 16 sequences of 10 frames" in caplog.text
    # Each split: whole 10-frame sequences of the 16, one 6-frame window each
    # (stride = window); 16-frame sequences would give two.
    splits = {split: (int(sequences), int(windows)) for split, sequences, windows in re.findall(
        r"data: (\w+) split: (\d+) sequence\(s\), (\d+) window\(s\) of 6 frames", caplog.text)}
    assert set(splits) == {"train", "val"}, caplog.text
    assert all(windows == sequences for sequences, windows in splits.values()), splits
    assert 12 <= splits["train"][0] + splits["val"][0] < 16, splits  # the rest: test


@pytest.fixture(scope="module")
def cli_on_frames(tmp_path_factory):
    """The train command on PNG sequence folders, and on a folder that is not there
    (one import, then a forked child each)."""
    tmp = tmp_path_factory.mktemp("cli_on_frames")
    rng = np.random.default_rng(5)
    for s in range(6):
        write_frames(tmp / "clips" / f"walk_{s}", rng.integers(0, 256, (8, 20, 20, 3),
                                                              dtype=np.uint8))
    cases = {"clips": ["debug=fast", "data=frames", f"data.path={tmp / 'clips'}",
                       f"hydra.run.dir={tmp / 'run'}"],
             "missing": ["debug=fast", "data=frames", f"data.path={tmp / 'missing'}",
                         f"hydra.run.dir={tmp / 'bad-run'}"]}
    done = run_in_one_process([{"module": "framepred.train", "args": args}
                               for args in cases.values()], tmp)
    return dict(zip(cases, done)), tmp


@pytest.mark.slow
def test_cli_trains_on_png_sequence_folders(cli_on_frames):
    results, tmp = cli_on_frames
    assert results["clips"]["rc"] == 0, results["clips"]["stderr"][-2000:]
    assert (tmp / "run" / "metrics.json").is_file()


@pytest.mark.slow
def test_cli_bad_data_is_one_line_and_exit_2(cli_on_frames):
    done = cli_on_frames[0]["missing"]
    assert done["rc"] == 2
    errors = [line for line in done["stderr"].splitlines()
              if line.startswith("framepred: error:")]
    assert len(errors) == 1 and "missing does not exist" in errors[0]


def test_error_path_not_set(data_cfg):
    from framepred.config import validate_data

    data = data_cfg("data=video")
    with pytest.raises(FramepredError, match=r"data.path is not set; data=video"):
        validate_data(data)
    with pytest.raises(FramepredError, match=r"data.path is not set"):
        build_source(data, "train")


def test_file_cache_is_one_per_split(tmp_path, data_cfg):
    for s in range(4):
        write_frames(tmp_path / "clips" / f"s{s}", id_frames(s, 6), name="{}.png")
    data = data_cfg("data=frames", f"data.path={tmp_path / 'clips'}", "data.val_fraction=0.25",
                    "data.test_fraction=0", f"data.cache={tmp_path / 'cache' / 'clips'}")
    for split in ("train", "val", "train", "val"):  # the second pass reads the cache
        batches = list(window_batches(data, split, batch_size=8))
        ids = {int(round(v * 255)) // 10 for v in batches[0].numpy()[:, 0, 0, 0, 0]}
        assert len(ids) == (3 if split == "train" else 1)
        expected = {s.sequence for s in build_source(data, split).spans}
        assert ids == expected


def test_frames_sixteen_bit_png_keeps_its_range(tmp_path, data_cfg):
    levels = (np.arange(6, dtype=np.uint16) + 1) * 10000
    folder = tmp_path / "deep"
    folder.mkdir()
    for t, level in enumerate(levels):
        Image.fromarray(np.full((16, 16), level, dtype=np.uint16)).save(folder / f"{t}.png")
    data = data_cfg("data=frames", f"data.path={folder}", "data.val_fraction=0",
                    "data.test_fraction=0")
    clip = build_source(data, "train").read(0)
    np.testing.assert_allclose(clip[:, 0, 0, 0], levels / 65535, atol=1e-6)


def test_fast_digits_in_small_frames_stay_inside():
    """Steps longer than the free box (speed 4.5 px, a 30 px digit in 32 px) bounce
    off both walls within a frame instead of leaving the canvas."""
    import numpy as np

    from framepred.data.moving_digits import MovingDigits, bounce_paths

    source = MovingDigits(num_sequences=12, frames=20, frame_size=(32, 32),
                          digit_size=(18, 32), speed=(2.5, 4.5))
    for index in range(len(source)):
        clip = source.read(index)
        assert clip.shape == (20, 32, 32, 1) and clip.max() > 0.5
    rng = np.random.default_rng(0)
    path = bounce_paths(rng, 50, (2, 0), (5.0, 9.0))
    assert path[:, 0].min() >= 0 and path[:, 0].max() <= 2 and (path[:, 1] == 0).all()


def test_registry_and_presets_name_the_same_sources():
    """Every source of the registry has its preset configs/data/<name>.yaml selecting
    it, every preset is a registered source, and the schema offers exactly those."""
    import yaml

    from framepred.config import Source
    from framepred.data.registry import SOURCES
    from tests.helpers.cli import REPO

    presets = {path.stem: yaml.safe_load(path.read_text())["source"]
               for path in (REPO / "configs" / "data").glob("*.yaml")}
    assert presets == {name: name for name in SOURCES}
    assert all((REPO / "configs" / kind.preset).is_file() for kind in SOURCES.values())
    assert [str(choice) for choice in Source] == list(SOURCES)
