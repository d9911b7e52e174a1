"""Vendor the Prometheus Operator's CRD schemas that the Kubernetes target is validated against.

    python -m scripts.refresh_crds                    # the pinned release, from GitHub
    python -m scripts.refresh_crds --tag v0.94.0      # move to another release
    python -m scripts.refresh_crds --git ~/src/prometheus-operator   # from a local clone

Copies ``example/prometheus-operator-crd/monitoring.coreos.com_<kind>.yaml`` of a
prometheus-operator release tag, byte for byte, into
``tests/data/prometheus-operator-crd/`` with ``source.json`` (repository, tag,
commit when known, SHA-256 of each file), then writes the compacted schemas the
build validates with (``genonaut_monitoring/kubernetes/crds.json``). Review the
diff, rebuild (``make build``) and run the tests before committing.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import urllib.request
from pathlib import Path

from genonaut_monitoring.kubernetes import schemas

ROOT = Path(__file__).resolve().parent.parent
REPOSITORY = "prometheus-operator/prometheus-operator"
CRD_DIR = "example/prometheus-operator-crd"
# The kinds the Kubernetes target writes.
PLURALS = ("alertmanagerconfigs", "prometheusrules", "servicemonitors")
VENDOR_DIR = Path("tests/data/prometheus-operator-crd")
CRDS_JSON = Path("genonaut_monitoring/kubernetes/crds.json")


def pinned_tag(root: Path = ROOT) -> str:
    """The release vendored now (source.json), which a refresh re-fetches by default."""
    source = json.loads((root / VENDOR_DIR / "source.json").read_text())
    return str(source["tag"])


def file_name(plural: str) -> str:
    return f"monitoring.coreos.com_{plural}.yaml"


def raw_url(tag: str, plural: str) -> str:
    return f"https://raw.githubusercontent.com/{REPOSITORY}/{tag}/{CRD_DIR}/{file_name(plural)}"


def from_github(tag: str) -> tuple[dict[str, bytes], str | None]:
    files = {}
    for plural in PLURALS:
        with urllib.request.urlopen(raw_url(tag, plural), timeout=60) as response:
            files[file_name(plural)] = response.read()
    return files, None


def from_git(git_dir: Path, tag: str) -> tuple[dict[str, bytes], str | None]:
    """The files at ``tag`` in a local clone (a work tree or a bare repository)."""

    def git(*args: str) -> bytes:
        return subprocess.run(
            ["git", f"--git-dir={_git_dir(git_dir)}", *args], capture_output=True, check=True
        ).stdout

    commit = git("rev-parse", f"{tag}^{{commit}}").decode().strip()
    files = {file_name(p): git("show", f"{tag}:{CRD_DIR}/{file_name(p)}") for p in PLURALS}
    return files, commit


def _git_dir(path: Path) -> Path:
    return path / ".git" if (path / ".git").exists() else path


def write(root: Path, tag: str, files: dict[str, bytes], commit: str | None) -> list[Path]:
    """Vendor ``files`` under ``root`` with their source, and regenerate crds.json."""
    vendor = root / VENDOR_DIR
    vendor.mkdir(parents=True, exist_ok=True)
    for old in vendor.glob("monitoring.coreos.com_*.yaml"):
        old.unlink()
    written = []
    for name, content in sorted(files.items()):
        (vendor / name).write_bytes(content)
        written.append(vendor / name)
    repository = f"https://github.com/{REPOSITORY}"
    source = {
        "repository": repository,
        "tag": tag,
        "commit": commit,
        "path": CRD_DIR,
        "sha256": {name: hashlib.sha256(c).hexdigest() for name, c in sorted(files.items())},
        "refresh": f"python -m scripts.refresh_crds --tag {tag}",
    }
    (vendor / "source.json").write_text(json.dumps(source, indent=2, sort_keys=True) + "\n")
    written.append(vendor / "source.json")
    crds = [schemas.load_yaml(content) for _, content in sorted(files.items())]
    target = root / CRDS_JSON
    target.write_text(schemas.crds_document(tag, repository, crds))
    written.append(target)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.refresh_crds", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--tag", help="release tag (default: the one vendored now)")
    parser.add_argument(
        "--git", type=Path, metavar="DIR", help="read from this clone instead of GitHub"
    )
    parser.add_argument("--root", type=Path, default=ROOT, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    tag = args.tag or pinned_tag(args.root)
    files, commit = from_git(args.git, tag) if args.git else from_github(tag)
    for path in write(args.root, tag, files, commit):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
