#!/usr/bin/env bash
# hack/plugin-archive.sh: the kubectl-codebuild plugin as a krew archive for this machine.
#
# Builds kubectl-codebuild (release), packs it into target/krew/kubectl-codebuild-OS-ARCH.tar.gz
# and writes target/krew/codebuild.yaml: plugins/codebuild.yaml with this platform's URI and
# sha256 filled in, so that
#   kubectl krew install --manifest=target/krew/codebuild.yaml \
#     --archive=target/krew/kubectl-codebuild-OS-ARCH.tar.gz
# installs it. The other platforms keep their placeholders (a release fills them).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
os="$(uname -s | tr '[:upper:]' '[:lower:]')"
case "$(uname -m)" in
  x86_64 | amd64) arch=amd64 ;;
  aarch64 | arm64) arch=arm64 ;;
  *) echo "plugin-archive: unsupported machine $(uname -m)" >&2; exit 1 ;;
esac
cargo build --release --bin kubectl-codebuild
out=target/krew
mkdir -p "$out"
archive="$out/kubectl-codebuild-$os-$arch.tar.gz"
tar -C target/release -czf "$archive" kubectl-codebuild
sum="$(sha256sum "$archive" | cut -d' ' -f1)"
key="$(echo "${os}_${arch}" | tr '[:lower:]' '[:upper:]')"
sed -e "s|{{URI_$key}}|file://$PWD/$archive|" -e "s|{{SHA256_$key}}|$sum|" \
  plugins/codebuild.yaml > "$out/codebuild.yaml"
echo "$archive"
echo "$out/codebuild.yaml (sha256 $sum)"
