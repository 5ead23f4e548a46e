"""Layer archives: reading (validated, confined extraction), deterministic writing, tree diffs.

    compression  Limits, LayerStream (detect gzip/zstd/bzip2/xz/plain, digests, bounds)
    reader       bounded streaming iteration over tar members
    resolve      in-root path resolution with directory fds
    extract      extract_layer, discard_partial
    writer       Entry, write_layer, tree_entries
    diff         diff_upper (overlay upper dir -> layer), diff_trees (typed changes)
    names        name cleaning, whiteout spelling, xattr policy

Nothing here imports subprocess or ctypes.
"""

from dockyard.archive.compression import Limits, LayerStream, detect_compression
from dockyard.archive.diff import Change, FileInfo, diff_trees, diff_upper, upper_entries
from dockyard.archive.extract import ExtractResult, discard_partial, extract_layer
from dockyard.archive.names import xattr_allowed
from dockyard.archive.writer import Entry, WrittenLayer, tree_entries, write_layer

__all__ = [
    "Change", "Entry", "ExtractResult", "FileInfo", "LayerStream", "Limits", "WrittenLayer",
    "detect_compression", "diff_trees", "diff_upper", "discard_partial", "extract_layer",
    "tree_entries", "upper_entries", "write_layer", "xattr_allowed",
]
