"""OCI hooks: run each with the container state on stdin, in order, honouring its timeout."""

from __future__ import annotations


from dockyard import leanjson as json
from dockyard.errors import DockyardError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from dockyard.oci.runtime_spec import Hook


def state_document(container_id: str, status: str, pid: int, bundle: str,
                   annotations: tuple[tuple[str, str], ...]) -> bytes:
    from dockyard.runtime.state import OCI_VERSION

    doc = {"ociVersion": OCI_VERSION, "id": container_id, "status": status, "bundle": bundle}
    if pid:
        doc["pid"] = pid
    if annotations:
        doc["annotations"] = dict(annotations)
    return json.dumps(doc).encode()


def run_hooks(kind: str, hooks: tuple[Hook, ...], state: bytes) -> None:
    """Run ``hooks`` of one kind; the first failure raises naming the hook and its exit."""
    if not hooks:
        return
    import subprocess  # only when a hook exists: subprocess is not cheap to import

    for i, hook in enumerate(hooks):
        argv = list(hook.args) or [hook.path]
        try:
            # Its own session, so that a timeout ends the hook and everything it started.
            proc = subprocess.Popen(argv, executable=hook.path, stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    env=dict(e.split("=", 1) for e in hook.env), close_fds=True,
                                    start_new_session=True)
        except OSError as e:
            raise DockyardError(f"{kind} hook #{i} ({hook.path}): {e.strerror}") from None
        try:
            _out, err_bytes = proc.communicate(state, timeout=hook.timeout)
        except subprocess.TimeoutExpired:
            import os
            import signal

            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.communicate()
            raise DockyardError(f"{kind} hook #{i} ({hook.path}) timed out after {hook.timeout}s") from None
        if proc.returncode != 0:
            err = err_bytes.decode(errors="replace").strip()
            raise DockyardError(f"{kind} hook #{i} ({hook.path}) exited with status {proc.returncode}"
                                + (f": {err}" if err else ""))
