"""Where a checkpoint comes from: a local path, ``detectron2://``, ``https://`` or ``zoo://``.

Remote files are downloaded once, with a progress bar, into the cache that
detectron2 itself uses (iopath's, ``$FVCORE_CACHE`` or ``~/.torch/iopath_cache``,
same layout), so a file fetched by either is found by both. ``$D2BACKBONES_CACHE``
overrides the location. A URL whose path would leave the cache (``..``, plain or
percent-encoded) is refused before anything is fetched.

Offline use never hangs: the connection gives up after ``$D2BACKBONES_DOWNLOAD_TIMEOUT``
seconds (default 10), ``$D2BACKBONES_OFFLINE=1`` skips the attempt, and either way the
error names the URL and the path to place the file at.
"""
import hashlib
import logging
import os
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Dict, Optional
from urllib.parse import parse_qs, unquote, urlparse

from iopath.common.file_io import file_lock, get_cache_dir
from tqdm import tqdm

from .safe_load import CheckpointError
from .zoo import D2_HOST, ZOO_SCHEME, get_zoo_entry

__all__ = ["CheckpointSource", "DownloadError", "UnsafeURLError", "cache_path_for", "download", "resolve_source"]

logger = logging.getLogger(__name__)

# Options a checkpoint string may carry after "?", all boolean.
KNOWN_OPTIONS = ("matching_heuristics", "allow_unsafe", "allow_backbone_mismatch")
CHUNK = 1 << 20


class DownloadError(CheckpointError):
    """A remote checkpoint that could not be fetched or failed its check."""


class UnsafeURLError(DownloadError):
    """A checkpoint URL whose cache path would lie outside the cache directory."""


@dataclass
class CheckpointSource:
    """A checkpoint string resolved to a local file.

    Attributes:
        path: local file.
        uri: the string as given, without its options.
        url: remote address (None for local files).
        zoo_name: zoo name when given as ``zoo://`` (None otherwise).
        options: the ``?key=True`` flags (see ``KNOWN_OPTIONS``).
    """

    path: str
    uri: str
    url: Optional[str] = None
    zoo_name: Optional[str] = None
    options: Dict[str, bool] = field(default_factory=dict)


def cache_dir():
    return os.environ.get("D2BACKBONES_CACHE") or get_cache_dir()


def _unsafe_segment(segment):
    # Checked decoded too: a server (or a later tool) may decode %2e%2e / %2F.
    decoded = unquote(segment)
    return segment in (".", "..") or decoded in (".", "..") or any(c in decoded for c in "/\\\0")


def cache_path_for(url):
    """Local cache file of ``url``: ``<cache>/<url path>``, as iopath lays it out.

    Raises:
        UnsafeURLError: a path segment is ``.`` or ``..`` (plain or percent-encoded) or
            encodes a separator, or the URL names no file: the file would land outside
            the cache, or nowhere.
    """
    parsed = urlparse(url)
    root = cache_dir()
    segments = parsed.path.lstrip("/").split("/")
    bad = next((s for s in segments if _unsafe_segment(s)), None)
    if bad is not None or not segments[-1]:
        reason = f"its path segment {bad!r} would place the file outside the cache {root}" if bad is not None else (
            "it ends in '/', so it names no file")
        raise UnsafeURLError(
            f"refusing checkpoint URL {url}: {reason}. Give the file's own URL, or download it yourself "
            "and give its local path"
        )
    # Every segment is now a plain name (no ".", "..", or separator), so the path stays under root.
    return os.path.join(root, *segments)


def _parse_options(query, uri):
    options = {}
    for key, values in parse_qs(query).items():
        if key not in KNOWN_OPTIONS:
            raise CheckpointError(f"unknown checkpoint option {key!r} in {uri!r}; known options: {', '.join(KNOWN_OPTIONS)}")
        options[key] = values[-1].lower() in ("1", "true", "yes")
    return options


def _timeout():
    return float(os.environ.get("D2BACKBONES_DOWNLOAD_TIMEOUT", "10"))


def _offline_error(url, target, reason):
    return DownloadError(
        f"cannot download {url} ({reason}). If this machine is offline, fetch the file elsewhere "
        f"and place it at {target}"
    )


def download(url, target, sha256=None, size=None, timeout=None, progress=True):
    """Fetch ``url`` to ``target`` (atomically, via ``target.part``) and check it.

    Raises:
        DownloadError: unreachable (offline, timeout, HTTP error) or the file's
            size / sha256 differs from the expected one (the partial file is removed).
    """
    if os.environ.get("D2BACKBONES_OFFLINE", "") not in ("", "0"):
        raise _offline_error(url, target, "D2BACKBONES_OFFLINE is set")
    os.makedirs(os.path.dirname(target) or ".", exist_ok=True)
    partial = target + ".part"
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=_timeout() if timeout is None else timeout) as response, open(
            partial, "wb"
        ) as out:
            total = int(response.headers.get("Content-Length") or 0) or size
            with tqdm(total=total, unit="B", unit_scale=True, desc=os.path.basename(target), disable=not progress) as bar:
                while True:
                    chunk = response.read(CHUNK)
                    if not chunk:
                        break
                    out.write(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk))
    except (urllib.error.URLError, OSError) as error:
        if os.path.exists(partial):
            os.remove(partial)
        reason = getattr(error, "reason", None) or error
        raise _offline_error(url, target, str(reason)) from None
    actual_size = os.path.getsize(partial)
    problems = []
    if size is not None and actual_size != size:
        problems.append(f"size {actual_size} bytes, expected {size}")
    if sha256 is not None and digest.hexdigest() != sha256.lower():
        problems.append(f"sha256 {digest.hexdigest()}, expected {sha256}")
    if problems:
        os.remove(partial)
        raise DownloadError(f"download of {url} failed its check ({'; '.join(problems)}); the file was discarded")
    if sha256 is None and size is None:
        logger.info("No published hash or size for %s: the download is not verified.", url)
    os.replace(partial, target)
    return target


def _fetch_cached(url, sha256=None, size=None):
    target = cache_path_for(url)
    if os.path.isfile(target):
        return target
    os.makedirs(os.path.dirname(target), exist_ok=True)
    # One download when several processes (one per GPU) ask for the same file.
    with file_lock(target):
        if not os.path.isfile(target):
            logger.info("Downloading %s to %s", url, target)
            download(url, target, sha256=sha256, size=size)
    return target


def resolve_source(checkpoint):
    """Turn a checkpoint string into a :class:`CheckpointSource` with a local file.

    Accepts ``zoo://family/dataset/name``, ``detectron2://path``, ``http(s)://url``
    and local paths, each optionally followed by ``?option=True&...``.

    Raises:
        KeyError: unknown zoo name.
        FileNotFoundError: a local path that does not exist.
        CheckpointError: a directory given as the checkpoint.
        DownloadError: a remote file that is not cached and cannot be downloaded, or
            (:class:`UnsafeURLError`) whose cache path would leave the cache.
    """
    uri, _, query = checkpoint.partition("?")
    options = _parse_options(query, checkpoint)
    if uri.startswith(ZOO_SCHEME):
        entry = get_zoo_entry(uri)
        path = _fetch_cached(entry.url, sha256=entry.sha256, size=entry.size)
        return CheckpointSource(path, uri, url=entry.url, zoo_name=entry.name, options=options)
    if uri.startswith("detectron2://"):
        url = D2_HOST + uri[len("detectron2://"):]
        return CheckpointSource(_fetch_cached(url), uri, url=url, options=options)
    if uri.startswith(("https://", "http://")):
        return CheckpointSource(_fetch_cached(uri), uri, url=uri, options=options)
    path = os.path.expanduser(uri)
    if os.path.isdir(path):
        found = sorted(f for f in os.listdir(path) if f.endswith((".pth", ".pkl")))
        hint = f"; it holds {', '.join(found[:3])}" if found else ""
        raise CheckpointError(f"checkpoint {uri} is a directory, not a checkpoint file: give a file inside it{hint}")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint not found: {uri} (give a file, a URL, detectron2://... or zoo://...)")
    return CheckpointSource(path, uri, options=options)

