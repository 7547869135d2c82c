# SPDX-License-Identifier: MIT
# xenchan-proxy: a Xen PV channel backend.  See README.md.
VERSION   = 0.1.0
CC       ?= cc
PKG_CONFIG ?= pkg-config
PYTHON   ?= /usr/bin/python3
CFLAGS   ?= -O2 -g
WARN      = -std=gnu11 -Wall -Wextra -Werror -D_GNU_SOURCE
# Every object also writes its header dependencies (B/x.d), read back below.
DEPFLAGS  = -MMD -MP
# B is the build directory: build/ normally, build-asan/ for the sanitizer run.
B        ?= build
SAN      ?=
ifeq ($(SAN),1)
  B       = build-asan
  CFLAGS  = -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
  LDFLAGS += -fsanitize=address,undefined
endif

XEN_PKGS  = xenstore xengnttab xenevtchn xentoollog libseccomp
XEN_CFLAGS := $(shell $(PKG_CONFIG) --cflags $(XEN_PKGS) 2>/dev/null)
XEN_LIBS   := $(shell $(PKG_CONFIG) --libs $(XEN_PKGS) 2>/dev/null)

# xenchan-proxy (README.md, "Design"): the loop, the xenbus state machine,
# the relay and what it serves with, the xenstore modules, the leaves main
# calls; then what both programs share (strict.c, log.c, unixsock.c).
PROXY_OBJS = $(addprefix $(B)/, xenchan-proxy.o backend.o relay.o ring.o held.o endpoint.o \
               transcript.o store.o hotplug.o sandbox.o systemd.o stats.o \
               strict.o log.o unixsock.o)
# The unit tests (tests/test-units.c) of the pure parts.
UNIT_OBJS  = $(addprefix $(B)/, tests/test-units.o ring.o held.o store.o strict.o log.o launch.o)

all: xenchan-proxy sim $(B)/bench/benchcli

# Sources in subdirectories include the root's headers as "x.h".  An object
# without its .d (built before there were any) is built again; the object is
# touched last, as some compilers write the .d after it.
$(B)/%.o: %.c $(B)/%.d
	@mkdir -p $(@D)
	$(CC) $(WARN) $(DEPFLAGS) $(CFLAGS) -I. $(XEN_CFLAGS) -DXENCHAN_VERSION='"$(VERSION)"' \
	  -c -o $@ $<
	@touch $@

$(B)/xenchan-proxy: $(PROXY_OBJS)
	$(CC) $(LDFLAGS) -o $@ $^ $(XEN_LIBS)

xenchan-proxy: $(B)/xenchan-proxy
	@[ "$(B)" = build ] && cp $< $@ || true

# The socket ends of the benchmarks (bench/README.md), also the fast
# clients of tests that need more round trips a second than Python makes.
$(B)/bench/benchcli: bench/benchcli.c
	@mkdir -p $(@D)
	$(CC) $(WARN) $(CFLAGS) $(LDFLAGS) -o $@ $<

include tests/sim/sim.mk
include tests/fuzz/fuzz.mk
include tests/xen/xen.mk
include dm/dm.mk
include devd/devd.mk
include install.mk

# The header dependencies the compiler wrote, one .d beside each object (none
# before the first build).  Named as targets, a missing one makes its object
# be built again (one built before there were any).
DEPFILES = $(sort $(PROXY_OBJS:.o=.d) $(UNIT_OBJS:.o=.d) $(DM_OBJS:.o=.d) $(DEVD_OBJS:.o=.d) \
             $(DISPATCH_OBJS:.o=.d) $(B)/dm/dispatch-sim.d)
$(DEPFILES):
DEPS = $(wildcard $(DEPFILES))
-include $(DEPS)

# make -s print-VAR: the value of VAR (tests ask for PROXY_OBJS and DM_PROG).
print-%:
	@printf '%s\n' '$($*)'

# ---- tests -------------------------------------------------------------------
# Every hermetic test (README.md, "Tests").  PYTEST_ARGS adds pytest options.
check: all $(B)/tests/test-units
	XENCHAN_BUILD=$(CURDIR)/$(B) $(PYTHON) -m pytest -q -n 2 tests $(PYTEST_ARGS)
	$(MAKE) --no-print-directory fuzz-smoke

# 256 MiB each way through repeated client faults (SOAK_MIB to change).
soak: all
	XENCHAN_BUILD=$(CURDIR)/$(B) $(PYTHON) tests/soak.py

# Benchmarks print figures (bench/RESULTS.md); nothing fails on a number.
bench: all
	$(PYTHON) bench/run.py

unit: $(B)/tests/test-units
	$(B)/tests/test-units

$(B)/tests/test-units: $(UNIT_OBJS)
	$(CC) $(LDFLAGS) -o $@ $^ $(XEN_LIBS)

# LeakSanitizer's exit-time check and valgrind make system calls the seccomp
# filter refuses: these runs pass --no-seccomp (the harness reads the
# variable); the plain run has the filter on in every test.
check-asan:
	XENCHAN_NO_SECCOMP=1 $(MAKE) SAN=1 check

# The proxy under valgrind in every test that starts one; an error or a leak
# makes valgrind exit 99, which the tests see as the proxy's exit status, and
# the harness fails a test whose proxy log holds a valgrind error summary.
# The dispatcher too (test_dispatch), up to its exec: its report must be empty.
VALGRIND = valgrind -q --error-exitcode=99 --leak-check=full --show-leak-kinds=definite,indirect \
	--errors-for-leak-kinds=definite,indirect --track-fds=no
check-valgrind: all $(B)/tests/test-units
	XENCHAN_NO_SECCOMP=1 XENCHAN_BUILD=$(CURDIR)/$(B) XENCHAN_WRAPPER="$(VALGRIND)" $(PYTHON) -m pytest -q -n 2 \
	  tests/test_proxy.py tests/test_hotplug.py tests/test_restore.py tests/test_faults.py \
	  tests/test_dm.py tests/test_transcript.py tests/test_socket_safety.py \
	  tests/test_driver_domain.py tests/test_dispatch.py $(PYTEST_ARGS)

# Every test there is, as .ci/run runs it: the default tests, the same under
# AddressSanitizer and UndefinedBehaviorSanitizer, the proxy under valgrind,
# and both real-Xen tiers, Xen 4.17 and 4.20.4 (tests/xen/README.md); 16 to
# 24 minutes on 2 cores shared with other work (the first run also builds
# Xen 4.20.4's package when no copy is at hand).  Run it with -k so that a
# failing tier does not stop the next.
check-all: check check-asan check-valgrind check-xen check-xen-4.20

demo: deps all
	tests/demo.sh

deps:
	tests/install-deps.sh

clean:
	rm -rf build build-asan xenchan-proxy

.PHONY: all check unit check-asan check-valgrind check-all soak bench demo deps clean sim
