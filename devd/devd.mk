# SPDX-License-Identifier: MIT
# xenchan-devd, the driver domain's watcher (man/xenchan-devd.8).
# Included by the top Makefile: the same WARN, CFLAGS and B.  Its objects go
# to $(B)/devd/, the program to $(B)/xenchan-devd (and ./xenchan-devd).
DEVD_PKGS    = xenstore xentoollog
DEVD_CFLAGS := $(shell $(PKG_CONFIG) --cflags $(DEVD_PKGS) 2>/dev/null)
DEVD_LIBS   := $(shell $(PKG_CONFIG) --libs $(DEVD_PKGS) 2>/dev/null)
# The loop and the scan of B's backends, then its proxies.
DEVD_SRCS    = devd/main.c devd/proxies.c
# What it shares with the proxy, built by the top Makefile's rule.
DEVD_SHARED  = log.c strict.c unixsock.c launch.c
DEVD_OBJS    = $(DEVD_SRCS:%.c=$(B)/%.o) $(DEVD_SHARED:%.c=$(B)/%.o)

all: xenchan-devd

$(B)/devd/%.o: devd/%.c
	@mkdir -p $(@D)
	$(CC) $(WARN) $(CFLAGS) $(XEN_CFLAGS) $(DEVD_CFLAGS) -DXENCHAN_VERSION='"$(VERSION)"' \
	  -MMD -MP -c -o $@ $<

$(B)/xenchan-devd: $(DEVD_OBJS)
	$(CC) $(LDFLAGS) -o $@ $^ $(DEVD_LIBS)

xenchan-devd: $(B)/xenchan-devd
	@[ "$(B)" = build ] && cp $< $@ || true

clean: clean-devd
clean-devd:
	rm -f xenchan-devd

.PHONY: clean-devd
