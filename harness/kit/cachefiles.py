"""Checksummed single-file cache entries, for plugins that cache their own outputs (the `api`
generator's paid images): the harness's own integrity rules, as public kit API.

* :func:`write_checksum` after a file is written (size, sha256, mtime in ``<file>.sha256.json``);
* :func:`check_file` before it is read: None, or one line saying what is wrong (``missing_ok``
  trusts, once, a file written before checksums existed);
* :func:`quarantine` moves a bad entry aside with one warning line, so it is rebuilt.
"""

from cxrbench.integrity import check_file, checksum_path, quarantine, write_checksum

__all__ = ["check_file", "checksum_path", "quarantine", "write_checksum"]
