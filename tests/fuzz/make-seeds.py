#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Write the seed corpus of the fuzz harnesses: tests/fuzz/corpus/<harness>/.

Each seed is one case a reader can name, encoded as its harness reads its
input (see the comment at the top of each fuzz-*.c).  Files called regress-*
are minimised inputs of crashes the fuzzers found; this script leaves them
alone.  Run it after changing an input format, then `make fuzz-smoke`.
"""
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def u8(v): return struct.pack('<B', v)
def u16(v): return struct.pack('<H', v)
def u32(v): return struct.pack('<I', v & 0xffffffff)
def u64(v): return struct.pack('<Q', v)
def cstr(s): return (s.encode() if isinstance(s, str) else s) + b'\0'


def write(harness, name, data):
    d = os.path.join(HERE, 'corpus', harness)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), 'wb') as f:
        f.write(data)


# ---- ring: four indices, then steps ---------------------------------------------
(OUT_PROD, IN_CONS, SCRIBBLE, DATA, READABLE, CONSUME, WRITABLE, PRODUCE,
 UNCONSUMED, RESTART, MARK) = range(11)


def page(in_cons=0, in_prod=0, out_cons=0, out_prod=0):
    return u32(in_cons) + u32(in_prod) + u32(out_cons) + u32(out_prod)


def out_prod_ahead(n): return u8(OUT_PROD) + u8(1) + u16(n)      # out_cons + n
def out_prod_abs(v): return u8(OUT_PROD) + u8(0) + u32(v)
def in_cons_at(n): return u8(IN_CONS) + u8(1) + u16(n)          # in_prod - 1024 + n
def readable(copy=0xffff): return u8(READABLE) + u16(copy)
def refused(step): return u8(step)           # -1 expected: the step reads nothing more
def consume(n): return u8(CONSUME) + u16(n)
def produce(n): return u8(PRODUCE) + u16(n)
def unconsumed(copy=0xffff): return u8(UNCONSUMED) + u16(copy)
def data(to_out, off, bs): return u8(DATA) + u8(1 if to_out else 0) + u16(off) + u8(len(bs)) + bs


def writable_fill(k):
    body = bytes((i * 7) & 0xff for i in range(k))
    return u8(WRITABLE) + u16(0xffff) + u16(k) + body


def ring_seeds():
    write('ring', 'basic', page() + data(True, 0, b'hello, dom0') + out_prod_ahead(11)
          + readable() + consume(11) + readable() + writable_fill(5) + produce(5)
          + unconsumed() + in_cons_at(1024) + unconsumed() + u8(MARK))
    write('ring', 'wrap', page(1020, 1020, 2040, 2060) + readable() + consume(20)
          + writable_fill(10) + produce(10) + unconsumed())
    write('ring', 'full-then-impossible', page() + out_prod_ahead(2048) + readable()
          + out_prod_ahead(2049) + refused(READABLE) + consume(100))
    write('ring', 'in-cons-ahead', page(6, 5, 0, 0) + refused(WRITABLE) + refused(UNCONSUMED)
          + in_cons_at(1024 - 1) + writable_fill(0) + unconsumed())
    write('ring', 'index-wrap-2-32', page(0xfffffff0, 0xfffffff0, 0xfffffff0, 0xfffffff0)
          + out_prod_abs(0x10) + readable() + consume(0x20) + writable_fill(40)
          + produce(40) + in_cons_at(1024 + 8) + unconsumed())
    write('ring', 'scribble-restart', page(0, 100, 50, 60) + readable() + consume(4)
          + u8(SCRIBBLE) + u8(1) + u32(0x7fffffff) + u8(SCRIBBLE) + u8(0) + u32(3)
          + readable() + u8(RESTART) + refused(READABLE) + writable_fill(3))
    write('ring', 'prod-backwards', page(0, 0, 1000, 1500) + readable() + consume(200)
          + out_prod_abs(1100) + refused(READABLE) + consume(400))


# ---- held: two bounds, then steps (side in bit 7, step = byte % 7) ---------------
PUT, PEEK, DROP, SET_BOUND, FREE, MERGE, REINIT = range(7)


def op(step, side=0):
    return u8(next(b for b in range(256) if b >> 7 == side and b % 7 == step))


def bound16(v): return u8(0) + u16(v)
def bound_zero(): return u8(4)
def bound_near_min(delta): return u8(1) + u8(delta)          # 4096 - 64 + delta


def put(n, side=0, cuts=(), extra=0):
    r = 0x8000 | n if n > 0xff else n
    cnt = len(cuts) + 1
    b = op(PUT, side) + u16(r) + u8(cnt)
    b += (u8(0) + u8(extra)) if extra else u8(1)
    for c in cuts:
        b += u16(c)
    return b


def drop(n, side=0): return op(DROP, side) + u8(0) + u16(n)
def drop_all_and_more(more, side=0): return op(DROP, side) + u8(1) + u8(more)
def peek(side=0): return op(PEEK, side)


def held_seeds():
    write('held', 'grow-wrap-linearise', bound16(65535) + bound16(100)
          + put(3000) + drop(2000) + put(3000) + peek() + put(2000) + peek()
          + drop(1000) + peek() + drop_all_and_more(5))
    write('held', 'bound-reached', u8(5) + u8(100) + bound16(10) + put(300) + peek()
          + drop(10) + put(300) + peek() + put(1, 1) + put(20, 1) + peek(1))
    write('held', 'merge-unread-ahead', bound16(5000) + bound16(3000)
          + put(1000, 1) + put(2500) + op(MERGE, 1) + peek() + peek(1)
          + op(SET_BOUND) + bound16(10) + put(5) + drop(400) + peek())
    write('held', 'zero-bound', bound_zero() + bound_near_min(64) + put(10) + peek()
          + put(4096, 1) + put(1, 1) + peek(1))
    write('held', 'split-iovecs', bound16(20000) + bound16(20000)
          + put(5000, 0, cuts=(0, 4000), extra=7) + peek() + put(300, 0, cuts=(100,))
          + op(FREE) + peek() + op(REINIT) + bound16(50) + put(60) + peek())


# ---- parse ----------------------------------------------------------------------
MAXIMA = [0, 1, 8, 9, 10, 99, 0x7fef, 65535, 0x7fffffff, 0xffffffff, 1 << 30,
          2**64 - 1, 2**64 - 2, (2**64 - 1) // 10]


def parse_uint(name, maximum, s):
    if maximum in MAXIMA:
        write('parse', name, u8(2 * MAXIMA.index(maximum)) + cstr(s))
    else:
        write('parse', name, u8(2 * len(MAXIMA)) + u64(maximum) + cstr(s))


def pick(name, want, entries):
    b = u8(1) + cstr(want)
    for devid, nm in entries:
        b += cstr(devid) + cstr('=' + nm if nm is not None else '-')
    write('parse', name, b)


def parse_seeds():
    parse_uint('uint-zero', 10, '0')
    parse_uint('uint-domid-max', 0x7fef, '32751')
    parse_uint('uint-domid-over', 0x7fef, '32752')
    parse_uint('uint-u32-max', 0xffffffff, '4294967295')
    parse_uint('uint-u32-over', 0xffffffff, '4294967296')
    parse_uint('uint-u64-max', 2**64 - 1, '18446744073709551615')
    parse_uint('uint-u64-over', 2**64 - 1, '18446744073709551616')
    parse_uint('uint-leading-zeros', 65535, '000000000000000000000000065535')
    parse_uint('uint-sign', 99, '-1')
    parse_uint('uint-plus', 99, '+1')
    parse_uint('uint-space', 99, ' 1')
    parse_uint('uint-trailing', 99, '1 ')
    parse_uint('uint-hex', 99, '0x10')
    parse_uint('uint-empty', 99, '')
    parse_uint('uint-state', 8, '4')
    parse_uint('uint-odd-max', 12345, '12346')
    pick('pick-devid', '2', [('0', 'primary'), ('1', 'agent'), ('2', None)])
    pick('pick-name', 'agent', [('0', 'agent'), ('1', 'agent'), ('2', 'other')])
    pick('pick-ambiguous', 'agent', [('1', 'agent'), ('3', 'agent')])
    pick('pick-console-0', '0', [('0', 'primary')])
    pick('pick-leading-zero', '05', [('1', None), ('5', 'x')])
    pick('pick-number-too-big', '65536', [('65536', '65536'), ('7', '65536')])
    pick('pick-bad-devids', 'a', [('x1', 'a'), ('-1', 'a'), ('', 'a'), ('2', 'a')])
    pick('pick-empty-name', '', [('1', ''), ('2', None)])
    pick('pick-none', 'agent', [])


# ---- store: the call, then the store's answers --------------------------------------
(FRONTEND_RING, FRONTEND_LIMIT, FRONTEND_STATE, BACKEND_STATE, CHECK_CHANNEL,
 BACKEND_CONNECTION, SERVER_PID, IS_OURS, FIND_DOMAIN, FIND_CHANNEL,
 SET_BACKEND_STATE, SET_FRONTEND_TTY, SET_SERVER_PID, CREATE_CHANNEL,
 REMOVE_CHANNEL, WATCH, DRAIN_WATCHES, DOMAIN_ALIVE, LIST_CHANNELS,
 WAIT_FRONTEND, READ_LEAF) = range(21)
DOMID, BACKEND, DEVID = 7, 0, 1
FE = '/local/domain/%d/device/console/%d' % (DOMID, DEVID)
BE = '/local/domain/%d/backend/console/%d/%d' % (BACKEND, DOMID, DEVID)


def call(opcode, arg='', msglen=256):
    return u8(opcode) + u16(msglen) + u16(DOMID - 1) + u16(BACKEND) + u16(DEVID) + cstr(arg)


def val(s):
    s = s.encode() if isinstance(s, str) else s
    return u8(3) + u8(len(s)) + s if len(s) < 256 else u8(0x83) + u16(len(s)) + s


ABSENT, DENIED = u8(0), u8(1)
OK, COMMIT = u8(1), u8(3)


def listing(*names):
    b = u8(2) + u8(len(names))
    for n in names:
        b += u8(len(n) + 1) + cstr(n)
    return b


def store_seeds():
    write('store', 'ring-ok', call(FRONTEND_RING) + val('8') + val('5'))
    write('store', 'ring-port-0', call(FRONTEND_RING) + val('8') + val('0'))
    write('store', 'ring-ref-junk', call(FRONTEND_RING) + val('8x'))
    write('store', 'ring-long-value', call(FRONTEND_RING) + val('1' * 4000))
    write('store', 'ring-embedded-nul', call(FRONTEND_RING) + val(b'8\x009') + val('5'))
    write('store', 'limit', call(FRONTEND_LIMIT) + val('1073741824'))
    write('store', 'frontend-state', call(FRONTEND_STATE) + val('4'))
    write('store', 'backend-state-absent', call(BACKEND_STATE) + ABSENT + val(''))
    write('store', 'backend-state-denied', call(BACKEND_STATE) + DENIED + ABSENT)
    write('store', 'check-channel', call(CHECK_CHANNEL) + val(BE) + val('0') + val('7'))
    write('store', 'check-channel-wrong', call(CHECK_CHANNEL) + val(BE + '/x'))
    write('store', 'connection-socket', call(BACKEND_CONNECTION) + u16(15) + u16(107)
          + val('socket') + val('/run/agent.sock'))
    write('store', 'connection-pty', call(BACKEND_CONNECTION) + u16(15) + u16(107) + val('pty'))
    write('store', 'connection-relative', call(BACKEND_CONNECTION) + u16(15) + u16(107)
          + val('socket') + val('agent.sock'))
    write('store', 'server-pid', call(SERVER_PID) + val('1234'))
    write('store', 'is-ours', call(IS_OURS) + val('xenchan'))
    write('store', 'find-domain-name', call(FIND_DOMAIN, 'web1') + listing('0', '7', 'x', '07')
          + val('Domain-0') + val('web1') + val('web\x01'))
    write('store', 'find-domain-ambiguous', call(FIND_DOMAIN, 'web1') + listing('3', '7')
          + val('web1') + val('web1'))
    write('store', 'find-domain-id', call(FIND_DOMAIN, '7') + val('') + val('web1\x1b[2J'))
    write('store', 'find-channel-name', call(FIND_CHANNEL, 'agent') + u16(0)
          + listing('0', '1', '2') + val('primary') + val('agent') + ABSENT)
    write('store', 'find-channel-devid', call(FIND_CHANNEL, '2') + u16(0)
          + listing('0', '2') + ABSENT + val('x'))
    write('store', 'find-channel-none', call(FIND_CHANNEL, 'agent') + u16(0) + ABSENT)
    write('store', 'set-backend-state', call(SET_BACKEND_STATE) + u8(4)
          + OK + val('') + OK + COMMIT)
    write('store', 'set-backend-state-gone', call(SET_BACKEND_STATE) + u8(6) + OK + ABSENT)
    write('store', 'set-backend-state-retry', call(SET_BACKEND_STATE) + u8(5)
          + OK + val('') + OK + u8(1) + OK + val('') + OK + COMMIT)
    write('store', 'set-tty', call(SET_FRONTEND_TTY, '/dev/pts/3') + OK + val('') + OK + COMMIT)
    write('store', 'set-pid', call(SET_SERVER_PID) + u32(1234 + 16) + OK + val('') + OK + COMMIT)
    write('store', 'clear-pid', call(SET_SERVER_PID) + u32(16) + OK)
    write('store', 'create-channel', call(CREATE_CHANNEL, 'agent') + u32(65536) + cstr('socket')
          + u8(1) + cstr('/run/agent.sock') + OK + listing('0', '1') + ABSENT + val('other'))
    write('store', 'create-channel-exists', call(CREATE_CHANNEL, 'agent') + u32(4096)
          + cstr('pty') + u8(0) + OK + listing('0', '3') + ABSENT + val('agent'))
    write('store', 'create-channel-full', call(CREATE_CHANNEL, 'agent') + u32(4096)
          + cstr('pty') + u8(0) + OK + listing(*[str(i) for i in range(10)]) + ABSENT * 10)
    write('store', 'remove-channel', call(REMOVE_CHANNEL) + OK
          + OK + listing() + OK + listing('vif')                       # fe, then its parents
          + OK + listing() + OK + listing('3')                         # be
          + OK + listing() + OK + listing() + OK                       # /libxl
          + COMMIT)
    write('store', 'watch', call(WATCH) + OK + OK + OK)
    write('store', 'drain-watches', call(DRAIN_WATCHES) + u8(1) + cstr(FE) + u8(2) + cstr(BE)
          + u8(3) + cstr('@releaseDomain') + cstr('rel') + u8(0))
    write('store', 'domain-alive', call(DOMAIN_ALIVE) + OK)
    write('store', 'list-channels', call(LIST_CHANNELS) + u8(8) + listing('0', '1', '2', 'x')
          + ABSENT + val('agent') + val('log\x07') + ABSENT                 # the scan's names
          + val('xenchan') + val('socket') + val('/run/a.sock')              # 1: type, conn, path
          + val('4') + val('4') + val('99') + val('12345')                   # states, pid, start
          + ABSENT + val('pty') + ABSENT + val('/dev/pts/1')                 # 2: ..., path, tty
          + ABSENT + val('') + ABSENT + ABSENT + ABSENT)                     # states, dirs, pid
    write('store', 'wait-frontend', call(WAIT_FRONTEND) + u8(0) + u8(10)
          + OK + val('4') + u8(0) + val('6') + OK)
    write('store', 'read-leaf', call(READ_LEAF) + u8(15) + u8(0) + val('org.example.a'))
    write('store', 'read-leaf-too-long', call(READ_LEAF) + u8(3) + u8(0) + val('org.example.a'))
    write('store', 'read-leaf-nul', call(READ_LEAF) + u8(40) + u8(1) + val('/dev/pts/1\0x'))


def main():
    for seeds in (ring_seeds, held_seeds, parse_seeds, store_seeds):
        seeds()
    return 0


if __name__ == '__main__':
    sys.exit(main())
