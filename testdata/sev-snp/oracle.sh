#!/bin/sh
# The SEV-SNP differential test's oracle: installs sev-snp-measure (VirTEE, Apache-2.0; the
# reference implementation of the launch digest) at a pinned version into a Python venv at
# target/sev-snp-measure-venv, then runs tools/td-shim-tool/tests/snp_differential.rs against
# it (random launches from the committed seed; it fails on any disagreement).
#
#   testdata/sev-snp/oracle.sh              install if needed, then run the differential test
#   testdata/sev-snp/oracle.sh --venv-only  install if needed, run nothing
#
# Needs python3 with the venv module and access to PyPI (or a pip mirror). Environment for the
# test: SNP_DIFF_SEED (hex) and SNP_DIFF_CASES override the committed seed and case count.
set -eu
cd "$(dirname "$0")/../.."

VERSION=0.0.13
VENV=target/sev-snp-measure-venv

if ! "$VENV/bin/sev-snp-measure" --version 2>/dev/null | grep -qx "sev-snp-measure $VERSION"; then
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "sev-snp-measure==$VERSION"
fi
"$VENV/bin/sev-snp-measure" --version

if [ "${1:-}" = "--venv-only" ]; then
    exit 0
fi
exec cargo test -p td-shim-tool --test snp_differential -- --ignored --nocapture
