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
DM_SHARED  = log.c strict.c unixsock.c
DM_OBJS    = $(DM_SRCS:%.c=$(B)/%.o) $(DM_SHARED:%.c=$(B)/%.o)

all: xenchan-dm

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
