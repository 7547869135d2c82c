# xenchan-dm, the device-model stand-in (xenchan-dm.c, man/xenchan-dm.8).
# Included by the top Makefile; the same WARN, CFLAGS and B.
# DM_PROXY_PATH: the proxy it runs; empty means xenchan-proxy beside it.
DM_PROXY_PATH ?=
DM_PKGS    = xenstore xentoollog yajl
DM_CFLAGS := $(shell $(PKG_CONFIG) --cflags $(DM_PKGS) 2>/dev/null)
DM_LIBS   := $(shell $(PKG_CONFIG) --libs $(DM_PKGS) 2>/dev/null)

all: xenchan-dm

$(B)/xenchan-dm.o: XEN_CFLAGS += $(DM_CFLAGS) -DXENCHAN_PROXY_PATH='"$(DM_PROXY_PATH)"'

$(B)/xenchan-dm: $(B)/xenchan-dm.o
	$(CC) $(LDFLAGS) -o $@ $^ $(DM_LIBS)

xenchan-dm: $(B)/xenchan-dm
	@[ "$(B)" = build ] && cp $< $@ || true

clean: clean-dm
clean-dm:
	rm -f xenchan-dm

.PHONY: clean-dm
