"""Coded concepts used in the SR: standard codes from pydicom's dictionaries, private ones here.

Standard codes come from :data:`pydicom.sr.codedict.codes` (PS3.16), e.g. DCM 122355 "Arc of
Calcium", DCM 122341 "Calcium Length", DCM 122330 "EEM Diameter", DCM 122333 "EEM
Cross-Sectional Area" (CID 3481-3483, IVUS measurements) and SCT 397415007 "Vessel lumen
cross-sectional area". Concepts PS3.16 has no code for (the composite score, its components,
the derivation-population flag) use the private coding scheme :data:`SCHEME` ("99" prefix,
PS3.16 Section 8.2), declared in the SR's Coding Scheme Identification Sequence
(PS3.3 C.12.1.1.3) and documented in ``docs/scoring.md``.
"""

from __future__ import annotations

from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code

from srservice import scoring

#: Private coding scheme designator (PS3.16 Section 8.2: local schemes start with "99").
SCHEME = "99SRSVC"
SCHEME_NAME = "srservice IVUS calcium scoring concepts"
SCHEME_VERSION = "1"
SCHEME_ORGANIZATION = "srservice project"


def _private(value: str, meaning: str) -> Code:
    return Code(value, SCHEME, meaning, SCHEME_VERSION)


# --- private concepts (documented in docs/scoring.md) ------------------------------------
IVUS_CALCIUM_SCORE = _private("SRSVC001", "IVUS calcium score")
COMPONENT_CODES: dict[str, Code] = {
    scoring.LONG_CALCIUM: _private("SRSVC002", "Long superficial calcium score component"),
    scoring.CIRCUMFERENTIAL: _private("SRSVC003", "Circumferential calcium score component"),
    scoring.NODULE: _private("SRSVC004", "Calcified nodule score component"),
    scoring.SMALL_VESSEL: _private("SRSVC005", "Small vessel score component"),
}
IVUS_CALCIUM_SCORE_MINIMUM = _private("SRSVC006", "IVUS calcium score lower bound")
IVUS_CALCIUM_SCORE_MAXIMUM = _private("SRSVC007", "IVUS calcium score upper bound")
METHOD_SUPERFICIAL_ARC = _private(
    "SRSVC010", "Superficial calcium arc (leading edge in inner half of plaque)")
#: Its own concept (not DCM 122341 with a method): a TID 1501 group then never repeats a
#: concept name, which viewers such as OHIF cannot tell apart (they show no modifiers).
LENGTH_OVER_270 = _private(
    "SRSVC015", "Length of superficial calcium arc > 270 degrees")
METHOD_SEGMENT_EXTENT = _private("SRSVC012", "Calcified segment extent along the pullback")
METHOD_ANY_DEPTH_ARC = _private("SRSVC013", "Calcium arc of any depth")
EEM_INTERPOLATED_FRACTION = _private(
    "SRSVC014", "EEM contour interpolated behind acoustic shadow")
CIRCUMFERENTIAL_CALCIUM = _private("SRSVC020", "Circumferential superficial calcium")
CALCIFIED_NODULE = _private("SRSVC021", "Calcified nodule")
CALCIUM_MODIFICATION_RECOMMENDED = _private(
    "SRSVC022", "Calcium modification before stenting recommended")
OUTSIDE_DERIVATION_POPULATION = _private(
    "SRSVC023", "Outside calcium score derivation population")
SCORE_COMPLETE = _private("SRSVC024", "Calcium score complete")
# SRSVC030 "Not assessable" is retired (replaced by SCT 373068000 "Undetermined", CID 230).
MAXIMUM_CALCIUM_SITE = _private("SRSVC031", "Maximum calcium site")
CALCIUM_ARC_CURVE = _private("SRSVC032", "Calcium arc curve")
ASSESSABLE_FRAMES = _private("SRSVC033", "Number of assessable frames")

#: Every private code, for the documentation test.
PRIVATE_CODES: tuple[Code, ...] = (
    IVUS_CALCIUM_SCORE, *COMPONENT_CODES.values(), IVUS_CALCIUM_SCORE_MINIMUM,
    IVUS_CALCIUM_SCORE_MAXIMUM, METHOD_SUPERFICIAL_ARC, LENGTH_OVER_270,
    METHOD_SEGMENT_EXTENT, METHOD_ANY_DEPTH_ARC, EEM_INTERPOLATED_FRACTION,
    CIRCUMFERENTIAL_CALCIUM, CALCIFIED_NODULE, CALCIUM_MODIFICATION_RECOMMENDED,
    OUTSIDE_DERIVATION_POPULATION, SCORE_COMPLETE, MAXIMUM_CALCIUM_SITE,
    CALCIUM_ARC_CURVE, ASSESSABLE_FRAMES,
)

# --- standard concepts (PS3.16) -----------------------------------------------------------
ARC_OF_CALCIUM: Code = codes.DCM.ArcOfCalcium                  # DCM 122355
CALCIUM_LENGTH: Code = codes.DCM.CalciumLength                 # DCM 122341, CID 3483
EEM_DIAMETER: Code = codes.DCM.EEMDiameter                     # DCM 122330, CID 3481
EEM_AREA: Code = codes.DCM.EEMCrossSectionalArea               # DCM 122333, CID 3482
LUMEN_AREA: Code = codes.SCT.VesselLumenCrossSectionalArea     # SCT 397415007, CID 3482
VASCULAR_CALCIFICATION: Code = codes.SCT.VascularCalcification  # SCT 237897009, CID 3491
LUMEN_OF_ARTERY: Code = codes.SCT.LumenOfArtery                # SCT 67170007, CID 3497
EEM: Code = codes.SCT.ExternalElasticMembrane                  # SCT 414165007, CID 3497
CORONARY_ARTERY: Code = codes.SCT.CoronaryArtery               # SCT 41801008
IVUS_PROCEDURE: Code = codes.SCT.IntravascularUltrasound       # SCT 241466007, CID 3428
MAXIMUM: Code = codes.SCT.Maximum                              # SCT 56851009, CID 3488
MEAN: Code = codes.SCT.Mean                                    # SCT 373098007, CID 3488
YES: Code = codes.SCT.Yes                                      # SCT 373066001, CID 230
NO: Code = codes.SCT.No                                        # SCT 373067005, CID 230
#: The value of a score, component or recommendation that cannot be determined.
UNDETERMINED: Code = codes.SCT.Undetermined                    # SCT 373068000, CID 230
RECOMMENDATION: Code = codes.DCM.Recommendation                # DCM 121075
FINDING: Code = codes.DCM.Finding                              # DCM 121071

# --- units (UCUM, PS3.16 CID 82) ------------------------------------------------------------
MM = Code("mm", "UCUM", "millimeter")
MM2 = Code("mm2", "UCUM", "square millimeter")
DEG = Code("deg", "UCUM", "degree")
PERCENT = Code("%", "UCUM", "percent")
POINTS = Code("{points}", "UCUM", "points")
FRAMES = Code("{frames}", "UCUM", "frames")


def yes_no(flag: bool) -> Code:
    """Return SCT Yes / No for a boolean finding (CID 230)."""
    return YES if flag else NO


def coding_scheme_identification() -> Dataset:
    """Return the Coding Scheme Identification Sequence item for :data:`SCHEME`.

    PS3.3 C.12.1.1.3.1: private schemes must be identified in the SOP Common Module.
    """
    item = Dataset()
    item.CodingSchemeDesignator = SCHEME
    item.CodingSchemeName = SCHEME_NAME
    item.CodingSchemeVersion = SCHEME_VERSION
    item.CodingSchemeResponsibleOrganization = SCHEME_ORGANIZATION
    return item
