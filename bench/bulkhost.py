# SPDX-License-Identifier: MIT
"""Many domains on a simulated host, quickly (bench/run.py's big host).

`xensim domain-create` and `channel-add` do what libxl does, one process and
a few transactions each.  tests/sim/xenstored-sim copies its whole tree for
every transaction, and domain-create reads every domain's name, so making
1,000 domains that way costs O(N^2): more than 4 minutes here.  This module
makes the first few domains with xensim, learns from them how each node's
path, value and permissions depend on the domain (its domid, name and VM
uuid), checks that what it learnt reproduces another xensim-made domain
exactly, and writes the rest as plain writes (no transactions), then
introduces each domain as xensim does.  If the check fails (xensim changed
in a way this cannot follow), it says so and the caller falls back to xensim.
"""
import re
import time
import uuid as uuidlib

SAMPLES = 4          # domains made by xensim; the first is not used (domid 1 = devid 1)
CHANNEL = "agent"


class CloneError(RuntimeError):
    pass


def _walk(xs, path, out):
    try:
        value = xs.read(path)
    except FileNotFoundError:
        return
    out.append((path, value, list(xs.get_perms(path))))
    for kid in xs.ls(path):
        kid = kid.decode() if isinstance(kid, bytes) else kid
        _walk(xs, path.rstrip("/") + "/" + kid, out)


def domain_nodes(xs, d):
    """(nodes, uuid, name) of domain d: every node under its four roots."""
    vm = xs.read("/local/domain/%d/vm" % d).decode()
    uuid = vm.rsplit("/", 1)[1]
    name = xs.read("/local/domain/%d/name" % d).decode()
    nodes = []
    for root in ("/local/domain/%d" % d, vm, "/libxl/%d" % d,
                 "/local/domain/0/backend/console/%d" % d):
        _walk(xs, root, nodes)
    return nodes, uuid, name


def _tokens(text, d, uuid, name):
    """text as a format string with the domain's name (the whole text), its
    uuid and its domid (a whole number) as fields."""
    if text == name:
        return "{N}"
    text = text.replace("{", "{{").replace("}", "}}").replace(uuid, "{U}")
    return re.sub(r"(?<![0-9])%d(?![0-9])" % d, "{D}", text)


def _render(t, d, uuid, name):
    return t.format(D=d, U=uuid, N=name)


class Template:
    """How each node of a domain depends on (domid, uuid, name)."""

    def __init__(self, xs, b, c):
        nb, ub, mb = domain_nodes(xs, b)
        nc, uc, mc = domain_nodes(xs, c)
        if len(nb) != len(nc):
            raise CloneError("domains %d and %d differ in node count" % (b, c))
        self.nodes = []
        for (pb, vb, permb), (pc, vc, permc) in zip(nb, nc):
            pt = "/".join(_tokens(x, b, ub, mb) if x else x for x in pb.split("/"))
            if _render(pt, c, uc, mc) != pc:
                raise CloneError("path %s does not follow %s" % (pc, pb))
            vb_s, vc_s = vb.decode(errors="surrogateescape"), vc.decode(errors="surrogateescape")
            if vb == vc:
                vt = ("const", vb)
            elif _render(_tokens(vb_s, b, ub, mb), c, uc, mc) == vc_s:
                vt = ("text", _tokens(vb_s, b, ub, mb))
            elif vb_s.isdigit() and vc_s.isdigit() and (int(vc_s) - int(vb_s)) % (c - b) == 0:
                k = (int(vc_s) - int(vb_s)) // (c - b)
                vt = ("linear", k, int(vb_s) - k * b)
            else:
                raise CloneError("value of %s: %r then %r" % (pc, vb, vc))
            permt = [p[0] + ("{D}" if p[1:] == str(b) else p[1:]) for p in permb]
            if [_render(p, c, uc, mc) for p in permt] != permc:
                raise CloneError("permissions of %s: %s then %s" % (pc, permb, permc))
            self.nodes.append((pt, vt, permt))

    def render(self, d, uuid, name):
        out = []
        for pt, vt, permt in self.nodes:
            if vt[0] == "const":
                value = vt[1]
            elif vt[0] == "text":
                value = _render(vt[1], d, uuid, name).encode(errors="surrogateescape")
            else:
                value = str(vt[1] * d + vt[2]).encode()
            out.append((_render(pt, d, uuid, name), value, [_render(p, d, uuid, name) for p in permt]))
        return out


def make_domains(host, n, tag, on_domain=None, log=None, stop_at=None):
    """n domains with one channel each (named CHANNEL) on SimHost host;
    returns ([(domid, devid)], why the clone was not used or None).
    on_domain(d, devid) is called as each one is complete (to start its
    guest while the tree is still small).  Past time.monotonic() stop_at,
    no more domains are made: fewer than n come back."""
    def late():
        return stop_at is not None and time.monotonic() > stop_at

    on_domain = on_domain or (lambda d, c: None)
    made = []
    for i in range(min(n, SAMPLES)):
        d = host.domain_create("%s%d" % (tag, i))
        made.append((d, host.channel_add(d, CHANNEL)))
    if n <= SAMPLES:
        for d, c in made:
            on_domain(d, c)
        return made, None
    # The samples' guests start only once the samples have been read: a
    # guest writes its ring-ref, port and state into the frontend.
    xs = host.xs
    try:
        ds = [d for d, _ in made]
        t = Template(xs, ds[1], ds[2])
        want, uuid, name = domain_nodes(xs, ds[3])
        got = t.render(ds[3], uuid, name)
        if got != want:
            diff = [(g, w) for g, w in zip(got, want) if g != w][:3]
            raise CloneError("cloning domain %d does not give domain %d: %s"
                             % (ds[1], ds[3], diff or "node counts differ"))
        devid = made[1][1]
        if devid != made[3][1]:
            raise CloneError("channel devids differ")
        if not any(p == "/local/domain/{D}/store/ring-ref" for p, _, _ in t.nodes):
            raise CloneError("no store/ring-ref to introduce the domain with")
    except CloneError as e:
        if log:
            log("bulk domains: %s; using xensim for all (slow)" % e)
        for d, c in made:
            on_domain(d, c)
        for i in range(SAMPLES, n):
            if late():
                break
            d = host.domain_create("%s%d" % (tag, i))
            c = host.channel_add(d, CHANNEL)
            made.append((d, c))
            on_domain(d, c)
        return made, str(e)
    for d, c in made:
        on_domain(d, c)
    taken = {d for d, _ in made}
    d = 0
    for i in range(SAMPLES, n):
        if late():
            break
        d += 1
        while d in taken or xs.exists("/local/domain/%d" % d) or xs.is_introduced(d):
            d += 1
        name, uuid = "%s%d" % (tag, i), str(uuidlib.uuid4())
        nodes = t.render(d, uuid, name)
        # Every node in tree order, then INTRODUCE (xensim introduces before
        # console 0 and the channel; nothing watches a domain that is not
        # there yet: its guest starts once it is complete).
        for path, value, perms in nodes:
            xs.write(path, value)
            xs.chmod(path, perms)
        mfn = int([v for p, v, _ in nodes if p == "/local/domain/%d/store/ring-ref" % d][0])
        xs.introduce(d, mfn, 1)
        made.append((d, devid))
        taken.add(d)
        on_domain(d, devid)
    return made, None
