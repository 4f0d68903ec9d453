"""srservice: automatic IVUS calcium scoring for PACS.

The analysis (:mod:`srservice.analysis`) and scoring (:mod:`srservice.scoring`) are pure
functions over numpy arrays; everything else is a thin layer that moves DICOM objects in
and out of them.
"""

__version__ = "0.3.0"

#: Algorithm name and version written into every report and used to derive output UIDs.
ALGORITHM_NAME = "srservice IVUS calcium"
ALGORITHM_VERSION = __version__
