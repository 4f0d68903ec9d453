"""The one table of SOP classes the service accepts, analyses and sends.

Every stage reads its classes from here: the listener (what it always stores), the intake
(what starts a job, and which kind), the loader (what it decodes) and the reports and
delivery (what they send). UIDs are pydicom's constants where pydicom has one (PS3.6 Annex A);
the two retired ultrasound classes have none and are written out.

Ultrasound Multi-frame Image Storage (PS3.3 A.7) and Ultrasound Image Storage (PS3.3 A.6),
with their retired predecessors of the 1993 standard (same pixel encoding, PS3.3 A.7/A.6 as
retired in PS3.6), carry IVUS pullbacks (Modality IVUS, PS3.3 C.7.3.1.1.1). The two
Intravascular OCT classes (PS3.3 A.66) are stored for a later OCT analysis, not analysed yet.
"""

from __future__ import annotations

from pydicom.uid import (
    UID,
    Comprehensive3DSRStorage,
    EncapsulatedPDFStorage,
    GrayscaleSoftcopyPresentationStateStorage,
    IntravascularOpticalCoherenceTomographyImageStorageForPresentation,
    IntravascularOpticalCoherenceTomographyImageStorageForProcessing,
    UltrasoundImageStorage,
    UltrasoundMultiFrameImageStorage,
)

#: Ultrasound Multi-frame Image Storage (Retired), PS3.6 Annex A.
ULTRASOUND_MULTI_FRAME_RETIRED = UID("1.2.840.10008.5.1.4.1.1.3")
#: Ultrasound Image Storage (Retired), PS3.6 Annex A.
ULTRASOUND_IMAGE_RETIRED = UID("1.2.840.10008.5.1.4.1.1.6")

#: Verification SOP Class (PS3.4 Annex A): C-ECHO, as SCP and as SCU.
VERIFICATION = UID("1.2.840.10008.1.1")

#: One instance holds a whole pullback (one frame per position along the vessel).
MULTI_FRAME_IVUS: frozenset[UID] = frozenset({
    UltrasoundMultiFrameImageStorage, ULTRASOUND_MULTI_FRAME_RETIRED,
})
#: One instance per frame: a pullback is a series of them (assembled by Instance Number).
#: These classes have no Multi-frame Module, so a frame is referenced as its own instance
#: (PS3.3 C.18.3.1: Referenced Frame Number only for multi-frame SOP classes).
SINGLE_FRAME_IVUS: frozenset[UID] = frozenset({
    UltrasoundImageStorage, ULTRASOUND_IMAGE_RETIRED,
})
#: Classes the loader decodes and the analysis runs on.
ANALYSED: frozenset[UID] = MULTI_FRAME_IVUS | SINGLE_FRAME_IVUS
#: Intravascular OCT (PS3.3 A.66): always stored, analysed in a later version.
STORED_FOR_LATER: frozenset[UID] = frozenset({
    IntravascularOpticalCoherenceTomographyImageStorageForPresentation,
    IntravascularOpticalCoherenceTomographyImageStorageForProcessing,
})
#: Classes the listener always stores and records; any other storage class follows the
#: ``non_ivus_policy`` setting.
ALWAYS_STORED: frozenset[UID] = ANALYSED | STORED_FOR_LATER

#: What the service produces and sends: the TID 1500 report (Comprehensive 3D SR, PS3.3
#: A.35.13), the one-page report (Encapsulated PDF, PS3.3 A.45.1) and the annotations on the
#: maximum calcium frames (Grayscale Softcopy Presentation State, PS3.3 A.33.1).
REPORT_SR = Comprehensive3DSRStorage
REPORT_PDF = EncapsulatedPDFStorage
REPORT_PR = GrayscaleSoftcopyPresentationStateStorage
SENT: frozenset[UID] = frozenset({REPORT_SR, REPORT_PDF, REPORT_PR})


#: Study Root Query/Retrieve Information Model (PS3.4 C.6.2, UIDs from PS3.6 Annex A): FIND
#: asks a PACS what it holds (backfill, and delivery before a re-send), MOVE and GET fetch
#: studies for the backfill.
STUDY_ROOT_FIND = UID("1.2.840.10008.5.1.4.1.2.2.1")
STUDY_ROOT_MOVE = UID("1.2.840.10008.5.1.4.1.2.2.2")
STUDY_ROOT_GET = UID("1.2.840.10008.5.1.4.1.2.2.3")


def name(uid: str) -> str:
    """Return the SOP class's name for messages (``"unknown"`` for a UID pydicom does not know).

    Parameters
    ----------
    uid : str
        A SOP Class UID (anything; it is only displayed).

    Returns
    -------
    str
        E.g. ``"Ultrasound Multi-frame Image Storage"``.
    """
    if uid == ULTRASOUND_MULTI_FRAME_RETIRED:
        return "Ultrasound Multi-frame Image Storage (Retired)"
    if uid == ULTRASOUND_IMAGE_RETIRED:
        return "Ultrasound Image Storage (Retired)"
    known = UID(uid).name if uid else ""
    return known if known and known != uid else "unknown"
