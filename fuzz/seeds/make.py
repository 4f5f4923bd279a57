#!/usr/bin/env python3
"""Writes the hand-made seed inputs of the fuzz targets into fuzz/corpus/<target>/.

The project's own fixtures (compose files, Dockerfiles) are copied; tar layers and DNS packets
are built here byte by byte, each aimed at one branch of the parser (links out of the layer,
whiteouts, hardlinks, compressed streams; queries, PTR, EDNS, compression pointers). Run from
anywhere: python3 fuzz/seeds/make.py. The daemon bodies are captured from the real CLI by
seeds/capture-api.py.
"""
import gzip, io, os, pathlib, shutil, struct, subprocess, tarfile

HERE = pathlib.Path(__file__).resolve().parent
FUZZ = HERE.parent
REPO = FUZZ.parent
CORPUS = FUZZ / "corpus"


def put(target, name, data):
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data)


def flat(path, base):
    return str(path.relative_to(base)).replace("/", "__")


def compose():
    base = REPO / "orchestrator/tests/fixtures"
    for p in sorted(base.rglob("*")):
        if p.is_file() and p.suffix in (".yaml", ".yml"):
            put("compose_loader", flat(p, base), p.read_bytes())
    for p in sorted((REPO / "examples").glob("*/compose.yaml")):
        put("compose_loader", "example__" + p.parent.name, p.read_bytes())
    # a compose file, a NUL, then the project's .env
    put("compose_loader", "with_dotenv",
        b"services:\n  web:\n    image: nginx:${TAG:-1}\n    environment:\n      A: ${A}\n"
        b"\0A=1\nexport B='two words'\nC=\"x\\ny\"\n")


def dockerfile():
    base = REPO / "runtime/tests/fixtures/build"
    for p in sorted(base.rglob("*")):
        if p.is_file() and (p.name.startswith("Dockerfile") or p.name == ".dockerignore"):
            put("dockerfile", flat(p, base), p.read_bytes())
    for p in sorted(REPO.glob("examples/**/Dockerfile")):
        put("dockerfile", "example__" + flat(p, REPO / "examples"), p.read_bytes())


def tar_bytes(entries, fmt=tarfile.GNU_FORMAT):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as t:
        for kind, name, arg in entries:
            ti = tarfile.TarInfo(name)
            ti.mtime = 1700000000
            if kind == "file":
                ti.size = len(arg)
                ti.mode = 0o644
                t.addfile(ti, io.BytesIO(arg))
                continue
            if kind == "dir":
                ti.type, ti.mode = tarfile.DIRTYPE, 0o755
            elif kind == "sym":
                ti.type, ti.linkname = tarfile.SYMTYPE, arg
            elif kind == "hard":
                ti.type, ti.linkname = tarfile.LNKTYPE, arg
            elif kind == "fifo":
                ti.type = tarfile.FIFOTYPE
            elif kind == "chr":
                ti.type, ti.devmajor, ti.devminor = tarfile.CHRTYPE, 1, 3
            elif kind == "setuid":
                ti.size, ti.mode = len(arg), 0o4755
                t.addfile(ti, io.BytesIO(arg))
                continue
            t.addfile(ti)
    return buf.getvalue()


def tars():
    basic = [("dir", "etc", None), ("file", "etc/hostname", b"box\n"),
             ("dir", "usr/bin", None), ("setuid", "usr/bin/su", b"\x7fELF"),
             ("sym", "bin", "usr/bin"), ("hard", "etc/hn2", "etc/hostname"),
             ("fifo", "run/fifo", None), ("chr", "dev/null", None)]
    cases = {
        "basic": basic,
        "whiteouts": [("dir", "etc", None), ("file", "etc/.wh.passwd", b""),
                      ("file", "etc/.wh..wh..opq", b""), ("file", ".wh.up", b""),
                      ("file", "etc/.wh.deep", b"")],
        "through_planted_link": [("sym", "x", "/tmp"), ("file", "x/owned", b"pwn"),
                                 ("sym", "y", "../../.."), ("file", "y/outside/sentinel", b"pwn")],
        "through_existing_links": [("file", "up/sentinel", b"pwn"), ("file", "abs/new", b"pwn"),
                                   ("file", "etc/deep/inner", b"pwn"), ("dir", "up", None)],
        "dotdot": [("file", "../escape", b"pwn"), ("file", "a/../../escape", b"pwn"),
                   ("file", "/abs/ok", b"ok"), ("file", "./dot/ok", b"ok")],
        "hardlink_out": [("hard", "h", "../../../outside/sentinel"), ("hard", "h2", "up/sentinel"),
                         ("hard", "h3", "/etc/passwd"), ("file", "h", b"overwrite")],
        "replace_dir_with_link": [("dir", "d", None), ("file", "d/f", b"1"), ("sym", "d", "/"),
                                  ("file", "d/f2", b"2")],
        "pax_long_names": basic + [("file", "p/" + "n" * 200 + "/f", b"long")],
    }
    for name, entries in cases.items():
        fmt = tarfile.PAX_FORMAT if name.startswith("pax") else tarfile.GNU_FORMAT
        put("tar_unpack", name, tar_bytes(entries, fmt))
    put("tar_unpack", "basic.gz", gzip.compress(tar_bytes(basic), mtime=0))
    z = subprocess.run(["zstd", "-q", "-c"], input=tar_bytes(cases["whiteouts"]),
                       capture_output=True, check=True).stdout
    put("tar_unpack", "whiteouts.zst", z)


def qname(name):
    out = b""
    for label in name.split("."):
        if label:
            out += bytes([len(label)]) + label.encode()
    return out + b"\0"


def query(qid, name, qtype, flags=0x0100, edns=None, qclass=1):
    q = struct.pack(">HHHHHH", qid, flags, 1, 0, 0, 1 if edns else 0)
    q += qname(name) + struct.pack(">HH", qtype, qclass)
    if edns:
        q += b"\0" + struct.pack(">HHIH", 41, edns, 0, 0)
    return q


def dns():
    A, AAAA, PTR, ANY, MX, TXT = 1, 28, 12, 255, 15, 16
    cases = {
        "a_service": query(1, "web", A),
        "a_fqdn_search": query(2, "db.example.com", A),
        "a_project_domain": query(3, "proj-db-1.proj.internal", A),
        "aaaa_v6": query(4, "six", AAAA),
        "any": query(5, "web", ANY),
        "ptr_v4": query(6, "5.0.9.10.in-addr.arpa", PTR),
        "ptr_v6": query(7, ".".join(reversed("fd000009000000000000000000000005")) + ".ip6.arpa",
                        PTR),
        "link_alias": query(8, "database", A),
        "forward_mx": query(9, "example.org", MX, edns=1232),
        "edns_big": query(10, "web", TXT, edns=4096),
        "class_chaos": query(11, "version.bind", TXT, qclass=3),
        "opcode_status": query(12, "web", A, flags=0x1100),
        "response_bit": query(13, "web", A, flags=0x8180),
        "two_questions": struct.pack(">HHHHHH", 14, 0x0100, 2, 0, 0, 0)
        + qname("web") + b"\0\1\0\1" + qname("db") + b"\0\1\0\1",
        "compression_loop": struct.pack(">HHHHHH", 15, 0x0100, 1, 0, 0, 0) + b"\xc0\x0c\0\1\0\1",
        "short": b"\x00\x10\x01\x00\x00\x01",
        # an upstream answer to `web. A IN` id 0x1234, with one A record via a pointer
        "upstream_answer": struct.pack(">HHHHHH", 0x1234, 0x8180, 1, 1, 0, 0) + qname("web")
        + b"\0\1\0\1" + b"\xc0\x0c\0\1\0\1\0\0\0\x3c\0\4\x0a\x09\0\x05",
    }
    for name, data in cases.items():
        put("dns_wire", name, data)


if __name__ == "__main__":
    compose()
    dockerfile()
    tars()
    dns()
