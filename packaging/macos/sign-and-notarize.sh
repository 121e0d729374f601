#!/usr/bin/env bash
# Sign voicedesk.app with the hardened runtime and the microphone entitlement, then
# notarize and staple it. Needs a "Developer ID Application" certificate (as a base64
# .p12 in MACOS_CERTIFICATE_P12 with MACOS_CERTIFICATE_PASSWORD), its identity in
# MACOS_SIGNING_IDENTITY, and APPLE_ID / APPLE_TEAM_ID / APPLE_APP_PASSWORD (an
# app-specific password) for notarytool. Runs on macOS only.
set -euo pipefail
app=${1:?usage: sign-and-notarize.sh path/to/voicedesk.app}
here=$(cd "$(dirname "$0")" && pwd)

keychain=$RUNNER_TEMP/signing.keychain-db
security create-keychain -p "" "$keychain"
security set-keychain-settings -lut 3600 "$keychain"
security unlock-keychain -p "" "$keychain"
echo "$MACOS_CERTIFICATE_P12" | base64 --decode > "$RUNNER_TEMP/cert.p12"
security import "$RUNNER_TEMP/cert.p12" -k "$keychain" -P "$MACOS_CERTIFICATE_PASSWORD" -T /usr/bin/codesign
security list-keychains -d user -s "$keychain"
security set-key-partition-list -S apple-tool:,apple: -s -k "" "$keychain"

# Inside out: every library and executable, then the app itself.
find "$app/Contents" -type f \( -name "*.so" -o -name "*.dylib" -o -perm -u+x \) -print0 |
    xargs -0 codesign --force --timestamp --options runtime \
        --entitlements "$here/entitlements.plist" --sign "$MACOS_SIGNING_IDENTITY"
codesign --force --timestamp --options runtime \
    --entitlements "$here/entitlements.plist" --sign "$MACOS_SIGNING_IDENTITY" "$app"
codesign --verify --deep --strict --verbose=2 "$app"

ditto -c -k --keepParent "$app" "$RUNNER_TEMP/voicedesk.zip"
xcrun notarytool submit "$RUNNER_TEMP/voicedesk.zip" --wait \
    --apple-id "$APPLE_ID" --team-id "$APPLE_TEAM_ID" --password "$APPLE_APP_PASSWORD"
xcrun stapler staple "$app"
spctl --assess --type execute --verbose "$app"
