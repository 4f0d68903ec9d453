r"""Text copied from a received header into the reports: decoded, cleaned, capped, in UTF-8.

:func:`sanitised_header` is the one way received text enters the reports
(:func:`srservice.reporting.outputs.produce_outputs` calls it on every header before the SR, the
PDF or the summary is built). It returns a copy of the header in which

- every text value is decoded with the source's Specific Character Set (any of PS3.3
  C.12.1.1.2 that pydicom decodes, including ISO 2022 code extensions whose first value is
  empty, e.g. ``\ISO 2022 IR 87``) and the copy says ``ISO_IR 192`` (UTF-8), so the outputs
  carry every script in one character set that highdicom, DCMTK and viewers accept;
- control characters are removed (C0, DEL and C1; ESC with the rest of its ISO 2022 escape
  sequence, PS3.5 6.1.2.5: UTF-8 has no code extensions). In LT, ST and UT, which may hold
  several lines (PS3.5 6.2), TAB, LF, FF and CR are kept; elsewhere they become a space;
- every value is capped to the maximum length of its VR (PS3.5 Table 6.2-1; for PN 64
  characters per component group, at most 3 groups of 5 components, PS3.5 6.2.1.1).

Values that do not fit their VR's character repertoire otherwise (e.g. lower case in a CS) are
left alone: they are copied, not interpreted.
"""

from __future__ import annotations

import copy
import re

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.valuerep import PersonName

#: Character set of every report (PS3.3 C.12.1.1.2, Defined Term ISO_IR 192: UTF-8).
UTF8 = "ISO_IR 192"

#: Maximum characters per value (PS3.5 Table 6.2-1) of the text VRs that are cleaned.
MAX_CHARS = {"AE": 16, "AS": 4, "CS": 16, "DA": 8, "DT": 26, "LO": 64, "LT": 10240,
             "SH": 16, "ST": 1024, "TM": 14, "UC": 2**32 - 2, "UT": 2**32 - 2}
#: Maximum characters per PN component group, groups per value, components per group
#: (PS3.5 6.2.1.1, 6.2.1.2).
PN_GROUP_CHARS, PN_GROUPS, PN_COMPONENTS = 64, 3, 5
#: VRs whose values may hold several lines (PS3.5 6.2: LT, ST, UT allow TAB, LF, FF, CR).
MULTI_LINE = frozenset({"LT", "ST", "UT"})

#: An ISO/IEC 2022 escape sequence (ESC, one or more intermediate bytes 0x20-0x2F, a final byte
#: 0x30-0x7E; PS3.5 6.1.2.5) that a decoder left in the text (pydicom 3.0 does so for
#: ISO 2022 IR 58): removed whole, not only its ESC.
_ESCAPE_SEQUENCE = re.compile("\x1b[\x20-\x2f]+[\x30-\x7e]")
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
_LINE_CONTROL = re.compile("[\x00-\x08\x0b\x0e-\x1f\x7f-\x9f]")
_WHITESPACE_CONTROL = re.compile("[\t\n\x0b\x0c\r]")


def clean_text(value: str, vr: str) -> str:
    """Remove control characters from ``value`` and cap it to the maximum length of ``vr``.

    Parameters
    ----------
    value : str
        One decoded value (for PN, the whole value with its ``=`` and ``^`` delimiters).
    vr : str
        Its Value Representation (PS3.5 6.2).

    Returns
    -------
    str
        The cleaned value; unchanged when it was already clean and short enough.
    """
    value = _ESCAPE_SEQUENCE.sub("", value)
    if vr in MULTI_LINE:
        value = _LINE_CONTROL.sub("", value)
    else:
        value = _CONTROL.sub("", _WHITESPACE_CONTROL.sub(" ", value))
    if vr == "PN":
        groups = value.split("=")[:PN_GROUPS]
        return "=".join("^".join(g.split("^")[:PN_COMPONENTS])[:PN_GROUP_CHARS].rstrip()
                        for g in groups)
    limit = MAX_CHARS.get(vr)
    return value[:limit] if limit is not None else value


def _clean_element(elem: DataElement) -> None:
    if elem.VR != "PN" and elem.VR not in MAX_CHARS:
        return
    value = elem.value
    if value is None or isinstance(value, bytes):
        return

    def one(v: object) -> str:
        return clean_text(str(v), elem.VR)

    if isinstance(value, MultiValue | list | tuple):
        elem.value = [one(v) for v in value]
    elif isinstance(value, str | PersonName):
        elem.value = one(value)


def _clean_dataset(ds: Dataset) -> None:
    for elem in ds:  # iterating converts raw elements, decoding text with the character set
        if elem.VR == "SQ":
            for item in elem.value:
                _clean_dataset(item)
        else:
            _clean_element(elem)
    if "SpecificCharacterSet" in ds:
        ds.SpecificCharacterSet = UTF8


def sanitised_header(header: Dataset) -> Dataset:
    """Return a copy of ``header`` with every text value decoded, cleaned, capped, in UTF-8.

    Parameters
    ----------
    header : pydicom.dataset.Dataset
        A received header (without Pixel Data), in whatever Specific Character Set it says.

    Returns
    -------
    pydicom.dataset.Dataset
        A new dataset (file meta kept) whose Specific Character Set is ``ISO_IR 192`` and
        whose text values are clean (:func:`clean_text`). The input is not changed.
    """
    out = copy.deepcopy(header)
    _clean_dataset(out)
    out.SpecificCharacterSet = UTF8
    return out
