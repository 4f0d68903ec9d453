"""Durable spool of received instances: atomic writes, free-space watermark.

A received C-STORE data set (already on disk, written chunk by chunk by pynetdicom, see
:mod:`srservice.listener.receive`) that passes :func:`srservice.listener.checks.check_received`
becomes a DICOM Part 10 file (PS3.10 Section 7: 128-byte preamble, ``DICM``, File Meta
Information, then the data set bytes exactly as received, no transcoding) in three durable
steps:

1. write ``<spool>/tmp/<random>.part`` and ``fsync`` it;
2. hard-link it to its final name (fails instead of overwriting) and ``fsync`` the directory;
3. remove the temporary name.

A crash at any point leaves either no final file or a complete one; :meth:`Spool.prepare`
removes the leftovers in ``tmp`` and ``incoming`` at start-up. Final names are built only
from UIDs that passed :func:`srservice.listener.checks.validate_uid` and from hashes:
``<spool>/<sha256(SOPInstanceUID)[:2]>/<SOPInstanceUID>.<digest[:16]>.dcm`` where ``digest``
is the SHA-256 of the transfer syntax UID and the data set bytes. A final path therefore never
holds different content; a resend of the same bytes is an idempotent success.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import shutil
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from pydicom.dataset import FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_file_meta_info
from pydicom.uid import UID

from srservice import __version__
from srservice.dicomheader import ReadLimits
from srservice.durable import fsync_dir, fsync_file
from srservice.errors import OutOfResourcesError
from srservice.listener.checks import check_received, validate_uid

LOGGER = logging.getLogger(__name__)

#: Implementation Class UID written in File Meta Information (PS3.7 D.3.3.2; UUID-derived
#: UID under the 2.25 root, PS3.5 Annex B.2).
IMPLEMENTATION_CLASS_UID = "2.25.216983857383664371524849087063505054886"
#: Implementation Version Name (PS3.7 D.3.3.2.2, at most 16 characters).
IMPLEMENTATION_VERSION_NAME = f"SRSERVICE_{__version__}"[:16]

_CHUNK = 1 << 20


@dataclass(frozen=True)
class StoredInstance:
    """One instance durably in the spool: what the listener hands to ``on_stored``.

    ``sha256`` is the SHA-256 of the data set bytes as received (after the File Meta
    Information) and ``size`` their length, so a resend of identical bytes has equal values.
    """

    sop_class_uid: str
    sop_instance_uid: str
    study_instance_uid: str
    series_instance_uid: str
    modality: str
    number_of_frames: int
    transfer_syntax_uid: str
    path: Path
    sha256: str
    size: int
    calling_ae: str
    peer_host: str
    received_at: datetime


class Spool:
    """The spool directory with its ``tmp``, ``incoming`` and fan-out directories.

    ``tmp`` holds our partial writes, ``incoming`` pynetdicom's chunked receive files; final
    files sit in 256 fan-out directories named by the UID hash.

    Parameters
    ----------
    root : pathlib.Path
        Spool directory (``settings.spool_dir``).
    min_free_disk_mb : int
        Free-space watermark; below it :meth:`check_free_space` raises (status 0xA700).
    limits : ReadLimits, optional
        Header limits of :func:`srservice.listener.checks.check_received`.
    """

    def __init__(self, root: Path, min_free_disk_mb: int,
                 limits: ReadLimits | None = None) -> None:
        self.root = root
        self.limits = limits or ReadLimits.defaults()
        self.min_free_bytes = int(min_free_disk_mb) * 1024 * 1024
        self.tmp_dir = root / "tmp"
        self.incoming_dir = root / "incoming"

    def prepare(self) -> None:
        """Create the directories and delete leftovers of an earlier crash (tmp, incoming).

        Only one listener process may use a spool directory at a time.
        """
        for directory in (self.root, self.tmp_dir, self.incoming_dir):
            directory.mkdir(parents=True, exist_ok=True)
        for directory in (self.tmp_dir, self.incoming_dir):
            for leftover in directory.iterdir():
                if leftover.is_file():
                    LOGGER.info("removing leftover partial file %s", leftover.name)
                    leftover.unlink(missing_ok=True)

    def check_free_space(self) -> None:
        """Raise :class:`OutOfResourcesError` when free space is below the watermark."""
        try:
            free = shutil.disk_usage(self.root).free
        except OSError as exc:
            raise OutOfResourcesError(f"spool volume not usable: {exc.strerror}") from exc
        if free < self.min_free_bytes:
            raise OutOfResourcesError(
                f"spool volume has {free // (1024 * 1024)} MB free, below the "
                f"{self.min_free_bytes // (1024 * 1024)} MB watermark (min_free_disk_mb)"
            )

    def instance_dir(self, sop_instance_uid: str) -> Path:
        """Return the fan-out directory of a (validated) SOP Instance UID."""
        uid = validate_uid(sop_instance_uid, "SOPInstanceUID")
        return self.root / hashlib.sha256(uid.encode("ascii")).hexdigest()[:2]

    def add(self, received: Path, *, sop_class_uid: str, sop_instance_uid: str,
            transfer_syntax_uid: str, calling_ae: str, called_ae: str,
            peer_host: str) -> StoredInstance:
        """Validate a received file and store it durably; return the stored instance.

        Parameters
        ----------
        received : pathlib.Path
            Part 10 file written by pynetdicom's chunked receive (its meta is replaced).
        sop_class_uid, sop_instance_uid : str
            Affected SOP Class / Instance UID of the C-STORE request.
        transfer_syntax_uid : str
            Accepted transfer syntax of the presentation context (stored as is).
        calling_ae, called_ae, peer_host : str
            Association parameters (written to File Meta Information, PS3.10 7.1:
            Source/Sending AE = calling AE, Receiving AE = called AE).

        Returns
        -------
        StoredInstance
            The stored instance; an existing identical file is reused (idempotent).

        Raises
        ------
        InvalidUIDError, InvalidDicomError, InstanceMismatchError, DataSetMismatchError
            Refused input; nothing is written.
        OutOfResourcesError
            Below the watermark (before or after writing) or disk full; nothing is left.
        """
        sop_class_uid = validate_uid(sop_class_uid, "AffectedSOPClassUID")
        sop_instance_uid = validate_uid(sop_instance_uid, "AffectedSOPInstanceUID")
        transfer_syntax_uid = validate_uid(transfer_syntax_uid, "TransferSyntaxUID")
        self.check_free_space()
        header, offset = check_received(received, sop_class_uid=sop_class_uid,
                                     sop_instance_uid=sop_instance_uid,
                                     transfer_syntax_uid=transfer_syntax_uid,
                                     limits=self.limits)
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = UID(sop_class_uid)
        meta.MediaStorageSOPInstanceUID = UID(sop_instance_uid)
        meta.TransferSyntaxUID = UID(transfer_syntax_uid)
        meta.ImplementationClassUID = UID(IMPLEMENTATION_CLASS_UID)
        meta.ImplementationVersionName = IMPLEMENTATION_VERSION_NAME
        meta.SourceApplicationEntityTitle = calling_ae
        meta.SendingApplicationEntityTitle = calling_ae
        meta.ReceivingApplicationEntityTitle = called_ae
        buffer = DicomBytesIO()
        write_file_meta_info(buffer, meta, enforce_standard=True)
        meta_bytes = b"\x00" * 128 + b"DICM" + buffer.getvalue()

        tmp = self.tmp_dir / f"{uuid.uuid4().hex}.part"
        try:
            data_hash, name_hash, size = self._write_tmp(received, offset, meta_bytes, tmp,
                                                         transfer_syntax_uid)
            self.check_free_space()
            directory = self.instance_dir(sop_instance_uid)
            if not directory.is_dir():
                directory.mkdir(exist_ok=True)
                fsync_dir(self.root)
            final = directory / f"{sop_instance_uid}.{name_hash[:16]}.dcm"
            self._publish(tmp, final)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise OutOfResourcesError("spool volume is full") from exc
            raise
        finally:
            tmp.unlink(missing_ok=True)
        return StoredInstance(
            sop_class_uid=sop_class_uid, sop_instance_uid=sop_instance_uid,
            study_instance_uid=header.study_instance_uid,
            series_instance_uid=header.series_instance_uid, modality=header.modality,
            number_of_frames=header.number_of_frames, transfer_syntax_uid=transfer_syntax_uid,
            path=final, sha256=data_hash, size=size, calling_ae=calling_ae,
            peer_host=peer_host, received_at=datetime.now(UTC),
        )

    @staticmethod
    def _write_tmp(received: Path, offset: int, meta_bytes: bytes, tmp: Path,
                   transfer_syntax_uid: str) -> tuple[str, str, int]:
        """Write meta + data set to ``tmp``, fsync; return (data sha256, name digest, size)."""
        data_hash = hashlib.sha256()
        name_hash = hashlib.sha256(transfer_syntax_uid.encode("ascii") + b"\x00")
        size = 0
        with received.open("rb") as src, tmp.open("xb") as dst:
            src.seek(offset)
            dst.write(meta_bytes)
            while chunk := src.read(_CHUNK):
                data_hash.update(chunk)
                name_hash.update(chunk)
                dst.write(chunk)
                size += len(chunk)
            fsync_file(dst)
        return data_hash.hexdigest(), name_hash.hexdigest(), size

    @staticmethod
    def _publish(tmp: Path, final: Path) -> None:
        """Make ``tmp`` visible as ``final`` without ever replacing an existing file."""
        try:
            os.link(tmp, final)
        except FileExistsError:
            LOGGER.info("identical instance already stored: %s", final.name)
            return
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EXDEV):
                raise
            # Filesystems without hard links: rename is atomic; the name embeds the content
            # digest, so a concurrent identical writer can only produce equal data bytes.
            if final.exists():
                return
            os.replace(tmp, final)
        fsync_dir(final.parent)
