"""Testcontainers for Python against berth's Docker Engine API socket (DOCKER_HOST): a generic
container from a locally imported image, a log wait strategy, and the exposed port read back
from the API and reached. Run by tests/tests/docker_py.rs inside the instance's namespace; the
Ryuk reaper is off (TESTCONTAINERS_RYUK_DISABLED: it needs an image from Docker Hub).
"""
import urllib.request

from testcontainers.core.container import DockerContainer
from testcontainers.core.waiting_utils import wait_for_logs

with (
    DockerContainer("busybox:e2e")
    .with_command(["sh", "-c", "echo ready to serve; exec httpd -f -p 80 -h /var/www"])
    .with_exposed_ports(80)
) as c:
    wait_for_logs(c, "ready to serve", timeout=30)
    host = c.get_container_host_ip()
    port = c.get_exposed_port(80)
    body = urllib.request.urlopen(f"http://{host}:{port}/", timeout=10).read()
    assert body == b"hello from web\n", body
print("testcontainers: passed", flush=True)
