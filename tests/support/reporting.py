"""Hand-made inputs for the reporting tests: a small IVUS source dataset and analyses."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    UID,
    ExplicitVRLittleEndian,
    UltrasoundImageStorage,
    UltrasoundMultiFrameImageStorage,
)

from srservice.analysis.types import (
    ANGLE_BINS,
    FrameMeasurement,
    LesionFeatures,
    Pullback,
    PullbackAnalysis,
)
from srservice.dicomio import LoadedPullback

SOURCE_SOP_UID = "1.2.826.0.1.3680043.8.498.1001"
STUDY_UID = "1.2.826.0.1.3680043.8.498.1002"
SERIES_UID = "1.2.826.0.1.3680043.8.498.1003"
ROWS = 128
FRAMES = 40
PIXEL_MM = 0.05
FRAME_MM = 0.5


def source_dataset(frames: np.ndarray | None = None) -> Dataset:
    """An Ultrasound Multi-frame IVUS instance with patient and study attributes."""
    if frames is None:
        frames = synthetic_frames()
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = UltrasoundMultiFrameImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = UID(SOURCE_SOP_UID)
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = UltrasoundMultiFrameImageStorage
    ds.SOPInstanceUID = SOURCE_SOP_UID
    ds.StudyInstanceUID = STUDY_UID
    ds.SeriesInstanceUID = SERIES_UID
    ds.PatientName = "Müller^Anna"
    ds.PatientID = "PAT-0042"
    ds.PatientBirthDate = "19580312"
    ds.PatientSex = "F"
    ds.StudyDate = "20260110"
    ds.StudyTime = "101500"
    ds.StudyID = "S1"
    ds.AccessionNumber = "ACC123"
    ds.ReferringPhysicianName = "Ref^Doc"
    ds.StudyDescription = "PCI LAD"
    ds.Modality = "IVUS"
    ds.SeriesNumber = 3
    ds.InstanceNumber = 1
    ds.Manufacturer = "Phantom"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = frames.shape[1], frames.shape[2]
    ds.NumberOfFrames = frames.shape[0]
    ds.BitsAllocated = 8
    ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.FrameTime = 33.3
    ds.IVUSPullbackRate = 0.5
    ds.PixelData = frames.tobytes()
    return ds


def synthetic_frames(n: int = FRAMES, rows: int = ROWS) -> np.ndarray:
    yy, xx = np.mgrid[0:rows, 0:rows]
    r = np.hypot(xx - rows / 2, yy - rows / 2)
    img = np.where((r > 22) & (r < 40), 120, 20).astype(np.uint8)
    img[(r > 26) & (r < 28) & (xx > rows / 2)] = 250
    return np.repeat(img[None], n, axis=0)


def circle(radius: float, center: tuple[float, float], k: int = 64) -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, k, endpoint=False)
    return np.column_stack([center[0] + radius * np.cos(t), center[1] + radius * np.sin(t)])


def frame_measurement(i: int, arc: float, superficial: float, *, spacing: float | None = PIXEL_MM,
                      nodule: bool = False, lumen_r: float = 25.0,
                      eem_r: float = 38.0) -> FrameMeasurement:
    c = (ROWS / 2, ROWS / 2)
    mask = np.zeros(ANGLE_BINS, dtype=bool)
    mask[: int(arc)] = True
    mask = np.roll(mask, -int(arc) // 2)       # centred on 0 degrees: wraps at 0/360
    smask = np.zeros(ANGLE_BINS, dtype=bool)
    smask[: int(superficial)] = True
    smask = np.roll(smask, -int(superficial) // 2)
    depth = np.where(mask, 0.1, np.nan) if spacing else None
    area = (lambda rad: float(np.pi * (rad * spacing) ** 2)) if spacing else None
    return FrameMeasurement(
        frame=i, assessable=True, center=c, lumen_contour=circle(lumen_r, c),
        eem_contour=circle(eem_r, c),
        lumen_area_mm2=area(lumen_r) if area else None,
        eem_area_mm2=area(eem_r) if area else None,
        eem_mean_diameter_mm=2 * eem_r * spacing if spacing else None,
        eem_interpolated_fraction=0.25, calcium_mask=mask, superficial_calcium_mask=smask,
        calcium_arc_deg=float(mask.sum()), superficial_calcium_arc_deg=float(smask.sum()),
        calcified_nodule=nodule, calcium_depth_mm=depth)


def analysis(kind: str = "score2", *, spacing: bool = True) -> PullbackAnalysis:
    """kind: 'score2' (long calcium + small vessel), 'none' (no lesion), 'outside' (<=270)."""
    px = PIXEL_MM if spacing else None
    fs = FRAME_MM if spacing else None
    arcs = np.zeros(FRAMES)
    if kind == "score2":
        arcs[10:30] = 200
        arcs[14:27] = 300     # 13 frames > 270 -> 6.5 mm
    elif kind == "outside":
        arcs[10:20] = 180
        arcs[14] = 250
    frames = tuple(
        frame_measurement(i + 1, min(360.0, a + 20 if a else 0), a, spacing=px, lumen_r=25.0,
                          eem_r=33.0 if kind == "score2" else 40.0)
        for i, a in enumerate(arcs))
    lesions: tuple[LesionFeatures, ...] = ()
    if kind == "score2":
        lesions = (LesionFeatures(
            start_frame=11, end_frame=30, max_calcium_frame=20,
            max_superficial_calcium_arc_deg=300.0,
            length_superficial_calcium_over_270_mm=6.5 if spacing else None,
            over_270_start_frame=15, over_270_end_frame=27,
            circumferential_superficial_calcium=False, calcified_nodule=False,
            vessel_diameter_at_max_calcium_mm=2 * 33.0 * PIXEL_MM if spacing else None,
            lumen_area_at_max_calcium_mm2=frames[19].lumen_area_mm2,
            eem_interpolated_fraction_at_max_calcium=0.25,
            calcium_length_mm=10.0 if spacing else None),)
    elif kind == "outside":
        lesions = (LesionFeatures(
            start_frame=11, end_frame=20, max_calcium_frame=15,
            max_superficial_calcium_arc_deg=250.0, length_superficial_calcium_over_270_mm=0.0,
            over_270_start_frame=None, over_270_end_frame=None,
            circumferential_superficial_calcium=False, calcified_nodule=True,
            vessel_diameter_at_max_calcium_mm=4.0, lumen_area_at_max_calcium_mm2=4.9,
            eem_interpolated_fraction_at_max_calcium=0.1, calcium_length_mm=5.0),)
    notes = () if spacing else ("pixel spacing unknown (no Sequence of Ultrasound Regions, "
                                "no Pixel Spacing)", "frame spacing unknown (no pullback rate)")
    return PullbackAnalysis(frame_count=FRAMES, pixel_spacing_mm=px, frame_spacing_mm=fs,
                            frames=frames, lesions=lesions, not_assessable=notes)


def loaded(*, spacing: bool = True) -> LoadedPullback:
    """The source dataset, decoded as the loader would (header without Pixel Data)."""
    header = source_dataset()
    frames = synthetic_frames()
    del header.PixelData
    pb = Pullback(frames=frames, pixel_spacing_mm=PIXEL_MM if spacing else None,
                  frame_spacing_mm=FRAME_MM if spacing else None,
                  catheter_center=(ROWS / 2, ROWS / 2))
    return LoadedPullback(pullback=pb, header=header, sop_instance_uid=SOURCE_SOP_UID)


def write_single_frame_series(directory: Path, n: int = 3) -> list[Path]:
    """Write ``n`` Ultrasound Image Storage instances (one frame each) of one series.

    Returned in reverse Instance Number order, so a loader must sort them.
    """
    frames = synthetic_frames(n)
    paths = []
    for i in reversed(range(n)):
        ds = source_dataset(frames[i:i + 1])
        uid = f"{SERIES_UID}.{i + 1}"
        ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = UltrasoundImageStorage
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = UID(uid)
        ds.InstanceNumber = i + 1
        for kw in ("NumberOfFrames", "FrameTime"):
            delattr(ds, kw)
        path = directory / f"frame-{i + 1}.dcm"
        pydicom.dcmwrite(path, ds, enforce_file_format=True)
        paths.append(path)
    return paths


def small_analysis(n: int = 3, max_frame: int = 2) -> PullbackAnalysis:
    """An ``n``-frame analysis with one calcified segment over all frames."""
    frames = tuple(frame_measurement(i, 300.0 if i == max_frame else 200.0,
                                     300.0 if i == max_frame else 180.0, eem_r=33.0)
                   for i in range(1, n + 1))
    lesion = LesionFeatures(
        start_frame=1, end_frame=n, max_calcium_frame=max_frame,
        max_superficial_calcium_arc_deg=300.0, length_superficial_calcium_over_270_mm=0.5,
        over_270_start_frame=max_frame, over_270_end_frame=max_frame,
        circumferential_superficial_calcium=False, calcified_nodule=False,
        vessel_diameter_at_max_calcium_mm=2 * 33.0 * PIXEL_MM,
        lumen_area_at_max_calcium_mm2=frames[max_frame - 1].lumen_area_mm2,
        eem_interpolated_fraction_at_max_calcium=0.25, calcium_length_mm=n * FRAME_MM)
    return PullbackAnalysis(frame_count=n, pixel_spacing_mm=PIXEL_MM, frame_spacing_mm=FRAME_MM,
                            frames=frames, lesions=(lesion,))


def write_source(path: str) -> str:
    ds = source_dataset()
    pydicom.dcmwrite(path, ds, enforce_file_format=True)
    return path


GUIDE = "transducer inside the guide catheter"
NOISE = "no usable ultrasound signal (no speckle structure: noise)"
TOO_BIG = "EEM mean diameter 11.3 mm outside the coronary range 1.5-7 mm"
PULLBACK_REASON = "only 3 assessable frame(s) of 40 (at least 10 needed)"
FLAG = "EEM interpolated behind calcium over 140 degrees"


def unassessable_frame(i: int, reason: str) -> FrameMeasurement:
    """A frame the analysis could not measure, with its reason (as the analysis gives it)."""
    empty = np.zeros(ANGLE_BINS, dtype=bool)
    return FrameMeasurement(
        frame=i, assessable=False, center=(ROWS / 2, ROWS / 2), lumen_contour=None,
        eem_contour=None, lumen_area_mm2=None, eem_area_mm2=None, eem_mean_diameter_mm=None,
        eem_interpolated_fraction=0.0, calcium_mask=empty, superficial_calcium_mask=empty.copy(),
        calcium_arc_deg=0.0, superficial_calcium_arc_deg=0.0, calcified_nodule=False,
        reason=reason)


def not_assessable_analysis(*, lesion: bool = False) -> PullbackAnalysis:
    """A 40-frame pullback the analysis cannot score (``PullbackAnalysis.reason`` set).

    Frames 1-12: guide catheter; 13-15 assessable (flagged, with nodule evidence);
    16-29 and 31-40: noise; 30: implausible EEM. With ``lesion``, the 'score2' lesion is kept
    (its measured components would give 2 points) to show that none is reported.
    """
    frames: list[FrameMeasurement] = []
    for i in range(1, FRAMES + 1):
        if i <= 12:
            frames.append(unassessable_frame(i, GUIDE))
        elif i <= 15:
            m = frame_measurement(i, 40.0, 20.0)
            frames.append(replace(m, flags=(FLAG,), nodule_protrusion_mm=0.05))
        else:
            frames.append(unassessable_frame(i, TOO_BIG if i == 30 else NOISE))
    lesions = analysis("score2").lesions if lesion else ()
    return PullbackAnalysis(frame_count=FRAMES, pixel_spacing_mm=PIXEL_MM,
                            frame_spacing_mm=FRAME_MM, frames=tuple(frames), lesions=lesions,
                            not_assessable=(), reason=PULLBACK_REASON)
