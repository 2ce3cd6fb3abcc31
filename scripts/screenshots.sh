#!/usr/bin/env bash
# Screenshots of the main pages (workbench, case page, handler inbox on a phone, dashboard,
# report, track) into docs/screenshots/, taken by the end-to-end tests as they go.
set -euo pipefail
cd "$(dirname "$0")/.."
GL_SCREENSHOTS=docs/screenshots exec ./scripts/e2e.sh
