"""One validated settings object, built once at start-up from ``SRSERVICE_*`` variables.

Nothing in the project reads the environment at import time: :func:`load_settings` is called
by the CLI (and by tests) and the resulting :class:`Settings` is passed down explicitly.
Command-line flags override the environment by passing keyword arguments.

Every setting is documented here; ``srservice --help`` and ``docs/configuration.md`` list them.
"""

from __future__ import annotations

import logging
import os
import re
import warnings
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from srservice.errors import ConfigError

#: Destination name of the local outbox: where reports go when no PACS is configured.
OUTBOX = "outbox"

_AE_RE = re.compile(r"^[\x20-\x5b\x5d-\x7e]{1,16}$")  # PS3.5 Table 6.2-1: AE, no backslash


def _check_ae(value: str, what: str) -> str:
    value = value.strip()
    if not value or not _AE_RE.match(value):
        raise ValueError(f"{what} {value!r} is not a DICOM AE title (1-16 printable characters)")
    return value


class Destination(BaseModel):
    """A DICOM destination (PACS) the reports are C-STOREd to.

    Written ``AE@host:port`` in settings; append ``+tls`` for DICOM TLS (PS3.15 Annex B.1).
    """

    ae_title: str
    host: str
    port: int = Field(ge=1, le=65535)
    tls: bool = False

    @classmethod
    def parse(cls, text: str) -> Destination:
        """Parse ``AE@host:port[+tls]``."""
        m = re.fullmatch(r"\s*([^@]+)@([^:@\s]+|\[[0-9a-fA-F:]+\]):(\d+)(\+tls)?\s*", text)
        if not m:
            raise ValueError(f"destination {text!r} is not of the form AE@host:port[+tls]")
        ae = _check_ae(m.group(1), "destination AE title")
        return cls(ae_title=ae, host=m.group(2).strip("[]"), port=int(m.group(3)),
                   tls=bool(m.group(4)))

    def __str__(self) -> str:
        return f"{self.ae_title}@{self.host}:{self.port}{'+tls' if self.tls else ''}"


class Source(Destination):
    """A PACS the backfill queries and retrieves from (``srservice backfill --source AE``).

    Written like a destination, ``AE@host:port[+tls]``, with optional flags appended:

    ``+series``
        The PACS does not match on Modalities In Study (0008,0061) at STUDY level: find IVUS
        studies by a SERIES-level query on Modality (PS3.4 C.6.2.1) instead.
    ``+get``
        Retrieve by C-GET on the backfill's own association (PS3.4 C.4.3) instead of C-MOVE to
        our AE title (PS3.4 C.4.2), for a PACS that cannot open associations to us.
    """

    series_level: bool = False
    use_get: bool = False

    @classmethod
    def parse(cls, text: str) -> Source:
        """Parse ``AE@host:port[+tls][+series][+get]``."""
        base, *flags = text.strip().split("+")
        unknown = [f for f in flags if f not in {"tls", "series", "get"}]
        if unknown or len(set(flags)) != len(flags):
            raise ValueError(f"source {text!r}: flags after the port are +tls, +series, +get")
        dest = Destination.parse(base + ("+tls" if "tls" in flags else ""))
        return cls(**dest.model_dump(), series_level="series" in flags, use_get="get" in flags)

    def __str__(self) -> str:
        flags = "".join(f"+{f}" for f, on in (("tls", self.tls), ("series", self.series_level),
                                               ("get", self.use_get)) if on)
        return f"{self.ae_title}@{self.host}:{self.port}{flags}"


_WINDOW_RE = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]):([0-5]\d)$")


class CallingPeer(BaseModel):
    """An allowed calling AE title, optionally bound to a host address (``AE`` or ``AE@host``)."""

    ae_title: str
    host: str | None = None

    @classmethod
    def parse(cls, text: str) -> CallingPeer:
        """Parse ``AE`` or ``AE@host``."""
        ae, _, host = text.strip().partition("@")
        return cls(ae_title=_check_ae(ae, "calling AE title"), host=host or None)

    def allows(self, ae_title: str, host: str) -> bool:
        """Return True when an association from ``ae_title`` at ``host`` matches this entry."""
        return ae_title.strip() == self.ae_title and (self.host is None or self.host == host)


class TlsBinding(BaseModel):
    """A calling AE title bound to a client certificate identity (``AE=name``).

    ``name`` is compared with the certificate's subject Common Name and its subjectAltName
    DNS names and e-mail addresses (exact, case-insensitive).
    """

    ae_title: str
    name: str

    @classmethod
    def parse(cls, text: str) -> TlsBinding:
        """Parse ``AE=name``."""
        ae, sep, name = text.strip().partition("=")
        if not sep or not name.strip():
            raise ValueError(f"TLS binding {text!r} is not of the form AE=certificate-name")
        return cls(ae_title=_check_ae(ae, "calling AE title"), name=name.strip())

    def allows(self, ae_title: str, names: list[str]) -> bool:
        """Return True when ``ae_title`` is this entry's and ``names`` holds the bound name."""
        wanted = self.name.casefold()
        return (ae_title.strip() == self.ae_title
                and any(n.strip().casefold() == wanted for n in names))


def _split_list(value: Any) -> Any:
    if isinstance(value, str):
        value = value.strip()
        if value.startswith("["):
            import json

            return json.loads(value)
        return [part for part in re.split(r"[,\s]+", value) if part]
    return value


class Settings(BaseSettings):
    """All settings of the service. Environment variable = ``SRSERVICE_`` + upper-case name."""

    model_config = SettingsConfigDict(env_prefix="SRSERVICE_", extra="forbid",
                                      validate_default=True)

    # --- where things live -------------------------------------------------------------
    data_dir: Path = Field(Path("srservice-data"),
                           description="Root for spool, outbox, SQLite job store and broker files.")
    database_url: str | None = Field(None, description="SQLAlchemy URL of the job store; "
                                     "default: SQLite file in data_dir.")
    broker_url: str | None = Field(None, description="Celery broker URL (redis://...); default: "
                                   "Celery's filesystem transport in data_dir.")

    # --- DICOM listener ---------------------------------------------------------------
    ae_title: str = Field("SRSERVICE", description="Our AE title (checked as called AE).")
    host: str = Field("0.0.0.0", description="Address the listener binds to.")
    port: int = Field(11112, ge=0, le=65535, description="DICOM port (0: any free port).")
    require_called_ae: bool = Field(True, description="Reject associations whose called AE "
                                    "title is not ae_title.")
    allowed_calling_aes: Annotated[list[CallingPeer], NoDecode] = Field(
        default_factory=list, description="Allowed calling AEs, 'AE' or 'AE@host', comma "
        "separated; empty allows any.")
    non_ivus_policy: Literal["discard", "reject", "store"] = Field(
        "discard", description="Other storage SOP classes: accept and discard, reject, or store.")
    max_associations: int = Field(10, ge=1, le=1000, description="Concurrent associations "
                                  "(connections that sent an A-ASSOCIATE-RQ).")
    max_unassociated_connections: int = Field(32, ge=1, le=10000, description="Connections "
                                              "that have not sent an A-ASSOCIATE-RQ yet, in "
                                              "total; more are closed at once.")
    max_unassociated_per_host: int = Field(8, ge=1, le=10000, description="The same, per "
                                           "source address.")
    unassociated_timeout: float = Field(5.0, gt=0, description="Seconds for the TLS handshake "
                                        "and for the A-ASSOCIATE-RQ to arrive.")
    association_time_limit: float = Field(3600.0, gt=0, description="Seconds an association "
                                          "may last; then it is aborted at its next PDU.")
    max_header_bytes: int = Field(8 * 1024 * 1024, ge=4096, description="Largest data set "
                                  "header (everything before Pixel Data) accepted, bytes; "
                                  "larger: C-STORE 0xC210.")
    max_header_elements: int = Field(100_000, ge=100, description="Most data elements "
                                     "(sequence items' included) before Pixel Data; more: "
                                     "C-STORE 0xC210.")
    acse_timeout: float = Field(30.0, gt=0)
    dimse_timeout: float = Field(60.0, gt=0)
    network_timeout: float = Field(60.0, gt=0)
    max_pdu: int = Field(262144, ge=0, le=0xFFFFFFFF, description="Maximum PDU length we "
                         "receive (bytes, PS3.8 D.1); 0 = unlimited (risky: one PDU is held "
                         "in memory whole).")
    min_free_disk_mb: int = Field(500, ge=0, description="Below this free space on the spool "
                                  "volume C-STORE answers 0xA700.")
    tls_certificate: Path | None = Field(None, description="PEM server certificate: enables TLS.")
    tls_private_key: Path | None = None
    tls_ca_certificates: Path | None = Field(None, description="PEM CA bundle: when set, client "
                                             "certificates are required and verified.")
    tls_crl: Path | None = Field(None, description="PEM certificate revocation list(s) of the "
                                 "client CAs: revoked client certificates are refused.")
    tls_ae_bindings: Annotated[list[TlsBinding], NoDecode] = Field(
        default_factory=list, description="'AE=certificate-name' pairs, comma separated: a "
        "TLS association's calling AE title must be bound to its client certificate.")

    # --- analysis ---------------------------------------------------------------------
    default_pixel_spacing_mm: float | None = Field(None, gt=0, description="Site default when "
                                                   "the file carries no pixel spacing.")
    default_frame_spacing_mm: float | None = Field(None, gt=0, description="Site default when "
                                                   "the file carries no pullback rate.")
    single_frame_quiet_seconds: float = Field(30.0, ge=0, description="Quiet period before a "
                                              "single-frame IVUS series is analysed.")

    # --- workers and delivery ---------------------------------------------------------
    worker_concurrency: int = Field(2, ge=1, le=64)
    decode_memory_budget_mb: int = Field(4096, ge=64, description="Memory one job may use "
                                         "for decoded pixels (MiB); a larger pullback fails "
                                         "with the reason.")
    embedded_worker: bool = Field(True, description="serve also starts worker processes.")
    task_time_limit: float = Field(900.0, gt=0, description="Hard time limit of one task (s).")
    job_stuck_seconds: float = Field(1800.0, gt=0, description="Sweeper re-enqueues jobs not "
                                     "progressing for this long.")
    destinations: Annotated[list[Destination], NoDecode] = Field(
        default_factory=list, description="PACS destinations AE@host:port[+tls], comma "
        "separated; empty: write outputs to the outbox folder.")
    delivery_backoff_seconds: float = Field(10.0, gt=0, description="First retry delay; doubles.")
    delivery_backoff_max_seconds: float = Field(600.0, gt=0)
    delivery_deadline_seconds: float = Field(86400.0, gt=0, description="After this the delivery "
                                             "is dead and visible in 'srservice jobs'.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    # --- backfill (srservice backfill) ------------------------------------------------
    backfill_sources: Annotated[list[Source], NoDecode] = Field(
        default_factory=list, description="PACS to backfill from, AE@host:port[+tls][+series]"
        "[+get], comma separated; 'srservice backfill --source AE' picks one by AE title.")
    backfill_max_in_flight: int = Field(2, ge=1, le=100, description="Studies retrieved and "
                                        "not yet scored at any time.")
    backfill_max_studies_per_minute: float = Field(6.0, gt=0, description="Retrieves started "
                                                   "per minute, at most.")
    backfill_window: str | None = Field(None, description="Local time window for starting "
                                        "retrieves, HH:MM-HH:MM (may wrap midnight); empty: "
                                        "any time.")
    backfill_study_timeout_seconds: float = Field(3600.0, gt=0, description="A retrieved study "
                                                  "not scored within this time fails.")
    backfill_follow_interval_seconds: float = Field(300.0, gt=0, description="With --follow: "
                                                    "seconds between two queries of the PACS.")

    # --- built-in web viewer (srservice serve; docs/viewing.md) -------------------------
    viewer_port: int | None = Field(None, ge=0, le=65535, description="Port of the built-in "
                                    "OHIF viewer; empty: no viewer.")
    viewer_host: str = Field("127.0.0.1", description="Address the built-in viewer binds to.")
    viewer_dicomweb_url: str | None = Field(None, description="DICOMweb base URL of the PACS "
                                            "the viewer shows (QIDO-RS/WADO-RS).")
    viewer_dist: Path = Field(Path("vendor/ohif/3.13.2/dist"), description="The built OHIF "
                              "viewer (scripts/install-viewer.sh).")

    @field_validator("viewer_dicomweb_url")
    @classmethod
    def _dicomweb(cls, v: str | None) -> str | None:
        if v is None or not v.strip():
            return None
        v = v.strip().rstrip("/")
        if not re.match(r"^https?://[^/\s]+(/\S*)?$", v):
            raise ValueError(f"viewer_dicomweb_url {v!r} is not an http(s) URL")
        return v

    @model_validator(mode="after")
    def _viewer(self) -> Settings:
        if self.viewer_port is not None and self.viewer_dicomweb_url is None:
            raise ValueError("viewer_port needs viewer_dicomweb_url (the PACS's DICOMweb URL)")
        return self

    @field_validator("ae_title")
    @classmethod
    def _ae(cls, v: str) -> str:
        return _check_ae(v, "ae_title")

    @field_validator("allowed_calling_aes", mode="before")
    @classmethod
    def _peers(cls, v: Any) -> Any:
        v = _split_list(v)
        return [CallingPeer.parse(x) if isinstance(x, str) else x for x in v]

    @field_validator("tls_ae_bindings", mode="before")
    @classmethod
    def _bindings(cls, v: Any) -> Any:
        v = _split_list(v)
        return [TlsBinding.parse(x) if isinstance(x, str) else x for x in v]

    @field_validator("destinations", mode="before")
    @classmethod
    def _dests(cls, v: Any) -> Any:
        v = _split_list(v)
        return [Destination.parse(x) if isinstance(x, str) else x for x in v]

    @field_validator("backfill_sources", mode="before")
    @classmethod
    def _sources(cls, v: Any) -> Any:
        v = _split_list(v)
        return [Source.parse(x) if isinstance(x, str) else x for x in v]

    @field_validator("backfill_window")
    @classmethod
    def _window(cls, v: str | None) -> str | None:
        if v is None or not v.strip():
            return None
        v = v.strip()
        if not _WINDOW_RE.match(v):
            raise ValueError(f"{v!r} is not a time window HH:MM-HH:MM")
        return v

    @model_validator(mode="after")
    def _tls_pair(self) -> Settings:
        if (self.tls_certificate is None) != (self.tls_private_key is None):
            raise ValueError("tls_certificate and tls_private_key must be set together")
        if (self.tls_crl is not None or self.tls_ae_bindings) and self.tls_ca_certificates is None:
            raise ValueError("tls_crl and tls_ae_bindings need tls_ca_certificates (client "
                             "certificates)")
        return self

    # --- derived paths ----------------------------------------------------------------
    @property
    def spool_dir(self) -> Path:
        """Received instances, one file per SOP Instance UID."""
        return self.data_dir / "spool"

    @property
    def outbox_dir(self) -> Path:
        """Reports when no destination is configured."""
        return self.data_dir / "outbox"

    @property
    def outputs_dir(self) -> Path:
        """A job's reports, one directory per job id (written before delivery)."""
        return self.data_dir / "outputs"

    @property
    def delivery_destinations(self) -> list[str]:
        """Where each report is delivered: every configured PACS, or :data:`OUTBOX`."""
        return [str(d) for d in self.destinations] or [OUTBOX]

    @property
    def effective_database_url(self) -> str:
        """The job store URL (SQLite in data_dir by default)."""
        return self.database_url or f"sqlite:///{(self.data_dir / 'jobs.sqlite3').resolve()}"


def load_settings(**overrides: Any) -> Settings:
    """Build the settings from ``SRSERVICE_*`` variables and keyword overrides.

    Raises
    ------
    ConfigError
        One line naming the offending variable (also for an unknown ``SRSERVICE_*`` variable,
        which is almost always a typo), e.g.
        ``SRSERVICE_PORT: Input should be less than or equal to 65535``.
    """
    known = {f"SRSERVICE_{name.upper()}" for name in Settings.model_fields}
    unknown = sorted(k for k in os.environ if k.startswith("SRSERVICE_") and k not in known)
    if unknown:
        raise ConfigError(f"{unknown[0]}: unknown setting (see docs/configuration.md)")
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = "_".join(str(p) for p in err["loc"] if not isinstance(p, int)) or "settings"
        msg = err["msg"].removeprefix("Value error, ")
        raise ConfigError(f"SRSERVICE_{loc.upper()}: {msg}") from None


#: Format of every log line of the service processes.
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


def configure_logging(level: str) -> None:
    """Set up logging for a service process (``srservice``, the Celery workers).

    pydicom and highdicom quote the offending value when they warn about one (an invalid
    date, a person name without ``^``); such a value can be a patient's name, ID or birth
    date, which no log line may hold. Their loggers are therefore raised to ERROR and their
    ``UserWarning``s ignored; the values themselves are cleaned where they enter the reports
    (:func:`srservice.reporting.text.sanitised_header`).
    """
    logging.basicConfig(level=level, format=LOG_FORMAT)
    for name in ("pydicom", "highdicom"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=UserWarning, module=r"(pydicom|highdicom)(\.|$)")
    warnings.filterwarnings("ignore", message=r"The string .* is unlikely to represent")
    warnings.filterwarnings("ignore", message=r"Invalid value for VR")
