"""Loader: round trips through the phantom writer, spacing variants, dciodvfy, bad input."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import CTImageStorage, UltrasoundImageStorage

from srservice.dicomio import load_pullback
from srservice.errors import InvalidDicomError
from srservice.jobs.intake import trigger_for
from srservice.phantom import PhantomCase, small_case
from srservice.phantom.writer import build_dataset, write_pullback
from srservice.sopclasses import MULTI_FRAME_IVUS, SINGLE_FRAME_IVUS
from tests.support.environment import require_tool
from tests.support.jobs import stored


@pytest.fixture(scope="module")
def case() -> PhantomCase:
    return small_case("calcium", frames=5, rows=128, seed=3)


LOSSLESS = [
    dict(transfer_syntax="explicit"),
    dict(transfer_syntax="implicit"),
    dict(transfer_syntax="jpeg_lossless"),
    dict(transfer_syntax="jpegls"),
    dict(transfer_syntax="j2k"),
    dict(transfer_syntax="rle"),
    dict(photometric="MONOCHROME1"),
    dict(photometric="MONOCHROME1", transfer_syntax="rle"),
    dict(photometric="RGB"),
    dict(photometric="RGB", transfer_syntax="jpeg_lossless"),
    dict(photometric="RGB", transfer_syntax="jpegls"),
    dict(photometric="RGB", transfer_syntax="j2k"),
    dict(photometric="RGB", transfer_syntax="rle"),
    dict(bits=16),
    dict(bits=16, transfer_syntax="implicit"),
    dict(bits=16, transfer_syntax="jpegls"),
    dict(bits=16, transfer_syntax="j2k"),
    dict(bits=16, transfer_syntax="rle"),
]


@pytest.mark.parametrize("kw", LOSSLESS, ids=lambda kw: "-".join(map(str, kw.values())))
def test_lossless_round_trip(case: PhantomCase, tmp_path: Path, kw: dict[str, object]) -> None:
    path = write_pullback(case, tmp_path / "p.dcm", **kw)
    loaded = load_pullback(path)
    pb = loaded.pullback
    assert pb.frames.dtype == np.uint8
    assert np.array_equal(pb.frames, case.grey_frames())
    assert pb.pixel_spacing_mm == pytest.approx(case.pixel_spacing_mm)
    assert pb.frame_spacing_mm == pytest.approx(case.frame_spacing_mm, rel=1e-4)
    assert pb.catheter_center is not None
    assert abs(pb.catheter_center[0] - case.catheter_center[0]) <= 0.5
    assert "PixelData" not in loaded.header
    assert loaded.header.PatientName == "PHANTOM^IVUS"
    assert loaded.sop_instance_uid == pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID


@pytest.mark.parametrize("photometric", ["MONOCHROME2", "YBR_FULL_422"])
def test_jpeg_baseline_close(case: PhantomCase, tmp_path: Path, photometric: str) -> None:
    path = write_pullback(case, tmp_path / "p.dcm", transfer_syntax="jpeg_baseline",
                          photometric=photometric)
    pb = load_pullback(path).pullback
    err = np.abs(pb.frames.astype(int) - case.grey_frames().astype(int))
    assert err.mean() < 4.0
    assert pydicom.dcmread(path, stop_before_pixels=True).LossyImageCompression == "01"


def test_rgb_overlay_case_to_luma(tmp_path: Path) -> None:
    from srservice.phantom import CaseSpec, make_case

    c = make_case(CaseSpec("rgb", 1, rows=128, pixel_spacing_mm=0.045, frame_count=3,
                           overlays="colour"))
    assert c.frames.ndim == 4
    pb = load_pullback(write_pullback(c, tmp_path / "rgb.dcm")).pullback
    assert np.array_equal(pb.frames, c.grey_frames())


def test_dataset_source_and_single_frame(case: PhantomCase) -> None:
    ds = build_dataset(case)
    assert load_pullback(ds).pullback.frame_count == case.frames.shape[0]
    ds.SOPClassUID = UltrasoundImageStorage
    ds.file_meta.MediaStorageSOPClassUID = UltrasoundImageStorage
    ds.NumberOfFrames = 1
    ds.PixelData = case.frames[0].tobytes()
    pb = load_pullback(ds).pullback
    assert pb.frames.shape == (1, 128, 128)
    assert np.array_equal(pb.frames[0], case.frames[0])


@pytest.mark.parametrize(
    ("kw", "frame_spacing", "note"),
    [
        (dict(rate_source="frame_time"), "exact", None),
        (dict(rate_source="frame_time_vector"), "exact", "Frame Time Vector"),
        (dict(rate_source="cine_rate"), "exact", "Cine Rate"),
        (dict(gated=True), "exact", "Gated"),
        (dict(rate_source="none"), None, "frame spacing unknown"),
    ],
)
def test_frame_spacing_sources(
    case: PhantomCase, tmp_path: Path, kw: dict[str, object], frame_spacing: str | None,
    note: str | None,
) -> None:
    pb = load_pullback(write_pullback(case, tmp_path / "f.dcm", **kw)).pullback
    if frame_spacing is None:
        assert pb.frame_spacing_mm is None
    else:
        assert pb.frame_spacing_mm == pytest.approx(case.frame_spacing_mm, rel=1e-4)
    if note:
        assert any(note in n for n in pb.notes), pb.notes


def test_gated_spacing_is_gated_rate(tmp_path: Path) -> None:
    from srservice.phantom import CaseSpec, make_case

    c = make_case(CaseSpec("g", 2, rows=96, pixel_spacing_mm=0.06, frame_count=3, gated=True,
                           pullback_rate_mm_s=0.5, heart_rate_hz=1.25))
    pb = load_pullback(write_pullback(c, tmp_path / "g.dcm")).pullback
    assert pb.frame_spacing_mm == pytest.approx(0.4)
    ds = pydicom.dcmread(tmp_path / "g.dcm", stop_before_pixels=True)
    assert ds.IVUSAcquisition == "GATED_PULLBACK"


def test_pixel_spacing_sources_and_defaults(case: PhantomCase, tmp_path: Path) -> None:
    pb = load_pullback(write_pullback(case, tmp_path / "a.dcm",
                                      spacing_source="pixel_spacing")).pullback
    assert pb.pixel_spacing_mm == pytest.approx(case.pixel_spacing_mm)
    assert pb.catheter_center is None
    p = write_pullback(case, tmp_path / "b.dcm", spacing_source="none", rate_source="none")
    pb = load_pullback(p).pullback
    assert pb.pixel_spacing_mm is None and pb.frame_spacing_mm is None
    assert any("pixel spacing unknown" in n for n in pb.notes)
    pb = load_pullback(p, default_pixel_spacing_mm=0.02, default_frame_spacing_mm=0.1).pullback
    assert pb.pixel_spacing_mm == 0.02 and pb.frame_spacing_mm == 0.1
    assert sum("site default" in n for n in pb.notes) == 2


def test_non_ivus_modality_is_a_note(case: PhantomCase) -> None:
    ds = build_dataset(case)
    ds.Modality = "US"
    assert any("not IVUS" in n for n in load_pullback(ds).pullback.notes)


@pytest.mark.parametrize(
    "kw",
    [
        dict(transfer_syntax="explicit"),
        dict(transfer_syntax="implicit"),
        dict(transfer_syntax="jpeg_baseline"),
        dict(transfer_syntax="jpeg_lossless"),
        dict(transfer_syntax="jpegls"),
        dict(transfer_syntax="j2k"),
        dict(transfer_syntax="rle"),
        dict(photometric="RGB"),
        dict(gated=True),
        dict(rate_source="frame_time_vector"),
    ],
    ids=lambda kw: "-".join(map(str, kw.values())),
)
def test_dciodvfy_no_errors(case: PhantomCase, tmp_path: Path, kw: dict[str, object]) -> None:
    tool = require_tool("dciodvfy")
    path = write_pullback(case, tmp_path / "v.dcm", **kw)
    out = subprocess.run([tool, str(path)], capture_output=True, text=True, timeout=60)
    errors = [ln for ln in (out.stdout + out.stderr).splitlines() if "Error" in ln]
    assert errors == []


# ---- malformed input -------------------------------------------------------------------


def _explicit(case: PhantomCase, tmp_path: Path) -> Path:
    return write_pullback(case, tmp_path / "ok.dcm", transfer_syntax="explicit")


def test_not_dicom(tmp_path: Path) -> None:
    p = tmp_path / "x.dcm"
    p.write_bytes(b"hello, this is not DICOM" * 20)
    with pytest.raises(InvalidDicomError, match="not a DICOM file"):
        load_pullback(p)
    with pytest.raises(InvalidDicomError, match="not a file"):
        load_pullback(tmp_path / "missing.dcm")


def test_truncated(case: PhantomCase, tmp_path: Path) -> None:
    p = _explicit(case, tmp_path)
    data = p.read_bytes()
    p.write_bytes(data[: len(data) - 5000])
    with pytest.raises(InvalidDicomError, match=r"truncated|does not match"):
        load_pullback(p)
    p.write_bytes(data[:300])
    with pytest.raises(InvalidDicomError):
        load_pullback(p)


def test_no_pixel_data(case: PhantomCase) -> None:
    ds = build_dataset(case)
    del ds.PixelData
    with pytest.raises(InvalidDicomError, match="no Pixel Data"):
        load_pullback(ds)


def test_pixel_length_mismatch(case: PhantomCase, tmp_path: Path) -> None:
    ds = build_dataset(case)
    ds.Rows = ds.Rows + 3
    p = tmp_path / "m.dcm"
    ds.save_as(p, enforce_file_format=True)
    with pytest.raises(InvalidDicomError, match="does not match Rows x Columns x Frames"):
        load_pullback(p)


def test_absurd_frame_count(case: PhantomCase) -> None:
    ds = build_dataset(case, transfer_syntax="rle")
    ds.NumberOfFrames = 10_000_000
    with pytest.raises(InvalidDicomError, match="absurd Number of Frames"):
        load_pullback(ds)
    ds.NumberOfFrames = 0
    with pytest.raises(InvalidDicomError, match="absurd Number of Frames"):
        load_pullback(ds)


def test_more_frames_claimed_than_encoded(case: PhantomCase) -> None:
    ds = build_dataset(case, transfer_syntax="jpegls")
    ds.NumberOfFrames = case.frames.shape[0] + 4
    with pytest.raises(InvalidDicomError, match=r"frames|decode"):
        load_pullback(ds)


def test_undecodable_compressed(case: PhantomCase, tmp_path: Path) -> None:
    p = write_pullback(case, tmp_path / "j.dcm", transfer_syntax="jpeg_lossless")
    data = bytearray(p.read_bytes())
    start = data.find(b"\xff\xd8\xff")  # first JPEG frame
    for i in range(start + 2, start + 600):
        data[i] = 0x5A
    p.write_bytes(bytes(data))
    with pytest.raises(InvalidDicomError, match="cannot decode Pixel Data"):
        load_pullback(p)


def test_unsupported_sop_class(case: PhantomCase) -> None:
    ds = build_dataset(case)
    ds.SOPClassUID = CTImageStorage
    with pytest.raises(InvalidDicomError, match="unsupported SOP Class"):
        load_pullback(ds)


@pytest.mark.parametrize("sop_class", sorted(MULTI_FRAME_IVUS | SINGLE_FRAME_IVUS))
def test_every_class_that_gets_a_job_is_loaded(case: PhantomCase, sop_class: str) -> None:
    """One SOP-class table: a class the intake makes a job for is one the loader decodes
    (a retired Ultrasound Multi-frame instance used to get a job that failed)."""
    ds = build_dataset(case)
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = sop_class
    if sop_class in SINGLE_FRAME_IVUS:
        ds.NumberOfFrames = 1
        ds.PixelData = case.frames[0].tobytes()
    assert trigger_for(stored(cls=sop_class, frames=int(ds.NumberOfFrames))) != "none"
    assert load_pullback(ds).pullback.frame_count == int(ds.NumberOfFrames)


def test_error_messages_are_one_line(case: PhantomCase, tmp_path: Path) -> None:
    p = tmp_path / "garbage.dcm"
    p.write_bytes(b"\x00" * 128 + b"DICM" + bytes(range(256)) * 4)
    with pytest.raises(InvalidDicomError) as info:
        load_pullback(p)
    assert "\n" not in str(info.value)


def _patched(src: Path, old: bytes, new: bytes) -> Path:
    data = src.read_bytes()
    assert data.count(old) == 1, old
    out = src.with_name("patched.dcm")
    out.write_bytes(data.replace(old, new))
    return out


def test_unknown_vr_in_rows(case: PhantomCase, tmp_path: Path) -> None:
    """Finding R1 (docs/reliability.md): values are converted lazily; a bad VR must not escape
    as NotImplementedError."""
    rows_us = b"\x28\x00\x10\x00US\x02\x00"  # (0028,0010) US, length 2 (PS3.5 7.1.2)
    p = _patched(_explicit(case, tmp_path), rows_us, rows_us.replace(b"US", b"ZZ"))
    with pytest.raises(InvalidDicomError, match="ZZ") as info:
        load_pullback(p)
    assert "\n" not in str(info.value)
    with pytest.raises(InvalidDicomError, match="ZZ"):
        load_pullback(pydicom.dcmread(p))  # the same via a Dataset source


def test_ul_with_odd_length_in_sequence(case: PhantomCase, tmp_path: Path) -> None:
    """Finding R1: a UL of 3 bytes (not a multiple of 4, PS3.5 6.2) inside an ultrasound region."""
    src = _explicit(case, tmp_path)
    data = src.read_bytes()
    head = b"\x18\x00\x18\x60UL\x04\x00"  # (0018,6018) Region Location Min X0, length 4
    at = data.index(head)
    value = data[at + len(head):at + len(head) + 4]
    p = _patched(src, head + value, b"\x18\x00\x18\x60UL\x03\x00" + value[:3])
    with pytest.raises(InvalidDicomError, match="UL") as info:
        load_pullback(p)
    assert "\n" not in str(info.value)
    assert load_pullback(src).pullback.frames.shape[0] == case.frames.shape[0]


def test_16bit_scaled_by_actual_range(case: PhantomCase) -> None:
    ds = build_dataset(case, bits=16)
    ds.BitsStored, ds.HighBit = 16, 15  # values use only 12 of the 16 bits
    pb = load_pullback(ds).pullback
    err = np.abs(pb.frames.astype(int) - case.grey_frames().astype(int))
    assert err.max() <= 1
    assert any("actual range" in n for n in pb.notes)


def test_16bit_monochrome1(case: PhantomCase) -> None:
    ds = build_dataset(case, bits=16, photometric="MONOCHROME1")
    assert np.array_equal(load_pullback(ds).pullback.frames, case.grey_frames())


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        (dict(transfer_syntax="mpeg2"), "transfer_syntax must be"),
        (dict(photometric="PALETTE COLOR"), "photometric must be"),
        (dict(bits=12), "bits must be 8 or 16"),
        (dict(bits=16, transfer_syntax="jpeg_baseline"), "16-bit export"),
        (dict(photometric="YBR_FULL_422"), "YBR_FULL_422 is written only"),
        (dict(spacing_source="ruler"), "spacing_source must be"),
        (dict(rate_source="sundial"), "rate_source must be"),
    ],
)
def test_writer_rejects_bad_options(
    case: PhantomCase, tmp_path: Path, kw: dict[str, object], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        write_pullback(case, tmp_path / "bad.dcm", **kw)
    assert list(tmp_path.iterdir()) == []  # nothing half-written


def test_written_file_is_complete_and_readable(case: PhantomCase, tmp_path: Path) -> None:
    p = write_pullback(case, tmp_path / "sub" / "ok.dcm")
    assert [x.name for x in p.parent.iterdir()] == ["ok.dcm"]
    ds = pydicom.dcmread(p)
    assert ds.Modality == "IVUS" and ds.NumberOfFrames == case.frames.shape[0]
    assert ds.SequenceOfUltrasoundRegions[0].PhysicalUnitsXDirection == 3
    assert float(ds.SequenceOfUltrasoundRegions[0].PhysicalDeltaX) == pytest.approx(
        case.pixel_spacing_mm / 10
    )
    assert ds.IVUSAcquisition == "MOTOR_PULLBACK"
    assert float(ds.IVUSPullbackRate) == case.spec.pullback_rate_mm_s


def test_planar_configuration_1(case: PhantomCase, tmp_path: Path) -> None:
    ds = build_dataset(case, photometric="RGB")
    rgb = np.repeat(case.frames[..., None], 3, axis=3)
    ds.PixelData = np.ascontiguousarray(np.moveaxis(rgb, -1, 1)).tobytes()
    ds.PlanarConfiguration = 1
    p = tmp_path / "planar.dcm"
    ds.save_as(p, enforce_file_format=True)
    assert np.array_equal(load_pullback(p).pullback.frames, case.grey_frames())
    assert np.array_equal(load_pullback(ds).pullback.frames, case.grey_frames())


def test_peak_memory_about_decoded_size(tmp_path: Path) -> None:
    import tracemalloc

    from srservice.phantom import CaseSpec, make_case

    big = make_case(CaseSpec("mem", 9, rows=256, pixel_spacing_mm=0.025, frame_count=40,
                             motion=0.0))
    for ts in ("explicit", "rle"):
        p = write_pullback(big, tmp_path / f"{ts}.dcm", transfer_syntax=ts)
        load_pullback(p)  # warm up imports and plugin caches
        tracemalloc.start()
        loaded = load_pullback(p)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        decoded = loaded.pullback.frames.nbytes
        assert peak < 1.6 * decoded + 2_000_000, (ts, peak, decoded)
