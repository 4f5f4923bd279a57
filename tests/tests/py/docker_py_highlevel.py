"""docker-py's high-level API against berth's Docker Engine API socket (DOCKER_HOST).

Run by tests/tests/docker_py.rs inside the berth instance's network namespace, with the image
`busybox:e2e` imported. Every step asserts what a docker-py user relies on; the first failure
raises with the step's name and the daemon's answer.
"""
import io
import os
import sys
import tarfile
import time

import docker

IMG = "busybox:e2e"
PREFIX = os.environ["BT_PREFIX"]  # unique names per test run
SUBNET = os.environ["BT_SUBNET"]  # a /24 of the test's own


def step(name):
    print(f"step: {name}", flush=True)


client = docker.from_env(timeout=60)

step("ping and version")
assert client.ping() is True
v = client.version()
assert v["ApiVersion"], v

step("images.list / get / tag")
img = client.images.get(IMG)
assert IMG in img.tags, img.tags
img.tag(f"{PREFIX}-img", "v1")
assert f"{PREFIX}-img:v1" in client.images.get(f"{PREFIX}-img:v1").tags

step("containers.run, not detached: the output")
out = client.containers.run(IMG, ["sh", "-c", "echo out; echo err >&2"], remove=True)
assert out == b"out\n", out

step("containers.run detached, env, labels, ports")
c = client.containers.run(
    IMG,
    ["httpd", "-f", "-p", "80", "-h", "/var/www"],
    detach=True,
    name=f"{PREFIX}-web",
    environment={"A": "1"},
    labels={"k": "v"},
    ports={"80/tcp": ("127.0.0.1", None)},
)
c.reload()
assert c.status == "running", c.status
assert c.labels.get("k") == "v", c.labels
assert "A=1" in c.attrs["Config"]["Env"], c.attrs["Config"]["Env"]
port = c.ports["80/tcp"][0]["HostPort"]
assert int(port) > 0, c.ports

step("exec_run: output and exit code")
r = c.exec_run(["sh", "-c", "echo $A-inside; exit 3"], environment={"A": "x"})
assert r.exit_code == 3, r
assert r.output == b"x-inside\n", r.output

step("put_archive / get_archive")
buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode="w") as t:
    data = b"from docker-py\n"
    info = tarfile.TarInfo("note.txt")
    info.size = len(data)
    t.addfile(info, io.BytesIO(data))
assert c.put_archive("/tmp", buf.getvalue()) is True
r = c.exec_run(["cat", "/tmp/note.txt"])
assert r.output == b"from docker-py\n", r.output
stream, stat = c.get_archive("/tmp/note.txt")
raw = b"".join(stream)
with tarfile.open(fileobj=io.BytesIO(raw)) as t:
    assert t.extractfile("note.txt").read() == b"from docker-py\n"
assert stat["name"] == "note.txt", stat

step("logs")
c2 = client.containers.run(IMG, ["sh", "-c", "echo one; echo two"], detach=True)
assert c2.wait(timeout=30)["StatusCode"] == 0
assert c2.logs() == b"one\ntwo\n", c2.logs()
assert c2.logs(tail=1) == b"two\n", c2.logs(tail=1)
c2.remove()

step("wait: the exit status")
c3 = client.containers.run(IMG, ["sh", "-c", "exit 7"], detach=True)
assert c3.wait(timeout=30)["StatusCode"] == 7
c3.remove()

step("containers.list with a label filter")
assert [x.name for x in client.containers.list(filters={"label": "k=v"})] == [f"{PREFIX}-web"]

step("images.build from a file object")
df = f"FROM {IMG}\nRUN echo built > /built.txt\nCMD [\"cat\", \"/built.txt\"]\n"
built, _logs = client.images.build(fileobj=io.BytesIO(df.encode()), tag=f"{PREFIX}-built:1", rm=True)
assert f"{PREFIX}-built:1" in built.tags, built.tags
assert client.containers.run(f"{PREFIX}-built:1", remove=True) == b"built\n"

step("networks: create, connect, a name resolves, remove")
net = client.networks.create(f"{PREFIX}-net", driver="bridge",
                             ipam=docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet=SUBNET)]))
net.connect(c)
got = client.containers.run(IMG, ["wget", "-qO-", f"http://{PREFIX}-web/"], network=net.name, remove=True)
assert got == b"hello from web\n", got
net.disconnect(c)
net.remove()

step("volumes: create, use, remove")
vol = client.volumes.create(f"{PREFIX}-vol", labels={"k": "v"})
client.containers.run(IMG, ["sh", "-c", "echo kept > /d/f"], volumes={vol.name: {"bind": "/d"}}, remove=True)
assert client.containers.run(IMG, ["cat", "/d/f"], volumes={vol.name: {"bind": "/d"}}, remove=True) == b"kept\n"
vol.remove()

step("stop and remove")
c.stop(timeout=1)
c.remove()
client.images.remove(f"{PREFIX}-built:1")
client.images.remove(f"{PREFIX}-img:v1")
print("docker-py: all steps passed", flush=True)
