#!/usr/bin/env bash
# Installs the Debian packages the tests and tools need: DCMTK (storescu, dsrdump, dsr2html),
# dicom3tools (dciodvfy), Orthanc (the test PACS), poppler-utils (pdftoppm), redis-server
# (each test that needs a broker starts its own on a free port) and fonts-noto-cjk (the PDF
# report draws Japanese, Korean and Chinese patient names with Noto Sans CJK), and for the
# viewer tests: orthanc-dicomweb (DICOMweb for the test PACS), chromium (the browser Playwright
# drives) and npm (scripts/install-viewer.sh installs the OHIF viewer with it).
# Idempotent: does nothing when everything is already there.
set -euo pipefail
need=()
command -v storescu >/dev/null 2>&1 || need+=(dcmtk)
command -v dciodvfy >/dev/null 2>&1 || need+=(dicom3tools)
command -v Orthanc >/dev/null 2>&1 || [ -x /usr/sbin/Orthanc ] || need+=(orthanc)
command -v pdftoppm >/dev/null 2>&1 || need+=(poppler-utils)
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
[ -f /usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc ] || need+=(fonts-noto-cjk)
[ -f /usr/share/orthanc/plugins/libOrthancDicomWeb.so ] || need+=(orthanc-dicomweb)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v npm >/dev/null 2>&1 || need+=(npm)
if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
echo "installing Debian packages: ${need[*]}"
$SUDO apt-get -o DPkg::Lock::Timeout=600 update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# Debian's orthanc package starts a system service on 4242/8042; the tests start their own.
if command -v service >/dev/null 2>&1; then $SUDO service orthanc stop >/dev/null 2>&1 || true; fi
