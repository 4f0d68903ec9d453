"""The pynetdicom internals the listener relies on still have the shape it expects.

``srservice.listener.receive`` replaces ``NamedTemporaryFile`` in
:mod:`pynetdicom.dimse_messages` and reads the data set file of a request or a message;
``srservice.listener.pduguard`` replaces ``DULServiceProvider._read_pdu_data`` and calls the
DUL's ``_decode_pdu``, ``_recv_pdu`` and ``event_queue``; ``srservice.listener.scp`` subclasses
``ThreadedAssociationServer`` and registers its server in ``AE._servers``. None of these is
public API, so ``pyproject.toml`` pins pynetdicom to the tested minor version and this test
fails, naming the internal, when an upgrade changes one of them. The listener tests then
show whether the behaviour still holds.
"""

from __future__ import annotations

import inspect
import re
import tempfile
import tomllib
from pathlib import Path

import pynetdicom
from pynetdicom import AE, _config, dimse_messages
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.dul import DULServiceProvider
from pynetdicom.fsm import StateMachine
from pynetdicom.pdu import A_ABORT_RQ
from pynetdicom.transport import (
    AssociationServer,
    AssociationSocket,
    ThreadedAssociationServer,
)

from srservice.listener import pduguard, receive

ROOT = Path(__file__).resolve().parents[2]


def _pin(package: str) -> tuple[str, str]:
    """(lower bound, upper bound) of ``package`` in pyproject.toml's dependencies."""
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    spec = next(d for d in deps if re.match(rf"{package}\b", d))
    lower = re.search(r">=\s*([\d.]+)", spec)
    upper = re.search(r"<\s*([\d.]+)", spec)
    assert lower and upper, f"{package} must be pinned to a minor version range: {spec!r}"
    return lower.group(1), upper.group(1)


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", text)[:3])


def test_pynetdicom_is_pinned_to_the_tested_minor_version() -> None:
    lower, upper = _pin("pynetdicom")
    installed = _version(pynetdicom.__version__)
    assert _version(lower) <= installed < _version(upper), (pynetdicom.__version__, lower, upper)
    assert _version(upper)[:2] == (_version(lower)[0], _version(lower)[1] + 1), \
        f"the pin must allow one minor version only: >={lower},<{upper}"


def test_chunked_receive_internals() -> None:
    """receive.py: the NamedTemporaryFile name, the config switches, the file attributes."""
    assert hasattr(_config, "STORE_RECV_CHUNKED_DATASET")
    assert hasattr(_config, "UNRESTRICTED_STORAGE_SERVICE")
    # The name replaced, and what it stood for before any listener installed the stand-in.
    assert receive._ORIGINAL_TEMPFILE is tempfile.NamedTemporaryFile
    assert dimse_messages.NamedTemporaryFile in (receive._ORIGINAL_TEMPFILE,
                                                 receive._receive_file_factory)
    source = inspect.getsource(dimse_messages)
    # pynetdicom opens the file with NamedTemporaryFile(...), writes through .write() and
    # flushes through .file.flush() (ReceiveFile.file is itself), keeps it as the message's
    # _data_set_file and hands it to the request primitive as _dataset_file.
    assert re.search(r"NamedTemporaryFile\(\s*delete=False", source)
    assert "self._data_set_file.write(" in source
    assert "self._data_set_file.file.flush()" in source
    assert "primitive._dataset_file = self._data_set_file" in source
    assert "_dataset_file" in C_STORE.__annotations__ or hasattr(C_STORE, "_dataset_file")


def test_pdu_reader_internals() -> None:
    """pduguard.py: the method replaced and the DUL members the stand-in uses."""
    # pynetdicom's method as it was before any listener installed the stand-in.
    original = pduguard._ORIGINAL_READ
    assert original.__qualname__ == "DULServiceProvider._read_pdu_data"
    assert DULServiceProvider.__dict__["_read_pdu_data"] in (original, pduguard._read_pdu_data)
    assert list(inspect.signature(original).parameters) == ["self"]
    body = inspect.getsource(original)
    for event in ("Evt17", "Evt19"):
        assert f'"{event}"' in body, event
    assert "self._decode_pdu(" in body
    assert "self._recv_pdu.put(" in body
    assert list(inspect.signature(DULServiceProvider._decode_pdu).parameters) == [
        "self", "bytestream"]
    init = inspect.getsource(DULServiceProvider.__init__)
    for member in ("self.socket", "self.event_queue", "self._recv_pdu", "self.state_machine"):
        assert member in init, member
    assert "self.current_state" in inspect.getsource(StateMachine.__init__)
    assert "Sta2" in inspect.getsource(pynetdicom.fsm)
    assert "self.socket" in inspect.getsource(AssociationSocket.__init__)
    abort = A_ABORT_RQ()
    abort.source, abort.reason_diagnostic = 0x02, 0x06
    assert abort.encode()[:1] == b"\x07"


def test_server_internals() -> None:
    """scp.py: the server methods overridden and the AE's list of servers."""
    # SrServer.get_request replaces AssociationServer's (accept, then wrap for TLS).
    assert list(inspect.signature(ThreadedAssociationServer.get_request).parameters) == [
        "self"]
    assert "self.ssl_context.wrap_socket(" in inspect.getsource(AssociationServer.get_request)
    assert list(inspect.signature(
        ThreadedAssociationServer.process_request_thread).parameters) == [
        "self", "request", "client_address"]
    assert "self.ssl_context" in inspect.getsource(AssociationServer.__init__)
    assert "self.ae" in inspect.getsource(AssociationServer.__init__)
    ae = AE()
    assert isinstance(ae._servers, list)
    assert "self._servers" in inspect.getsource(AE.shutdown)
