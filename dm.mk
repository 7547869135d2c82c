# xenchan-dm, the device-model stand-in (DM_SRCS, man/xenchan-dm.8).
# Included by the top Makefile; the same WARN, CFLAGS and B.
# DM_PROXY_PATH: the proxy it runs; empty means xenchan-proxy beside it.
DM_PROXY_PATH ?=
DM_PKGS    = xenstore xentoollog yajl
DM_CFLAGS := $(shell $(PKG_CONFIG) --cflags $(DM_PKGS) 2>/dev/null)
DM_LIBS   := $(shell $(PKG_CONFIG) --libs $(DM_PKGS) 2>/dev/null)
# The loop and its phases, then (dm.h) argv, xenstore, proxies, QMP, the probe, log.
DM_SRCS    = xenchan-dm.c dm-args.c dm-xs.c dm-proxies.c dm-qmp.c dm-monitor.c dm-probe.c dm-log.c \
             log.c strict.c
DM_OBJS    = $(DM_SRCS:%.c=$(B)/%.o)

all: xenchan-dm

$(DM_OBJS): XEN_CFLAGS += $(DM_CFLAGS)
$(B)/dm-proxies.o: XEN_CFLAGS += -DXENCHAN_PROXY_PATH='"$(DM_PROXY_PATH)"'

$(B)/xenchan-dm: $(DM_OBJS)
	$(CC) $(LDFLAGS) -o $@ $^ $(DM_LIBS)

xenchan-dm: $(B)/xenchan-dm
	@[ "$(B)" = build ] && cp $< $@ || true

clean: clean-dm
clean-dm:
	rm -f xenchan-dm

.PHONY: clean-dm
