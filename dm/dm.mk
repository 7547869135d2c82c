# SPDX-License-Identifier: MIT
# xenchan-dm, the device-model stand-in (man/xenchan-dm.8).
# Included by the top Makefile: the same WARN, CFLAGS and B.  Its objects
# go to $(B)/dm/, the program to $(B)/xenchan-dm (and ./xenchan-dm).
# DM_PROXY_PATH: the proxy it runs; empty means xenchan-proxy beside it.
DM_PROXY_PATH ?=
DM_PKGS    = xenstore xentoollog yajl
DM_CFLAGS := $(shell $(PKG_CONFIG) --cflags $(DM_PKGS) 2>/dev/null)
DM_LIBS   := $(shell $(PKG_CONFIG) --libs $(DM_PKGS) 2>/dev/null)
# The loop and its phases, then (dm/dm.h) argv, xenstore, proxies, QMP
# messages, QMP sockets, the probe, log.
DM_SRCS    = dm/main.c dm/args.c dm/store.c dm/proxies.c dm/qmp.c dm/monitor.c dm/probe.c \
             dm/log.c
# What it shares with the proxy, built by the top Makefile's rule.
DM_SHARED  = log.c strict.c unixsock.c launch.c
DM_OBJS    = $(DM_SRCS:%.c=$(B)/%.o) $(DM_SHARED:%.c=$(B)/%.o)

all: xenchan-dm $(B)/xenchan-dm-dispatch $(B)/sim/xenchan-dm-dispatch

$(B)/dm/%.o: dm/%.c
	@mkdir -p $(@D)
	$(CC) $(WARN) $(CFLAGS) $(XEN_CFLAGS) $(DM_CFLAGS) -DXENCHAN_VERSION='"$(VERSION)"' \
	  -MMD -MP -c -o $@ $<
$(B)/dm/proxies.o: DM_CFLAGS += -DXENCHAN_PROXY_PATH='"$(DM_PROXY_PATH)"'

$(B)/xenchan-dm: $(DM_OBJS)
	$(CC) $(LDFLAGS) -o $@ $^ $(DM_LIBS)

xenchan-dm: $(B)/xenchan-dm
	@[ "$(B)" = build ] && cp $< $@ || true

clean: clean-dm
clean-dm:
	rm -f xenchan-dm

.PHONY: clean-dm

# xenchan-dm-dispatch (dispatch.c), the xenchan-dm-default package's program
# at libxl's default device-model path: xenchan-dm's argv and xenstore rules
# (args.c, store.c and what they call), and nothing of its loop.
# DISPATCH_DM: the xenchan-dm it runs; DISPATCH_QEMU: QEMU's diverted file
# when /proc cannot say where the dispatcher is (else its own path plus
# .distrib).  $(B)/sim/xenchan-dm-dispatch is the tests' build: it runs the
# xenchan-dm of $(B).
DISPATCH_DM   ?= $(BINDIR)/xenchan-dm
DISPATCH_QEMU ?= $(DISPATCH_PATH).distrib
DISPATCH_OBJS  = $(B)/dm/dispatch.o $(B)/dm/args.o $(B)/dm/store.o $(B)/dm/log.o \
                 $(B)/log.o $(B)/strict.o
DISPATCH_LIBS := $(shell $(PKG_CONFIG) --libs xenstore xentoollog 2>/dev/null)
DISPATCH_SIM   = -DDISPATCH_DM='"$(abspath $(B))/xenchan-dm"' \
                 -DDISPATCH_QEMU='"/nonexistent/xen-qemu-system-i386.distrib"'
$(B)/dm/dispatch.o: dm/dispatch.c
	@mkdir -p $(@D)
	$(CC) $(WARN) $(CFLAGS) $(XEN_CFLAGS) $(DM_CFLAGS) -DDISPATCH_DM='"$(DISPATCH_DM)"' \
	  -DDISPATCH_QEMU='"$(DISPATCH_QEMU)"' -MMD -MP -c -o $@ $<
$(B)/dm/dispatch-sim.o: dm/dispatch.c
	@mkdir -p $(@D)
	$(CC) $(WARN) $(CFLAGS) $(XEN_CFLAGS) $(DM_CFLAGS) $(DISPATCH_SIM) -MMD -MP -c -o $@ $<

$(B)/xenchan-dm-dispatch: $(DISPATCH_OBJS)
	$(CC) $(LDFLAGS) -o $@ $^ $(DISPATCH_LIBS)

$(B)/sim/xenchan-dm-dispatch: $(B)/dm/dispatch-sim.o $(filter-out $(B)/dm/dispatch.o,$(DISPATCH_OBJS))
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(DISPATCH_LIBS)

xenchan-dm-dispatch: $(B)/xenchan-dm-dispatch
	@[ "$(B)" = build ] && cp $< $@ || true

clean-dm: clean-dispatch
clean-dispatch:
	rm -f xenchan-dm-dispatch

.PHONY: clean-dispatch
