"""Encapsulated PDF Storage (:data:`srservice.sopclasses.REPORT_PDF`) in the source study.

IOD: PS3.3 A.45.1 (Encapsulated PDF): Patient and General Study modules copied from the
source; Encapsulated Document Series (Modality DOC); General Equipment; SC Equipment
(Conversion Type SYN, C.8.6.1); Encapsulated Document (C.24.2) with Source Instance Sequence
referencing the IVUS pullback; SOP Common. highdicom has no encapsulated-document class, so
the dataset is built with pydicom. UIDs come from :mod:`srservice.reporting.uids`.
"""

from __future__ import annotations

import datetime as dt

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sr.codedict import codes
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    UID,
    ExplicitVRLittleEndian,
)

from srservice import ALGORITHM_NAME, ALGORITHM_VERSION, sopclasses
from srservice.reporting.uids import derived_uid, output_version

PDF_SERIES_NUMBER = 991
DOCUMENT_TITLE = "IVUS calcium score report (automated, unverified)"

#: Patient and General Study attributes copied from the source (PS3.3 C.7.1.1, C.7.2.1).
COPIED = (
    "PatientName", "PatientID", "IssuerOfPatientID", "PatientBirthDate", "PatientSex",
    "OtherPatientIDsSequence", "StudyInstanceUID", "StudyDate", "StudyTime",
    "ReferringPhysicianName", "StudyID", "AccessionNumber", "StudyDescription",
)
#: Type 2 attributes that must be present even when the source lacks them.
TYPE2 = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate",
         "StudyTime", "ReferringPhysicianName", "StudyID", "AccessionNumber")


def build_pdf_dataset(header: Dataset, pdf_bytes: bytes,
                      now: dt.datetime | None = None, *,
                      revision: str | None = None) -> Dataset:
    """Wrap ``pdf_bytes`` as an Encapsulated PDF instance in the study of ``header``.

    Parameters
    ----------
    header : pydicom.dataset.Dataset
        Source IVUS dataset (patient, study, SOP Class/Instance UIDs).
    pdf_bytes : bytes
        The PDF document.
    now : datetime, optional
        Content / instance creation time (default: current local time).
    revision : str, optional
        Revision of a superseding report (UIDs derived with ``f"{ALGORITHM_VERSION}+{revision}"``).

    Returns
    -------
    pydicom.dataset.Dataset
        With file meta information, ready for ``dcmwrite(..., enforce_file_format=True)``.
    """
    now = now or dt.datetime.now()
    version = output_version(revision)
    sop_uid = derived_uid(header.SOPInstanceUID, "pdf-instance", version)
    ds = Dataset()
    ds.SpecificCharacterSet = header.get("SpecificCharacterSet") or "ISO_IR 192"
    for kw in COPIED:
        if kw in header:
            ds[kw] = header[kw]
    for kw in TYPE2:
        if kw not in ds:
            setattr(ds, kw, None)
    ds.SOPClassUID = sopclasses.REPORT_PDF
    ds.SOPInstanceUID = sop_uid
    ds.InstanceCreationDate = now.strftime("%Y%m%d")
    ds.InstanceCreationTime = now.strftime("%H%M%S")
    ds.Modality = "DOC"
    ds.SeriesInstanceUID = derived_uid(header.SOPInstanceUID, "pdf-series", version)
    ds.SeriesNumber = PDF_SERIES_NUMBER
    ds.SeriesDescription = "IVUS calcium score report (automated, unverified)"
    ds.Manufacturer = "srservice"
    ds.SoftwareVersions = ALGORITHM_VERSION
    ds.ManufacturerModelName = ALGORITHM_NAME
    ds.ConversionType = "SYN"
    ds.InstanceNumber = 1
    ds.ContentDate = ds.InstanceCreationDate
    ds.ContentTime = ds.InstanceCreationTime
    ds.AcquisitionDateTime = now.strftime("%Y%m%d%H%M%S")
    ds.BurnedInAnnotation = "YES"
    ds.RecognizableVisualFeatures = "NO"
    ref = Dataset()
    ref.ReferencedSOPClassUID = header.SOPClassUID
    ref.ReferencedSOPInstanceUID = header.SOPInstanceUID
    ds.SourceInstanceSequence = [ref]
    ds.DocumentTitle = DOCUMENT_TITLE
    title = Dataset()
    code = codes.DCM.IVUSReport
    title.CodeValue = code.value
    title.CodingSchemeDesignator = code.scheme_designator
    title.CodeMeaning = code.meaning
    ds.ConceptNameCodeSequence = [title]
    ds.VerificationFlag = "UNVERIFIED"
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    ds.EncapsulatedDocumentLength = len(pdf_bytes)
    ds.EncapsulatedDocument = pdf_bytes + (b"\0" if len(pdf_bytes) % 2 else b"")
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sopclasses.REPORT_PDF
    meta.MediaStorageSOPInstanceUID = UID(sop_uid)
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds.file_meta = meta
    return ds
