#!/usr/bin/env bash
# Re-vendors the console's JavaScript libraries from the npm registry at the pinned versions
# below, with their licences, into web/vendor/ (committed: a newcomer runs no build step). Run it
# only to change a version; the console embeds web/ into the binary at compile time.
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

UPLOT=1.6.32
SWAGGER_UI=5.35.0

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "uplot@$UPLOT" "swagger-ui-dist@$SWAGGER_UI" >/dev/null)
for pkg in "uplot-$UPLOT" "swagger-ui-dist-$SWAGGER_UI"; do
  mkdir -p "$work/$pkg" && tar xzf "$work/$pkg.tgz" -C "$work/$pkg"
done

rm -rf web/vendor/uplot-* web/vendor/swagger-ui-*
mkdir -p "web/vendor/uplot-$UPLOT" "web/vendor/swagger-ui-$SWAGGER_UI"
cp "$work/uplot-$UPLOT/package/dist/uPlot.iife.min.js" "$work/uplot-$UPLOT/package/dist/uPlot.min.css" \
  "$work/uplot-$UPLOT/package/LICENSE" "web/vendor/uplot-$UPLOT/"
cp "$work/swagger-ui-dist-$SWAGGER_UI/package/"{swagger-ui-bundle.js,swagger-ui-bundle.js.LICENSE.txt,swagger-ui.css,LICENSE,NOTICE} \
  "web/vendor/swagger-ui-$SWAGGER_UI/"
# The bundles name their source maps, which are not shipped.
sed -i '/^\/\/# sourceMappingURL=/d' "web/vendor/swagger-ui-$SWAGGER_UI/swagger-ui-bundle.js"
sed -i 's#/\*\# sourceMappingURL=[^*]*\*/##' "web/vendor/swagger-ui-$SWAGGER_UI/swagger-ui.css"
(cd web/vendor && sha256sum uplot-*/* swagger-ui-*/* > SHA256SUMS)
log "vendored uPlot $UPLOT and Swagger UI $SWAGGER_UI into web/vendor/"
