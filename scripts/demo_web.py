"""Demo, part 2: a web service from a dockyard image, answering on 127.0.0.1.

Until the engine exists (issue #4: `dockyard run -d -p ...`), this script does by hand what the
engine will do: open the image store, turn the image into an OCI bundle (overlay rootfs + config),
start it with dockyard-runtime, and clean up. Host network namespace: the page is served on the
loopback address only. Usage: demo_web.py STORE_ROOT STATE_ROOT RUNTIME PORT
"""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request

from dockyard.image.bundle import create_bundle, remove_bundle
from dockyard.image.service import ImageService
from dockyard.oci.spec_builder import RunOptions

PAGE = "<h1>hello from a dockyard container</h1>"


def main() -> int:
    store_root, state_root, runtime, port = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
    cid = "demo-web"
    script = (f"echo '{PAGE}' > /var/www/index.html && "
              f"exec httpd -f -p 127.0.0.1:{port} -h /var/www")
    rt = [runtime, "--root", state_root]
    with ImageService.open(store_root) as svc:
        bundle = create_bundle(svc, "busybox", f"{store_root}/tmp/{cid}", container_id=cid,
                               args=["sh", "-c", script],
                               opts=RunOptions(container_id=cid, network="host",
                                               cgroup_parent="/dockyard-demo"))
        try:
            print(f"$ dockyard-runtime run --detach --bundle {bundle.path} {cid}")
            subprocess.run([*rt, "run", "--detach", "--bundle", bundle.path, cid], check=True,
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
            print(f"$ dockyard-runtime list\n{subprocess.run([*rt, 'list'], capture_output=True, text=True).stdout}")
            url = f"http://127.0.0.1:{port}/"
            body = ""
            for _ in range(100):  # httpd needs a moment to listen
                try:
                    body = urllib.request.urlopen(url, timeout=2).read().decode().strip()
                    break
                except OSError:
                    time.sleep(0.05)
            print(f"$ curl {url}\n{body}")
            ok = body == PAGE
        finally:
            subprocess.run([*rt, "delete", "--force", cid], check=False)
            remove_bundle(svc, bundle)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
