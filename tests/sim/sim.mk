# SPDX-License-Identifier: MIT
# The simulated Xen host (tests/sim/README.md).  Included by the top Makefile.
SIM      = $(B)/sim
SIM_WARN = $(WARN) -Itests/sim
XS_CFLAGS := $(shell $(PKG_CONFIG) --cflags xenstore 2>/dev/null)
XS_LIBS   := $(shell $(PKG_CONFIG) --libs xenstore 2>/dev/null)

SIM_BINS = $(SIM)/xenstored-sim $(SIM)/simhvd $(SIM)/guest-sim $(SIM)/xensim $(SIM)/mini-backend \
           $(SIM)/dm-recorder
SIM_LIBS = $(SIM)/lib/libxengnttab.so.1 $(SIM)/lib/libxenevtchn.so.1

sim: $(SIM_BINS) $(SIM_LIBS)

$(SIM)/xenstored-sim: tests/sim/xenstored-sim.c
	@mkdir -p $(@D)
	$(CC) $(SIM_WARN) $(CFLAGS) $(XEN_CFLAGS) $(LDFLAGS) -o $@ $<

# The simulated hypervisor: the test libraries' privileged half.
$(SIM)/simhvd: tests/sim/simhvd.c tests/sim/simhv.c tests/sim/simhv.h
	@mkdir -p $(@D)
	$(CC) $(SIM_WARN) $(CFLAGS) $(LDFLAGS) -o $@ tests/sim/simhvd.c tests/sim/simhv.c

# The test libraries keep Debian's sonames and symbol versions (gnttab.map,
# evtchn.map) so the production binary loads them unchanged.
$(SIM)/lib/libxengnttab.so.1: tests/sim/gnttab-sim.c tests/sim/simhv.c tests/sim/simhv.h tests/sim/gnttab.map
	@mkdir -p $(@D)
	$(CC) $(SIM_WARN) $(CFLAGS) $(XEN_CFLAGS) -fPIC -shared -Wl,-soname,libxengnttab.so.1 \
	  -Wl,--version-script=tests/sim/gnttab.map -o $@ tests/sim/gnttab-sim.c tests/sim/simhv.c

$(SIM)/lib/libxenevtchn.so.1: tests/sim/evtchn-sim.c tests/sim/simhv.c tests/sim/simhv.h tests/sim/evtchn.map
	@mkdir -p $(@D)
	$(CC) $(SIM_WARN) $(CFLAGS) $(XEN_CFLAGS) -fPIC -shared -Wl,-soname,libxenevtchn.so.1 \
	  -Wl,--version-script=tests/sim/evtchn.map -o $@ tests/sim/evtchn-sim.c tests/sim/simhv.c

# guest-sim and mini-backend link against the test libraries by path, so they
# never pick up the real ones.
$(SIM)/guest-sim: tests/sim/guest-sim.c ring.c ring.h $(SIM_LIBS)
	$(CC) $(SIM_WARN) -I. $(CFLAGS) $(XEN_CFLAGS) $(LDFLAGS) -o $@ tests/sim/guest-sim.c ring.c \
	  -L$(SIM)/lib -l:libxengnttab.so.1 -l:libxenevtchn.so.1 $(XS_LIBS) -Wl,-rpath,'$$ORIGIN/lib'

$(SIM)/mini-backend: tests/sim/mini-backend.c ring.c ring.h $(SIM_LIBS)
	$(CC) $(SIM_WARN) -I. $(CFLAGS) $(XEN_CFLAGS) $(LDFLAGS) -o $@ tests/sim/mini-backend.c ring.c \
	  -L$(SIM)/lib -l:libxengnttab.so.1 -l:libxenevtchn.so.1 $(XS_LIBS) -Wl,-rpath,'$$ORIGIN/lib'

$(SIM)/xensim: tests/sim/xensim.c
	@mkdir -p $(@D)
	$(CC) $(SIM_WARN) $(CFLAGS) $(XEN_CFLAGS) $(LDFLAGS) -o $@ $< $(XS_LIBS)

# QEMU's stand-in for the dispatcher's tests (tests/test_dispatch.py): it
# records what it was started with.
$(SIM)/dm-recorder: tests/sim/dm-recorder.c
	@mkdir -p $(@D)
	$(CC) $(SIM_WARN) $(CFLAGS) $(LDFLAGS) -o $@ $<
